// Package local is the runner that runs jobs on this machine: each attempt of
// a job is run by a Launcher (child processes here; containers in the
// container runner), retried with exponential backoff and jitter as a
// Kubernetes Job would be, and recorded in a crash-safe store under the
// manager's state directory.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/queue"
	"github.com/itemq/itemq/internal/queue/store"
	"github.com/itemq/itemq/itemapi"
)

// Launcher runs one attempt of a job and returns the exit code of the
// executor (0, 1, 2 or another code). An error means the attempt could not
// run (e.g. the command is missing); it counts as a retryable failure.
// When ctx ends because the manager is stopping, Launch must stop the
// attempt and return promptly; its result is then ignored.
type Launcher interface {
	Launch(ctx context.Context, a *Attempt) (exitCode int, err error)
}

// Attempt is what a Launcher gets for one attempt.
type Attempt struct {
	Job      string        // the job name, <queue>-<hash>
	Item     *itemapi.Item // the work item
	ItemDoc  []byte        // the item document (contents of WORK_ITEM_FILE)
	Number   int           // 1 for the first attempt
	WorkDir  string        // a private, empty directory, removed after the attempt
	ItemFile string        // WorkDir/item.json, read-only
	Log      *JobLog       // where the attempt's output goes
	// Resumed is true when the attempt continues a job that was running
	// when the manager stopped (a container launcher may re-adopt it).
	Resumed bool
}

// Config of the runner.
type Config struct {
	Queue       string
	StateDir    string        // the store and job logs live here
	WorkDir     string        // attempts' private directories are made here (default: os.TempDir())
	MaxAttempts int           // attempts per job (default 3)
	BackoffBase time.Duration // first retry delay (default 1s); doubles, with jitter
	BackoffMax  time.Duration // cap of the retry delay (default 1m)
	JobTimeout  time.Duration // bound of one attempt (0: none)
	LogMaxBytes int64         // bound of one job's log file (default 1 MiB)
	NoSync      bool          // store without fsync (survives a process crash, not a machine crash)
	Log         *slog.Logger
}

// Runner implements queue.Runner over a Launcher.
type Runner struct {
	cfg      Config
	launcher Launcher
	store    *store.Store
	log      *slog.Logger

	mu      sync.Mutex
	jobs    map[string]*queue.Job // by item
	updates chan queue.Job
	ctx     context.Context // Run's context; attempts stop with it
	wg      sync.WaitGroup
	started bool
}

var _ queue.Runner = (*Runner)(nil)

// New opens the runner's store. Call Run before Start.
func New(cfg Config, l Launcher) (*Runner, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = time.Minute
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = 1 << 20
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o750); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o750); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	st, err := store.Open(cfg.StateDir, store.Options{NoSync: cfg.NoSync})
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, launcher: l, store: st, log: cfg.Log, jobs: map[string]*queue.Job{}, updates: make(chan queue.Job, 1024)}
	recs, err := st.Load(context.Background())
	if err != nil {
		st.Close()
		return nil, err
	}
	for i := range recs {
		j := recs[i]
		r.jobs[j.Item] = &j
	}
	return r, nil
}

// LogPath is where the output of an item's job is kept.
func (r *Runner) LogPath(item string) string {
	return filepath.Join(r.cfg.StateDir, "logs", queue.JobName(r.cfg.Queue, item)+".log")
}

// Run resumes the jobs that were unfinished when the manager last stopped,
// then delivers updates until ctx ends. It waits for running attempts to
// stop before it returns and closes the store.
func (r *Runner) Run(ctx context.Context, notify func(queue.Job)) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("local runner: Run called twice")
	}
	r.started = true
	r.ctx = ctx
	var resume []*queue.Job
	for _, j := range r.jobs {
		if !j.Phase.Finished() {
			resume = append(resume, j)
		}
	}
	r.mu.Unlock()
	for _, j := range resume {
		doc, err := r.store.Item(j.Item)
		if err != nil || doc == nil {
			r.log.Error("cannot resume job: its item document is missing; it will be started again", "item", j.Item, "err", err)
			r.mu.Lock()
			delete(r.jobs, j.Item)
			r.mu.Unlock()
			r.store.Delete(j.Item)
			continue
		}
		var it itemapi.Item
		if err := json.Unmarshal(doc, &it); err != nil {
			r.log.Error("cannot resume job: bad item document; it will be started again", "item", j.Item, "err", err)
			r.mu.Lock()
			delete(r.jobs, j.Item)
			r.mu.Unlock()
			r.store.Delete(j.Item)
			continue
		}
		r.log.Info("resuming job interrupted by a restart", "item", j.Item, "job", j.Name, "attempts", j.Attempts)
		r.wg.Add(1)
		go r.runJob(&it, doc, true)
	}
	for {
		select {
		case j := <-r.updates:
			notify(j)
		case <-ctx.Done():
			// Keep delivering while the attempts stop, so none blocks.
			stopped := make(chan struct{})
			go func() { r.wg.Wait(); close(stopped) }()
			for {
				select {
				case j := <-r.updates:
					notify(j)
				case <-stopped:
					for {
						select {
						case j := <-r.updates:
							notify(j)
						default:
							return r.store.Close()
						}
					}
				}
			}
		}
	}
}

// Start starts the job of an item.
func (r *Runner) Start(ctx context.Context, it *itemapi.Item) error {
	doc, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("encode item %q: %w", it.Name, err)
	}
	r.mu.Lock()
	if !r.started || r.ctx.Err() != nil {
		r.mu.Unlock()
		return errors.New("local runner is not running")
	}
	if _, ok := r.jobs[it.Name]; ok {
		r.mu.Unlock()
		return queue.ErrAlreadyExists
	}
	j := &queue.Job{Item: it.Name, Name: queue.JobName(r.cfg.Queue, it.Name), Phase: queue.PhasePending, CreatedAt: time.Now().UTC()}
	r.jobs[it.Name] = j
	r.wg.Add(1)
	r.mu.Unlock()
	r.store.PutItem(it.Name, doc)
	r.store.Put(*j)
	go r.runJob(it, doc, false)
	return nil
}

// Jobs lists every record.
func (r *Runner) Jobs(context.Context) ([]queue.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]queue.Job, 0, len(r.jobs))
	for _, j := range r.jobs {
		out = append(out, *j)
	}
	return out, nil
}

// Sync waits until every record so far is on disk (queue.Syncer).
func (r *Runner) Sync(ctx context.Context) error { return r.store.Sync(ctx) }

// MarkAcked records the acknowledgement. It is not synced at once: if it is
// lost in a crash, the manager acks again and the source answers NotFound,
// which counts as done.
func (r *Runner) MarkAcked(ctx context.Context, item string, outcome itemapi.Outcome) error {
	r.mu.Lock()
	j, ok := r.jobs[item]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("mark %q acked: no such job", item)
	}
	j.Acked = outcome
	rec := *j
	r.mu.Unlock()
	r.store.Put(rec)
	return nil
}

// Forget drops a finished job's record.
func (r *Runner) Forget(_ context.Context, item string) error {
	r.mu.Lock()
	j, ok := r.jobs[item]
	if ok && !j.Phase.Finished() {
		r.mu.Unlock()
		return fmt.Errorf("forget %q: its job is not finished", item)
	}
	delete(r.jobs, item)
	r.mu.Unlock()
	if ok {
		r.store.Delete(item)
		_ = os.Remove(r.LogPath(item))
	}
	return nil
}

// update changes a record under the lock, queues it for the store and
// reports it.
func (r *Runner) update(item string, fn func(j *queue.Job)) queue.Job {
	r.mu.Lock()
	j := r.jobs[item]
	fn(j)
	rec := *j
	r.mu.Unlock()
	r.store.Put(rec)
	return rec
}

func (r *Runner) emit(j queue.Job) {
	r.updates <- j
}

// runJob makes the attempts of one job.
func (r *Runner) runJob(it *itemapi.Item, doc []byte, resumed bool) {
	defer r.wg.Done()
	ctx := r.ctx
	name := queue.JobName(r.cfg.Queue, it.Name)
	log := r.log.With("item", it.Name, "job", name)
	jl, err := OpenJobLog(r.LogPath(it.Name), r.cfg.LogMaxBytes)
	if err != nil {
		log.Error("cannot open the job log; output is discarded", "err", err)
	}
	defer jl.Close()

	if resumed {
		// The interrupted attempt did not finish: it does not count.
		r.update(it.Name, func(j *queue.Job) {
			if j.Phase == queue.PhaseRunning && j.Attempts > 0 {
				j.Attempts--
			}
		})
	}
	for {
		rec := r.update(it.Name, func(j *queue.Job) {
			j.Attempts++
			j.Phase = queue.PhaseRunning
			if j.StartedAt.IsZero() {
				j.StartedAt = time.Now().UTC()
			}
		})
		r.emit(rec)
		n := rec.Attempts
		code, dur, err := r.attempt(ctx, it, doc, name, n, jl, resumed)
		resumed = false
		if ctx.Err() != nil {
			// The manager is stopping: the attempt's result does not count;
			// the record stays Running and the job resumes after a restart.
			log.Info("attempt interrupted by shutdown", "attempt", n)
			return
		}
		msg := ""
		switch {
		case err != nil:
			msg = err.Error()
			code = -1
		case code != queue.ExitOK:
			msg = fmt.Sprintf("exit code %d", code)
		}
		final := code == queue.ExitOK || code == queue.ExitPermanent || n >= r.cfg.MaxAttempts
		log.Info("attempt finished", "attempt", n, "exitCode", code, "dur", dur, "err", msg, "final", final)
		if !final {
			rec := r.update(it.Name, func(j *queue.Job) {
				j.Phase = queue.PhasePending
				j.Error = msg
				j.ExitCode = code
				j.LastDuration = dur
			})
			r.emit(rec)
			delay := r.backoff(n)
			jl.Notef("attempt %d failed (%s); retrying in %v", n, msg, delay.Round(time.Millisecond))
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				return
			}
		}
		rec = r.update(it.Name, func(j *queue.Job) {
			j.FinishedAt = time.Now().UTC()
			j.LastDuration = dur
			j.ExitCode = code
			if code == queue.ExitOK {
				j.Phase = queue.PhaseSucceeded
				j.Error = ""
			} else {
				j.Phase = queue.PhaseFailed
				j.Error = msg
				if code == queue.ExitPermanent {
					j.Error = msg + " (permanent: not retried)"
				}
			}
		})
		r.store.DeleteItem(it.Name)
		// The slot is free now; the manager calls Sync before it acks the
		// item, so the final state is on disk before the source forgets it.
		r.emit(rec)
		return
	}
}

func (r *Runner) attempt(ctx context.Context, it *itemapi.Item, doc []byte, name string, n int, jl *JobLog, resumed bool) (int, time.Duration, error) {
	dir, err := os.MkdirTemp(r.cfg.WorkDir, name+"-")
	if err != nil {
		return -1, 0, fmt.Errorf("create the attempt's work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	itemFile := filepath.Join(dir, "item.json")
	if err := os.WriteFile(itemFile, doc, 0o444); err != nil {
		return -1, 0, fmt.Errorf("write the item file: %w", err)
	}
	actx := ctx
	if r.cfg.JobTimeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, r.cfg.JobTimeout)
		defer cancel()
	}
	jl.Notef("attempt %d of %d started", n, r.cfg.MaxAttempts)
	start := time.Now()
	code, err := r.launcher.Launch(actx, &Attempt{Job: name, Item: it, ItemDoc: doc, Number: n, WorkDir: dir, ItemFile: itemFile, Log: jl, Resumed: resumed})
	dur := time.Since(start)
	if err == nil && actx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = fmt.Errorf("timed out after %v", r.cfg.JobTimeout)
	}
	if err != nil {
		jl.Notef("attempt %d: %v", n, err)
	} else {
		jl.Notef("attempt %d exited with code %d after %v", n, code, dur.Round(time.Millisecond))
	}
	return code, dur, err
}

// backoff is the delay before attempt n+1: base·2^(n-1), capped, with
// jitter in [d/2, d].
func (r *Runner) backoff(n int) time.Duration {
	d := r.cfg.BackoffBase << (n - 1)
	if d <= 0 || d > r.cfg.BackoffMax {
		d = r.cfg.BackoffMax
	}
	return d/2 + rand.N(d/2+1)
}
