package executor

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/itemapi"
)

// ManifestName is the object written last under OUTPUT_URL/<item key>/: the
// only sign that an item's results are complete.
const ManifestName = itemapi.ManifestName

type execution struct {
	cfg     Config
	binary  string
	environ []string
	step    Step
	log     *slog.Logger
	started time.Time
	store   *bucket.Store // bucket I/O of this run
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

	// The store opens a bucket on its first use.
	x.store = bucket.NewStore()
	defer func() {
		if err := x.store.Close(); err != nil {
			log.Warn("close the buckets", "error", err.Error())
		}
	}()

	// 2. Already done?
	upload := cfg.OutputURL != ""
	manifestExists := false
	if upload {
		if err := checkBucketURL(cfg.OutputURL); err != nil {
			return Permanentf("OUTPUT_URL: %w", err)
		}
		t = time.Now()
		err = retry(ctx, cfg.FetchAttempts, cfg.FetchBackoff, log, "check "+ManifestName, func(ctx context.Context) error {
			ok, err := x.store.Exists(ctx, cfg.OutputURL, key+"/"+ManifestName)
			manifestExists = ok
			return storageError(err)
		})
		if err != nil {
			return fmt.Errorf("check %s/%s/%s: %w", bucket.RedactURL(cfg.OutputURL), key, ManifestName, err)
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
	if work, err = filepath.Abs(work); err != nil { // the step gets absolute paths
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
	case upload:
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
	if !upload {
		files, size, err := listOutputs(outputDir)
		if err != nil {
			return err
		}
		log.Info("results stay in OUTPUT_DIR (no OUTPUT_URL)", "phase", "upload", "dir", outputDir, "files", len(files), "bytes", size)
		return nil
	}
	return x.upload(ctx, key, item, outputDir, work, manifestExists)
}

// checkBucketURL refuses a bucket URL that no driver of this binary serves.
func checkBucketURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if bucket.Mux().ValidBucketScheme(u.Scheme) {
		return nil
	}
	return fmt.Errorf("%s: unsupported scheme %q (this binary serves %s)", bucket.RedactURL(raw), u.Scheme, strings.Join(bucket.Schemes(), ", "))
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
