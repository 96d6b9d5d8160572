// Package executor is what every itemq executor shares: it reads the work
// item file, resolves and fetches the item's input, runs the executor's
// Step, uploads what the step wrote to OUTPUT_DIR under
// OUTPUT_URL/<item key>/, writes the _SUCCESS.json manifest last, and turns
// the outcome into the exit code of the contract: 0 done, 1 failed (may be
// retried), 2 the item is bad (never retried).
//
// Each executor's main.go is one call to Main with the constructor of its
// Step (see executors/script and executors/thumbnail).
//
// Bucket I/O (s3://, gs://, azblob://, file://, mem://) is done in the
// executor's own process through internal/bucket.
package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/logging"
	"github.com/itemq/itemq/internal/runner/pool"
	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
)

// Exit codes of an executor.
const (
	ExitOK        = 0 // done (or already done)
	ExitFailed    = 1 // failed; a retry may succeed
	ExitPermanent = 2 // the item (or the configuration) is bad; never retried
)

// Config is the environment every executor reads. Executors read their own
// variables (SCRIPT_*, THUMB_*) in their NewStep.
type Config struct {
	WorkItemFile string `env:"WORK_ITEM_FILE"`
	OutputURL    string `env:"OUTPUT_URL"`
	OutputDir    string `env:"OUTPUT_DIR"`
	InputDir     string `env:"INPUT_DIR"`
	InputFile    string `env:"INPUT_FILE"`

	Force             bool          `env:"EXECUTOR_FORCE" envDefault:"false"`
	Timeout           time.Duration `env:"EXECUTOR_TIMEOUT" envDefault:"0"`
	Grace             time.Duration `env:"EXECUTOR_GRACE" envDefault:"10s"`
	MaxInputBytes     ByteSize      `env:"EXECUTOR_MAX_INPUT_BYTES" envDefault:"10GiB"`
	FetchAttempts     int           `env:"EXECUTOR_FETCH_ATTEMPTS" envDefault:"4"`
	FetchBackoff      time.Duration `env:"EXECUTOR_FETCH_BACKOFF" envDefault:"500ms"`
	UploadConcurrency int           `env:"EXECUTOR_UPLOAD_CONCURRENCY" envDefault:"4"`
	WorkDir           string        `env:"EXECUTOR_WORK_DIR"`
	// InputAllow: where data.url and data.path may read (inputallow.go).
	InputAllow string `env:"EXECUTOR_INPUT_ALLOW"`
	// BlobHelper is deprecated and ignored: bucket I/O no longer runs in
	// a helper process. A run that sets it logs a warning.
	BlobHelper string `env:"EXECUTOR_BLOB_HELPER"`
	LogLevel   string `env:"EXECUTOR_LOG_LEVEL" envDefault:"info"`
	LogFormat  string `env:"EXECUTOR_LOG_FORMAT" envDefault:"json"`

	inputs inputPolicy // InputAllow, parsed by check
}

func (c *Config) check() error {
	var errs []string
	if c.WorkItemFile == "" {
		errs = append(errs, "WORK_ITEM_FILE is not set")
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Sprintf("EXECUTOR_TIMEOUT=%v: must not be negative", c.Timeout))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Sprintf("EXECUTOR_GRACE=%v: must not be negative", c.Grace))
	}
	if c.MaxInputBytes <= 0 {
		errs = append(errs, fmt.Sprintf("EXECUTOR_MAX_INPUT_BYTES=%d: must be positive", c.MaxInputBytes))
	}
	if c.FetchAttempts < 1 {
		errs = append(errs, fmt.Sprintf("EXECUTOR_FETCH_ATTEMPTS=%d: must be at least 1", c.FetchAttempts))
	}
	if c.FetchBackoff < 0 {
		errs = append(errs, fmt.Sprintf("EXECUTOR_FETCH_BACKOFF=%v: must not be negative", c.FetchBackoff))
	}
	if c.UploadConcurrency < 1 {
		errs = append(errs, fmt.Sprintf("EXECUTOR_UPLOAD_CONCURRENCY=%d: must be at least 1", c.UploadConcurrency))
	}
	if p, err := parseInputAllow(c.InputAllow); err != nil {
		errs = append(errs, err.Error())
	} else {
		c.inputs = p
	}
	if c.InputFile != "" && c.InputDir == "" {
		errs = append(errs, "INPUT_FILE is set without INPUT_DIR (it names a file of INPUT_DIR)")
	}
	if len(errs) > 0 {
		return errors.New("configuration: " + strings.Join(errs, "; "))
	}
	return nil
}

// A Step is what one executor does to one item: it reads the input the run
// resolved (Run.InputFile, Run.InputDir, or the item itself) and writes its
// results into Run.OutputDir. An error wrapped with Permanent ends the run
// with exit code 2; any other error with exit code 1. When ctx ends (SIGTERM,
// EXECUTOR_TIMEOUT) the step must stop promptly; Command does that for child
// processes.
type Step interface {
	Run(ctx context.Context, r *Run) error
}

// StepFunc adapts a function to Step.
type StepFunc func(ctx context.Context, r *Run) error

// Run calls f.
func (f StepFunc) Run(ctx context.Context, r *Run) error { return f(ctx, r) }

// NewStep builds an executor's step from the arguments after "--" on its
// command line and from its environment. It is called before any work; an
// error is a configuration error (exit code 2).
type NewStep func(args, environ []string) (Step, error)

// Run is one run of an executor over one item, as its step sees it.
type Run struct {
	Item      *itemapi.Item // the work item
	ItemFile  string        // absolute path of WORK_ITEM_FILE
	ItemKey   string        // itemapi.ItemKey(Item.Name)
	InputDir  string        // where the input is; "" when the item carries its input in its data
	InputFile string        // the input file; "" when there is none or INPUT_DIR holds several
	OutputDir string        // where the step writes its results
	WorkDir   string        // a private scratch directory, removed after the run
	// Env is the executor's environment with INPUT_FILE, INPUT_DIR,
	// OUTPUT_DIR, ITEM_NAME, ITEM_KEY and WORK_ITEM_FILE set to the above:
	// the environment for the step's child processes.
	Env   []string
	Grace time.Duration // EXECUTOR_GRACE, for Command
	Log   *slog.Logger
}

// Command returns a Command for a child process of the step, with the run's
// environment and grace period, logging through the run's logger.
func (r *Run) Command(path string, args ...string) *Command {
	return &Command{Path: path, Args: args, Env: r.Env, Grace: r.Grace, Log: r.Log}
}

// Main runs an executor as a process and returns its exit code. args are
// the command-line arguments without the program name: --version, --help,
// and "--" followed by the step's arguments. ctx is cancelled on SIGTERM by
// the caller (see executors/script/main.go).
func Main(ctx context.Context, binary string, args, environ []string, stdout, stderr io.Writer, newStep NewStep) int {
	started := time.Now()
	// When whoever reads our stdout and stderr dies (a manager killed
	// with SIGKILL), writing a log line must not kill the executor with
	// SIGPIPE: it would leave the step running, partial uploads in the
	// bucket and its work directory on disk. With SIGPIPE delivered to a
	// channel, such a write fails with EPIPE (and the line is lost) and the
	// shutdown goes on. (signal.Ignore would also work, but an ignored
	// signal stays ignored in the step's processes; a handled one does not.)
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	all := args
	var stepArgs []string
	for i, a := range args {
		if a == "--" {
			stepArgs = args[i+1:]
			args = args[:i]
			break
		}
	}
	for _, a := range args {
		switch a {
		case "--version", "-version", "version":
			fmt.Fprintln(stdout, version.String(binary))
			return ExitOK
		case "-h", "--help", "help":
			fmt.Fprintf(stdout, "usage: %s [--version] [-- ARGS...]\n\nProcesses the work item named by $WORK_ITEM_FILE; configured by environment variables (see docs/executors.md).\n", binary)
			return ExitOK
		default:
			fmt.Fprintf(stderr, "%s: unknown argument %q (configuration comes from the environment; a command goes after --)\n", binary, a)
			return ExitPermanent
		}
	}
	if url := config.Environ(environ)[pool.EnvURL]; url != "" {
		return work(ctx, binary, url, all, environ, stderr)
	}
	var cfg Config
	if err := config.Parse(&cfg, environ); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", binary, err)
		return ExitPermanent
	}
	log, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "%s: configuration: %v\n", binary, err)
		return ExitPermanent
	}
	log = log.With("executor", binary)
	if err := cfg.check(); err != nil {
		log.Error("failed", "error", err.Error(), "exit", ExitPermanent)
		return ExitPermanent
	}
	step, err := newStep(stepArgs, environ)
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "configuration") {
			msg = "configuration: " + msg
		}
		log.Error("failed", "error", oneLine(msg), "exit", ExitPermanent)
		return ExitPermanent
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("EXECUTOR_TIMEOUT (%v) passed", cfg.Timeout))
		defer cancel()
	}
	if cfg.BlobHelper != "" {
		log.Warn("EXECUTOR_BLOB_HELPER is deprecated and ignored: bucket I/O runs in the executor itself")
	}
	x := &execution{cfg: cfg, binary: binary, environ: environ, step: step, log: log, started: started}
	err = x.run(ctx)
	log = x.log
	code := exitCode(ctx, err)
	attrs := []any{"phase", "done", "exit", code, "duration", time.Since(started).Round(time.Microsecond).String()}
	switch {
	case code == ExitOK:
		log.Info("done", attrs...)
	case ctx.Err() != nil:
		log.Error("failed", append(attrs, "error", oneLine(fmt.Sprintf("stopped: %v (%v)", context.Cause(ctx), err)))...)
	default:
		log.Error("failed", append(attrs, "error", oneLine(err.Error()))...)
	}
	return code
}

func exitCode(ctx context.Context, err error) int {
	switch {
	case err == nil || errors.Is(err, errAlreadyDone):
		return ExitOK
	case ctx.Err() != nil:
		return ExitFailed
	case IsPermanent(err):
		return ExitPermanent
	}
	return ExitFailed
}

var errAlreadyDone = errors.New("already done")

// oneLine joins the lines of s with " | " so an error is one log line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var parts []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " | ")
}

// permanentError marks an error as one of the item (exit code 2).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a problem of the item itself, which no retry will
// fix: the run ends with exit code 2. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err (or an error it wraps) was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// work is an executor as a worker of the pool (ITEMQ_POOL_URL is set): it
// takes item after item from the manager and runs itself, the executor,
// for each, without the pool's variables (docs/pool.md). SIGTERM (ctx)
// stops it once the running item is done.
func work(ctx context.Context, binary, url string, args, environ []string, stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("executor", binary)
	self, err := os.Executable()
	if err != nil {
		log.Error("cannot find this program to run it for each item", "error", err.Error())
		return ExitPermanent
	}
	cfg := pool.WorkerConfigFromEnv(environ, append([]string{self}, args...))
	cfg.Log = log
	err = pool.Work(ctx, cfg)
	if err != nil {
		log.Error("pool worker failed", "error", err.Error())
		return ExitPermanent
	}
	return ExitOK
}
