package blobsource_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/blobsource"
	"github.com/itemq/itemq/internal/source/sourcetest"
	"github.com/itemq/itemq/itemapi"
)

// backend changes the bucket under a driver as a user would: by writing and
// deleting objects under the prefix.
type backend struct {
	b      *blob.Bucket
	prefix string
}

func (k backend) Put(ctx context.Context, _ *testing.T, name string, data []byte) (string, error) {
	return name, k.b.WriteAll(ctx, k.prefix+name, data, &blob.WriterOptions{ContentType: "application/json"})
}

func (k backend) Remove(ctx context.Context, _ *testing.T, name string) error {
	return k.b.Delete(ctx, k.prefix+name)
}

// testConfig is a configuration for conformance runs: JSON data (so that
// data round-trips), submissions on, a short poll interval.
func testConfig(bucketURL string) blobsource.Config {
	return blobsource.Config{
		URL: bucketURL, Prefix: "in/", Data: blobsource.DataJSON, PollInterval: 50 * time.Millisecond,
		OnDone: blobsource.ActionMove, OnFailed: blobsource.ActionMove, DonePrefix: ".done/", FailedPrefix: ".failed/",
		Submit: true, SubmitPrefix: "submitted/", MaxSubmitBytes: 4096, MaxDataBytes: itemapi.MaxDataBytes,
	}
}

// runConformance runs the suite over buckets that open gives (a fresh,
// empty bucket each time, and its URL).
func runConformance(t *testing.T, open func(ctx context.Context, t *testing.T) (*blob.Bucket, string)) {
	var cur *blob.Bucket
	var curCfg blobsource.Config
	mk := func(ctx context.Context, t *testing.T) (source.Driver, sourcetest.Backend, error) {
		b, u := open(ctx, t)
		cfg := testConfig(u)
		d, err := blobsource.New(context.Background(), b, cfg, testLogger(t))
		if err != nil {
			return nil, nil, err
		}
		t.Cleanup(func() { d.Close() })
		if err := d.WaitSynced(ctx); err != nil {
			return nil, nil, err
		}
		cur, curCfg = b, cfg
		return d, backend{b: b, prefix: cfg.Prefix}, nil
	}
	sourcetest.RunConformanceTests(t, mk, sourcetest.Options{
		Watch: true, Submit: true, Ack: true, AckRemoves: true, Redrive: true,
		Visible: 20 * time.Second,
		Archived: func(ctx context.Context, t *testing.T, name string, outcome itemapi.Outcome) error {
			archive := curCfg.DonePrefix
			if outcome == itemapi.Failed {
				archive = curCfg.FailedPrefix
			}
			if ok, err := cur.Exists(ctx, curCfg.Prefix+archive+name); err != nil || !ok {
				return fmt.Errorf("archived object %s%s%s: exists=%v err=%v", curCfg.Prefix, archive, name, ok, err)
			}
			if ok, err := cur.Exists(ctx, curCfg.Prefix+name); err != nil || ok {
				return fmt.Errorf("object %s%s still there after the move (err %v)", curCfg.Prefix, name, err)
			}
			return nil
		},
	})
}

func TestConformanceMemblob(t *testing.T) {
	runConformance(t, func(_ context.Context, t *testing.T) (*blob.Bucket, string) {
		b := memblob.OpenBucket(nil)
		t.Cleanup(func() { b.Close() })
		return b, "mem://"
	})
}

func TestConformanceFileblob(t *testing.T) {
	runConformance(t, func(_ context.Context, t *testing.T) (*blob.Bucket, string) {
		dir := t.TempDir()
		b, err := fileblob.OpenBucket(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b, (&url.URL{Scheme: "file", Path: dir}).String()
	})
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", p)
	return len(p), nil
}
