package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/blobs"
	"github.com/itemq/itemq/itemapi"
)

// ManifestName is the object written last under OUTPUT_URL/<item key>/: the
// only sign that an item's results are complete.
const ManifestName = "_SUCCESS.json"

type execution struct {
	cfg     Config
	binary  string
	environ []string
	step    Step
	log     *slog.Logger
	started time.Time
}

func since(t time.Time) string { return time.Since(t).Round(time.Microsecond).String() }

func (x *execution) run(ctx context.Context) error {
	cfg, log := x.cfg, x.log

	// 1. The work item file.
	t := time.Now()
	item, n, err := ReadItemFile(cfg.WorkItemFile)
	if err != nil {
		return err
	}
	itemFile, err := filepath.Abs(cfg.WorkItemFile)
	if err != nil {
		return Permanentf("work item file %s: %w", cfg.WorkItemFile, err)
	}
	key := itemapi.ItemKey(item.Name)
	log = log.With("item", item.Name)
	x.log = log
	log.Info("read item", "phase", "item", "file", itemFile, "key", key, "bytes", n, "duration", since(t))

	// 2. Already done?
	var out *blob.Bucket
	manifestExists := false
	if cfg.OutputURL != "" {
		out, err = blobs.Open(ctx, cfg.OutputURL)
		if err != nil {
			return Permanentf("OUTPUT_URL: %w", err)
		}
		defer out.Close()
		t = time.Now()
		err = retry(ctx, cfg.FetchAttempts, cfg.FetchBackoff, log, "check "+ManifestName, func(ctx context.Context) error {
			ok, err := out.Exists(ctx, key+"/"+ManifestName)
			if errors.Is(err, syscall.ENOTDIR) {
				ok, err = false, nil // file://: a file is where the key's directory would be
			}
			manifestExists = ok
			return classifyBlobError(err)
		})
		if err != nil {
			return fmt.Errorf("check %s/%s/%s: %w", blobs.Redact(cfg.OutputURL), key, ManifestName, err)
		}
		if manifestExists && !cfg.Force {
			log.Info("already done: "+ManifestName+" exists; nothing to do (EXECUTOR_FORCE=true runs it again)",
				"phase", "skip", "key", key, "duration", since(t))
			return errAlreadyDone
		}
	}

	// 3. Directories.
	base := cfg.WorkDir
	if base == "" {
		base = os.TempDir()
	}
	work, err := os.MkdirTemp(base, "itemq-run-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			log.Warn("remove work directory", "dir", work, "error", err.Error())
		}
	}()
	outputDir := cfg.OutputDir
	switch {
	case outputDir != "":
		if err := os.MkdirAll(outputDir, 0o755); err != nil {
			return Permanentf("OUTPUT_DIR: %w", err)
		}
		if outputDir, err = filepath.Abs(outputDir); err != nil {
			return Permanentf("OUTPUT_DIR: %w", err)
		}
	case out != nil:
		outputDir = filepath.Join(work, "output")
		if err := os.Mkdir(outputDir, 0o755); err != nil {
			return fmt.Errorf("create output directory: %w", err)
		}
	default:
		// No OUTPUT_URL and no OUTPUT_DIR: the results stay in a fresh
		// directory that outlives the run.
		if outputDir, err = os.MkdirTemp(base, "itemq-output-"); err != nil {
			return fmt.Errorf("create output directory: %w", err)
		}
	}
	scratch := filepath.Join(work, "tmp")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return fmt.Errorf("create scratch directory: %w", err)
	}

	// 4. The input.
	in, err := x.resolveInput(ctx, item, work)
	if err != nil {
		return err
	}

	// 5. The step.
	r := &Run{
		Item: item, ItemFile: itemFile, ItemKey: key,
		InputDir: in.dir, InputFile: in.file, OutputDir: outputDir, WorkDir: scratch,
		Grace: cfg.Grace, Log: log,
	}
	r.Env = setEnv(x.environ,
		"INPUT_FILE", r.InputFile, "INPUT_DIR", r.InputDir, "OUTPUT_DIR", r.OutputDir,
		"ITEM_NAME", item.Name, "ITEM_KEY", key, "WORK_ITEM_FILE", itemFile)
	t = time.Now()
	if err := x.step.Run(ctx, r); err != nil {
		if ctx.Err() == nil {
			log.Info("step failed", "phase", "step", "duration", since(t), "permanent", IsPermanent(err))
		}
		return fmt.Errorf("step: %w", err)
	}
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	log.Info("step finished", "phase", "step", "duration", since(t))

	// 6. The results.
	if out == nil {
		files, size, err := listOutputs(outputDir)
		if err != nil {
			return err
		}
		log.Info("results stay in OUTPUT_DIR (no OUTPUT_URL)", "phase", "upload", "dir", outputDir, "files", len(files), "bytes", size)
		return nil
	}
	return x.upload(ctx, out, key, item, outputDir, manifestExists)
}

// setEnv returns environ with each of the key, value pairs kv set
// (replacing earlier values).
func setEnv(environ []string, kv ...string) []string {
	set := map[string]bool{}
	for i := 0; i < len(kv); i += 2 {
		set[kv[i]] = true
	}
	out := make([]string, 0, len(environ)+len(kv)/2)
	for _, e := range environ {
		k, _, _ := cutEnv(e)
		if !set[k] {
			out = append(out, e)
		}
	}
	for i := 0; i < len(kv); i += 2 {
		out = append(out, kv[i]+"="+kv[i+1])
	}
	return out
}

func cutEnv(e string) (string, string, bool) {
	for i := 0; i < len(e); i++ {
		if e[i] == '=' {
			return e[:i], e[i+1:], true
		}
	}
	return e, "", false
}
