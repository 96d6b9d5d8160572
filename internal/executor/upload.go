package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
)

// cleanupTimeout bounds the deletion of a failed run's uploads.
const cleanupTimeout = 15 * time.Second

// Manifest is the _SUCCESS.json document written last under
// OUTPUT_URL/<item key>/ (its wire type is itemapi's, which the manager's
// results API reads).
type Manifest = itemapi.Manifest

// ManifestOutput is one uploaded result.
type ManifestOutput = itemapi.ManifestOutput

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

// upload writes every file of outputDir under key/ in OUTPUT_URL and then
// the manifest (written to a file in work first: the store takes
// files). If anything fails or ctx ends before the manifest is written,
// the objects this run wrote are deleted again (best effort, with a fresh
// context), so nothing of a failed run stays under the key.
func (x *execution) upload(ctx context.Context, key string, item *itemapi.Item, outputDir, work string, manifestExists bool) (err error) {
	log, st, out := x.log, x.store, x.cfg.OutputURL
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
			if derr := st.Delete(cctx, out, k); derr == nil {
				deleted++
			} else if bucket.KindOf(derr) == bucket.NotFound {
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
		if err := st.Delete(ctx, out, manifestKey); err != nil && bucket.KindOf(err) != bucket.NotFound {
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
			o, err := st.Upload(uctx, out, k, f.path, "")
			if err != nil {
				err = fmt.Errorf("upload %s: %w", f.name, err)
				if bucket.KindOf(err) == bucket.Permanent {
					err = Permanent(err)
				}
			}
			outs[i], errs[i] = ManifestOutput{Size: o.Size, SHA256: o.SHA256}, err
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
	manifestFile := filepath.Join(work, ManifestName)
	if err := os.WriteFile(manifestFile, append(doc, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", ManifestName, err)
	}
	written = append(written, manifestKey)
	if _, err := st.Upload(ctx, out, manifestKey, manifestFile, "application/json"); err != nil {
		return fmt.Errorf("write %s: %w", ManifestName, err)
	}
	log.Info("uploaded results", "phase", "upload", "url", bucket.RedactURL(out), "key", key,
		"files", len(files), "bytes", total, "duration", since(t))
	return nil
}
