// Package results reads a job's results where its executor put them:
// OUTPUT_URL/<item key>/, listed by the _SUCCESS.json manifest written last.
// The status API and the dashboard serve them through the manager.
package results

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/itemapi"
)

// Manifest reads an item's manifest from the bucket at outputURL. An item
// without one (not finished, or failed) is a NotFound Status.
func Manifest(ctx context.Context, outputURL, item string) (*itemapi.Manifest, error) {
	if outputURL == "" {
		return nil, itemapi.NewStatus(itemapi.ReasonNotFound, "the manager does not know where results go (set MANAGER_JOB_ENV_OUTPUT_URL)")
	}
	b, err := bucket.Open(ctx, outputURL)
	if err != nil {
		return nil, itemapi.NewStatus(itemapi.ReasonUnavailable, "open the results of %q: %v", item, err)
	}
	defer b.Close()
	return readManifest(ctx, b, item)
}

func readManifest(ctx context.Context, b *blob.Bucket, item string) (*itemapi.Manifest, error) {
	raw, err := b.ReadAll(ctx, itemapi.ItemKey(item)+"/"+itemapi.ManifestName)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, itemapi.NewStatus(itemapi.ReasonNotFound, "item %q has no results (no %s yet)", item, itemapi.ManifestName)
	}
	if err != nil {
		return nil, itemapi.NewStatus(itemapi.ReasonUnavailable, "read the manifest of %q: %v", item, err)
	}
	var man itemapi.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return nil, fmt.Errorf("the manifest of %q is not valid: %w", item, err)
	}
	return &man, nil
}

// Output is one output file being read.
type Output struct {
	io.Reader
	Size   int64
	SHA256 string // as the manifest records it
	close  func()
}

// Close releases the reader and its bucket.
func (o *Output) Close() error { o.close(); return nil }

// Open opens one output file of an item, which its manifest must list (so
// that no other object can be read through it).
func Open(ctx context.Context, outputURL, item, file string) (*Output, error) {
	if outputURL == "" {
		return nil, itemapi.NewStatus(itemapi.ReasonNotFound, "the manager does not know where results go (set MANAGER_JOB_ENV_OUTPUT_URL)")
	}
	b, err := bucket.Open(ctx, outputURL)
	if err != nil {
		return nil, itemapi.NewStatus(itemapi.ReasonUnavailable, "open the results of %q: %v", item, err)
	}
	man, err := readManifest(ctx, b, item)
	if err != nil {
		b.Close()
		return nil, err
	}
	var out *itemapi.ManifestOutput
	for i := range man.Outputs {
		if man.Outputs[i].Name == file {
			out = &man.Outputs[i]
		}
	}
	if out == nil {
		b.Close()
		return nil, itemapi.NewStatus(itemapi.ReasonNotFound, "item %q has no output %q (its manifest lists them)", item, file)
	}
	r, err := b.NewReader(ctx, itemapi.ItemKey(item)+"/"+out.Name, nil)
	if err != nil {
		b.Close()
		return nil, itemapi.NewStatus(itemapi.ReasonUnavailable, "open output %q of %q: %v", file, item, err)
	}
	return &Output{Reader: r, Size: r.Size(), SHA256: out.SHA256, close: func() { r.Close(); b.Close() }}, nil
}
