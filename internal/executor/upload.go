package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/blobs"
	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
)

// cleanupTimeout bounds the deletion of a failed run's uploads.
const cleanupTimeout = 15 * time.Second

// Manifest is the _SUCCESS.json document written last under
// OUTPUT_URL/<item key>/.
type Manifest struct {
	Item       string           `json:"item"`
	Key        string           `json:"key"`
	Outputs    []ManifestOutput `json:"outputs"`
	StartedAt  time.Time        `json:"startedAt"`
	FinishedAt time.Time        `json:"finishedAt"`
	Executor   string           `json:"executor"`
	Version    string           `json:"version"`
}

// ManifestOutput is one uploaded result: its path under the item key, its
// size in bytes and its SHA-256 (hex).
type ManifestOutput struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type outputFile struct {
	name string // relative, "/"-separated
	path string
	size int64
}

// listOutputs lists the regular files under dir (following symbolic links
// to files), sorted by name.
func listOutputs(dir string) ([]outputFile, int64, error) {
	var files []outputFile
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if path.Base(name) == ManifestName {
			return Permanentf("output %s: the name %s is reserved for the manifest", name, ManifestName)
		}
		files = append(files, outputFile{name: name, path: p, size: fi.Size()})
		total += fi.Size()
		return nil
	})
	if err != nil {
		if IsPermanent(err) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("list outputs in %s: %w", dir, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, total, nil
}

// upload writes every file of outputDir under key/ and then the manifest.
// If anything fails or ctx ends before the manifest is written, the objects
// this run wrote are deleted again (best effort, with a fresh context), so
// nothing of a failed run stays under the key.
func (x *execution) upload(ctx context.Context, b *blob.Bucket, key string, item *itemapi.Item, outputDir string, manifestExists bool) (err error) {
	log := x.log
	t := time.Now()
	files, total, err := listOutputs(outputDir)
	if err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		written []string // keys this run may have written
	)
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		deleted := 0
		for _, k := range written {
			if derr := b.Delete(cctx, k); derr == nil {
				deleted++
			} else if gcerrorsNotFound(derr) {
				continue
			} else {
				log.Warn("cleanup: delete a partial upload", "object", k, "error", derr.Error())
			}
		}
		if len(written) > 0 {
			log.Info("cleanup: deleted what this run had uploaded", "phase", "upload", "objects", deleted)
		}
	}()
	manifestKey := key + "/" + ManifestName
	if manifestExists {
		// EXECUTOR_FORCE: the old manifest must not vouch for a mix of old
		// and new results while they are replaced.
		if err := b.Delete(ctx, manifestKey); err != nil && !gcerrorsNotFound(err) {
			return fmt.Errorf("delete the old %s: %w", ManifestName, err)
		}
	}

	outs := make([]ManifestOutput, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, x.cfg.UploadConcurrency)
	var wg sync.WaitGroup
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, f := range files {
		sem <- struct{}{}
		if uctx.Err() != nil {
			<-sem
			break
		}
		k := key + "/" + f.name
		mu.Lock()
		written = append(written, k)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := uploadFile(uctx, b, k, f)
			outs[i], errs[i] = out, err
			if err != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("upload: %w", context.Cause(ctx))
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	for i := range outs {
		outs[i].Name = files[i].name
	}

	m := Manifest{
		Item: item.Name, Key: key, Outputs: outs,
		StartedAt: x.started.UTC(), FinishedAt: time.Now().UTC(),
		Executor: x.binary, Version: version.Version,
	}
	doc, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", ManifestName, err)
	}
	written = append(written, manifestKey)
	if err := b.WriteAll(ctx, manifestKey, append(doc, '\n'), &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write %s: %w", ManifestName, err)
	}
	log.Info("uploaded results", "phase", "upload", "url", blobs.Redact(x.cfg.OutputURL), "key", key,
		"files", len(files), "bytes", total, "duration", since(t))
	return nil
}

func uploadFile(ctx context.Context, b *blob.Bucket, key string, f outputFile) (ManifestOutput, error) {
	out, err := uploadFile1(ctx, b, key, f)
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		// file:// only: keys nest, and a file cannot also be a directory.
		return out, Permanentf("%w (on a file:// OUTPUT_URL a file is in the way of the item key's directory, or a directory in the way of a file)", err)
	}
	return out, err
}

func uploadFile1(ctx context.Context, b *blob.Bucket, key string, f outputFile) (ManifestOutput, error) {
	r, err := os.Open(f.path)
	if err != nil {
		return ManifestOutput{}, fmt.Errorf("upload %s: %w", f.name, err)
	}
	defer r.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: mime.TypeByExtension(path.Ext(f.name))})
	if err != nil {
		return ManifestOutput{}, fmt.Errorf("upload %s: %w", f.name, err)
	}
	h := sha256.New()
	n, err := io.Copy(w, io.TeeReader(r, h))
	if err != nil {
		cancel() // abort the write
		w.Close()
		return ManifestOutput{}, fmt.Errorf("upload %s: %w", f.name, err)
	}
	if err := w.Close(); err != nil {
		return ManifestOutput{}, fmt.Errorf("upload %s: %w", f.name, err)
	}
	return ManifestOutput{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
