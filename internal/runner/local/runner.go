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
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/store"
	"github.com/itemq/itemq/internal/sysproc"
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

// AttemptLog is where an attempt's output goes: the executor's output
// (Write) and the runner's own lines (Notef). *JobLog is one; the pool's
// worker sends its lines to the manager.
type AttemptLog interface {
	io.Writer
	Notef(format string, args ...any)
}

// Attempt is what a Launcher gets for one attempt.
type Attempt struct {
	Queue    string        // the queue's name
	Job      string        // the job name, <queue>-<hash> (or a longer hash after a collision)
	Item     *itemapi.Item // the work item
	ItemDoc  []byte        // the item document (contents of WORK_ITEM_FILE)
	Number   int           // 1 for the first attempt
	WorkDir  string        // a private, empty directory, removed after the attempt
	ItemFile string        // WorkDir/item.json, read-only
	Log      AttemptLog    // where the attempt's output goes
	// Resumed is true when the attempt continues a job that was running
	// when the manager stopped (a container launcher may re-adopt it).
	Resumed bool
	// Ran, when set, is told where the attempt runs ("pid 4242",
	// "container <name>"), for the job's history. Launchers call it once
	// the process or container is started.
	Ran func(where string)
}

// ErrCancelled is the cause of an attempt's context when the job was
// cancelled (Runner.Cancel): a Launcher then stops the attempt for good
// (a container is stopped and removed, not left to be adopted).
var ErrCancelled = errors.New("job cancelled")

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
	// Grace is how long the processes a dead manager's attempts left
	// running get to stop after SIGTERM before SIGKILL (default 10s).
	Grace time.Duration
	// JobNames gives an item's candidate job names (default
	// runner.JobNames); tests force hash collisions with it.
	JobNames func(queue, item string) []string
	// PendingUntilRan: an attempt is PhasePending until the launcher calls
	// Attempt.Ran, and its run time counts from then (the pool launcher:
	// an attempt waits there for a worker to take it; the wait is not the
	// item's run time, which is the scaler's S).
	PendingUntilRan bool
	Log             *slog.Logger
}

// Runner implements runner.Runner over a Launcher.
//
// New reads the store's records (so Jobs answers before Run); Run opens the
// store for writing, removes what attempts of a crashed manager left in
// WorkDir, resumes unfinished jobs, and closes the store when it returns.
// Writes (Start, MarkAcked, Forget, Sync, Cancel) wait until Run has opened
// the store.
type Runner struct {
	cfg      Config
	launcher Launcher
	log      *slog.Logger

	ready  chan struct{} // closed when Run has opened the store
	done   chan struct{} // closed when Run stops taking new jobs
	starts chan *itemapi.Item

	mu        sync.Mutex
	store     *store.Store
	jobs      map[string]*runner.Job // by item
	names     map[string]string      // job name → item
	cancels   map[string]context.CancelCauseFunc
	cancelled map[string]bool // Cancel was called for these unfinished jobs
	updates   chan runner.Job
	wg        sync.WaitGroup
	started   bool
}

var _ runner.Runner = (*Runner)(nil)

// New reads the runner's records (read-only: Run opens the store for
// writing). Call Run before Start.
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
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.JobNames == nil {
		cfg.JobNames = runner.JobNames
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
	r := &Runner{
		cfg: cfg, launcher: l, log: cfg.Log,
		ready: make(chan struct{}), done: make(chan struct{}), starts: make(chan *itemapi.Item),
		jobs: map[string]*runner.Job{}, names: map[string]string{},
		cancels: map[string]context.CancelCauseFunc{}, cancelled: map[string]bool{},
		updates: make(chan runner.Job, 1024),
	}
	recs, err := r.load(context.Background())
	if err != nil {
		return nil, err
	}
	r.setRecords(recs)
	return r, nil
}

// load reads the records: the store is opened and closed again.
func (r *Runner) load(ctx context.Context) ([]runner.Job, error) {
	st, err := store.Open(r.cfg.StateDir, store.Options{NoSync: true})
	if err != nil {
		return nil, err
	}
	recs, err := st.Load(ctx)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close the store: %w", cerr)
	}
	return recs, err
}

func (r *Runner) setRecords(recs []runner.Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range recs {
		j := recs[i]
		if j.Name == "" {
			j.Name = runner.JobName(r.cfg.Queue, j.Item)
		}
		r.jobs[j.Item] = &j
		r.names[j.Name] = j.Item
	}
}

// LogPath is where the output of an item's job is kept (under the job's
// name, as resolved when it started).
func (r *Runner) LogPath(item string) string {
	r.mu.Lock()
	name := r.cfg.JobNames(r.cfg.Queue, item)[0]
	if j, ok := r.jobs[item]; ok {
		name = j.Name
	}
	r.mu.Unlock()
	return r.logPath(name)
}

func (r *Runner) logPath(name string) string {
	return filepath.Join(r.cfg.StateDir, "logs", name+".log")
}

// Run opens the store, removes the attempt directories a crash left, resumes
// the jobs that were unfinished when the manager last stopped, then starts
// jobs and delivers updates until ctx ends. It waits for running attempts to
// stop before it returns and closes the store.
func (r *Runner) Run(ctx context.Context, notify func(runner.Job)) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("local runner: Run called twice")
	}
	r.started = true
	r.mu.Unlock()
	defer close(r.done)
	st, err := store.Open(r.cfg.StateDir, store.Options{NoSync: r.cfg.NoSync})
	if err != nil {
		return err
	}
	recs, err := st.Load(ctx)
	if err != nil {
		st.Close()
		return err
	}
	r.mu.Lock()
	r.store = st
	r.mu.Unlock()
	r.setRecords(recs)
	r.stopLeftovers()
	r.removeLeftovers()
	// What to resume is what the store held, taken before Start may add
	// jobs (their documents may not be written yet).
	var resume []*runner.Job
	r.mu.Lock()
	for _, j := range r.jobs {
		if !j.Phase.Finished() {
			c := *j
			resume = append(resume, &c)
		}
	}
	r.mu.Unlock()
	close(r.ready)
	for _, j := range resume {
		doc, err := st.Item(j.Item)
		var it itemapi.Item
		if err == nil && doc != nil {
			err = json.Unmarshal(doc, &it)
		}
		if err != nil || doc == nil {
			r.log.Error("cannot resume job: its item document is missing or bad; it will be started again", "item", j.Item, "err", err)
			r.mu.Lock()
			delete(r.jobs, j.Item)
			delete(r.names, j.Name)
			r.mu.Unlock()
			st.Delete(j.Item)
			continue
		}
		r.log.Info("resuming job interrupted by a restart", "item", j.Item, "job", j.Name, "attempts", j.Attempts)
		r.spawn(ctx, &it, doc, true)
	}
	// The starter hands Start's jobs to goroutines that end with ctx.
	starterDone := make(chan struct{})
	go func() {
		defer close(starterDone)
		for {
			select {
			case it := <-r.starts:
				doc, _ := json.Marshal(it)
				r.spawn(ctx, it, doc, false)
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case j := <-r.updates:
			notify(j)
		case <-ctx.Done():
			<-starterDone
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
							return st.Close()
						}
					}
				}
			}
		}
	}
}

// spawn runs a job's attempts in a goroutine, under a context of its own
// (Cancel ends it).
func (r *Runner) spawn(ctx context.Context, it *itemapi.Item, doc []byte, resumed bool) {
	jctx, cancel := context.WithCancelCause(ctx)
	r.mu.Lock()
	r.cancels[it.Name] = cancel
	cancelled := r.cancelled[it.Name]
	r.mu.Unlock()
	if cancelled {
		cancel(ErrCancelled)
	}
	r.wg.Add(1)
	go func() {
		defer cancel(nil)
		r.runJob(jctx, it, doc, resumed)
	}()
}

// attemptDirRE matches the attempt directories of this queue's jobs:
// "<job name>-<random digits>", the job name "<queue>-<hex>".
func (r *Runner) attemptDirRE() *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(r.cfg.Queue) + `-[0-9a-f]{10,32}-[0-9]+$`)
}

// stopLeftovers stops what attempts of a manager that died still run: their
// executors got SIGTERM when it died (Pdeathsig) and may still be finishing
// their shutdown, or running a script that traps it. They are found by
// their working directories (this queue's attempt directories), asked to
// stop (SIGTERM to each process group), killed after Grace, and waited for,
// before any attempt starts: so no job's new attempt ever runs beside the
// one it replaces.
func (r *Runner) stopLeftovers() {
	re := r.attemptDirRE()
	groups := sysproc.GroupsIn(r.cfg.WorkDir, re.MatchString)
	if len(groups) == 0 {
		return
	}
	r.log.Warn("stopping processes that attempts of a previous manager left running", "groups", groups, "grace", r.cfg.Grace)
	if !sysproc.StopGroups(groups, r.cfg.Grace) {
		r.log.Warn("processes of a previous manager's attempts are still there after SIGKILL (zombies not reaped?)", "groups", groups)
	}
}

// removeLeftovers removes the attempt directories that attempts of a
// manager that died (SIGKILL, power loss) left in WorkDir. It runs before
// any attempt starts, so none of this queue's directories is in use; other
// queues' and foreign directories do not match the pattern.
func (r *Runner) removeLeftovers() {
	ents, err := os.ReadDir(r.cfg.WorkDir)
	if err != nil {
		r.log.Warn("cannot list the work dir to remove leftovers", "dir", r.cfg.WorkDir, "err", err)
		return
	}
	re := r.attemptDirRE()
	for _, e := range ents {
		if !e.IsDir() || !re.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(r.cfg.WorkDir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			r.log.Warn("cannot remove the directory of an interrupted attempt", "dir", p, "err", err)
			continue
		}
		r.log.Info("removed the directory of an attempt interrupted by a crash", "dir", p)
	}
}

// waitReady waits until Run has opened the store.
func (r *Runner) waitReady(ctx context.Context) (*store.Store, error) {
	select {
	case <-r.ready:
	case <-r.done:
		return nil, errors.New("local runner is not running")
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the local runner to start: %w", context.Cause(ctx))
	}
	select {
	case <-r.done:
		return nil, errors.New("local runner is not running")
	default:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store, nil
}

// Start starts the job of an item.
func (r *Runner) Start(ctx context.Context, it *itemapi.Item) error {
	doc, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("encode item %q: %w", it.Name, err)
	}
	st, err := r.waitReady(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if _, ok := r.jobs[it.Name]; ok {
		r.mu.Unlock()
		return runner.ErrAlreadyExists
	}
	name, ok := runner.ResolveJobName(r.cfg.JobNames(r.cfg.Queue, it.Name), it.Name, func(n string) string { return r.names[n] })
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("start %q: every candidate job name is taken by another item", it.Name)
	}
	if name != r.cfg.JobNames(r.cfg.Queue, it.Name)[0] {
		r.log.Warn("job name already used by another item (hash collision); using a longer name", "item", it.Name, "job", name)
	}
	j := &runner.Job{Item: it.Name, Name: name, Phase: runner.PhasePending, CreatedAt: time.Now().UTC()}
	r.jobs[it.Name] = j
	r.names[name] = it.Name
	r.mu.Unlock()
	st.PutItem(it.Name, doc)
	st.Put(*j)
	select {
	case r.starts <- it:
		return nil
	case <-r.done:
	case <-ctx.Done():
	}
	// Not handed over: the record stays Pending and the job resumes when
	// the runner next starts.
	return nil
}

// Jobs lists every record (before Run, as New read them).
func (r *Runner) Jobs(context.Context) ([]runner.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runner.Job, 0, len(r.jobs))
	for _, j := range r.jobs {
		c := *j
		c.History = slices.Clone(j.History)
		out = append(out, c)
	}
	return out, nil
}

// Sync waits until every record so far is on disk (runner.Syncer).
func (r *Runner) Sync(ctx context.Context) error {
	st, err := r.waitReady(ctx)
	if err != nil {
		return err
	}
	return st.Sync(ctx)
}

// MarkAcked records the acknowledgement. It is not synced at once: if it is
// lost in a crash, the manager acks again and the source answers NotFound,
// which counts as done.
func (r *Runner) MarkAcked(ctx context.Context, item string, outcome itemapi.Outcome) error {
	st, err := r.waitReady(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	j, ok := r.jobs[item]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("mark %q acked: %w", item, runner.ErrNotFound)
	}
	j.Acked = outcome
	rec := *j
	r.mu.Unlock()
	st.Put(rec)
	return nil
}

// Forget drops a finished job's record.
func (r *Runner) Forget(ctx context.Context, item string) error {
	st, err := r.waitReady(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	j, ok := r.jobs[item]
	if ok && !j.Phase.Finished() {
		r.mu.Unlock()
		return fmt.Errorf("forget %q: its job is not finished", item)
	}
	delete(r.jobs, item)
	if ok && r.names[j.Name] == item {
		delete(r.names, j.Name)
	}
	r.mu.Unlock()
	if ok {
		st.Delete(item)
		_ = os.Remove(r.logPath(j.Name))
	}
	return nil
}

// Cancel stops the job's attempt (or its wait for a retry) for good: see
// runner.Runner.
func (r *Runner) Cancel(ctx context.Context, item string) error {
	if _, err := r.waitReady(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[item]
	if !ok {
		return fmt.Errorf("cancel %q: %w", item, runner.ErrNotFound)
	}
	if j.Phase.Finished() {
		return nil
	}
	r.cancelled[item] = true
	if c := r.cancels[item]; c != nil {
		c(ErrCancelled)
	}
	return nil
}

func (r *Runner) isCancelled(item string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancelled[item]
}

// update changes a record under the lock, queues it for the store and
// reports it.
func (r *Runner) update(item string, fn func(j *runner.Job)) runner.Job {
	r.mu.Lock()
	j := r.jobs[item]
	fn(j)
	rec := *j
	rec.History = slices.Clone(j.History) // the copy goes to other goroutines
	st := r.store
	r.mu.Unlock()
	st.Put(rec)
	return rec
}

func (r *Runner) emit(j runner.Job) {
	r.updates <- j
}

// runJob makes the attempts of one job. ctx is the job's: it ends when Run
// stops (the record stays unfinished and resumes after a restart) or when
// the job is cancelled (cause ErrCancelled).
func (r *Runner) runJob(ctx context.Context, it *itemapi.Item, doc []byte, resumed bool) {
	defer r.wg.Done()
	r.mu.Lock()
	j := r.jobs[it.Name]
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		// Once this job has finished, the manager may have dropped it and
		// started the item's next job, whose cancel is not this one's.
		if cur := r.jobs[it.Name]; cur == nil || cur == j {
			delete(r.cancels, it.Name)
		}
		r.mu.Unlock()
	}()
	if j == nil {
		r.log.Error("job record missing; not running it", "item", it.Name)
		return
	}
	name := j.Name
	log := r.log.With("item", it.Name, "job", name)
	jl, err := OpenJobLog(r.logPath(name), r.cfg.LogMaxBytes)
	if err != nil {
		log.Error("cannot open the job log; output is discarded", "err", err)
	}
	defer jl.Close()
	cancelled := func() bool { return errors.Is(context.Cause(ctx), ErrCancelled) }

	if resumed {
		// The interrupted attempt did not finish: it does not count.
		r.update(it.Name, func(j *runner.Job) {
			// Running, or (PendingUntilRan) offered to its launcher: not
			// a Pending job waiting for its retry, whose attempt ended.
			if (j.Phase == runner.PhaseRunning || j.Phase == runner.PhasePending && j.RetryAt.IsZero()) && j.Attempts > 0 {
				j.Attempts--
			}
			if h := j.History; len(h) > 0 && h[len(h)-1].FinishedAt.IsZero() {
				h[len(h)-1].FinishedAt = time.Now().UTC()
				h[len(h)-1].Reason = "interrupted: the manager stopped"
			}
		})
	}
	var (
		code int
		dur  time.Duration
		msg  string
	)
	for {
		// One look at ctx: a cancel between two looks (cancelled, then
		// ended) was taken for a shutdown, and the job stayed running.
		if ctx.Err() != nil {
			if cancelled() {
				r.finish(it.Name, code, dur, msg, true, jl)
			}
			return
		}
		rec := r.update(it.Name, func(j *runner.Job) {
			j.Attempts++
			j.RetryAt = time.Time{}
			now := time.Now().UTC()
			if r.cfg.PendingUntilRan {
				j.Phase = runner.PhasePending
			} else {
				j.Phase = runner.PhaseRunning
				if j.StartedAt.IsZero() {
					j.StartedAt = now
				}
			}
			j.AppendHistory(itemapi.Attempt{Number: j.Attempts, StartedAt: now})
		})
		r.emit(rec)
		n := rec.Attempts
		var err error
		code, dur, err = r.attempt(ctx, it, doc, name, n, jl, resumed)
		resumed = false
		if ctx.Err() != nil {
			if cancelled() {
				r.finish(it.Name, code, dur, msg, true, jl)
				return
			}
			// The manager is stopping: the attempt's result does not count;
			// the record stays Running and the job resumes after a restart.
			log.Info("attempt interrupted by shutdown", "attempt", n)
			return
		}
		msg = ""
		switch {
		case err != nil:
			msg = err.Error()
			code = -1
		case code != runner.ExitOK:
			msg = fmt.Sprintf("exit code %d", code)
		}
		r.endAttempt(it.Name, n, code, msg)
		final := code == runner.ExitOK || code == runner.ExitPermanent || n >= r.cfg.MaxAttempts
		log.Info("attempt finished", "attempt", n, "exitCode", code, "dur", dur, "err", msg, "final", final)
		if final {
			r.finish(it.Name, code, dur, msg, false, jl)
			return
		}
		delay := r.backoff(n)
		rec = r.update(it.Name, func(j *runner.Job) {
			j.Phase = runner.PhasePending
			j.Error = msg
			j.ExitCode = code
			j.LastDuration = dur
			j.RetryAt = time.Now().Add(delay).UTC()
		})
		r.emit(rec)
		jl.Notef("attempt %d failed (%s); retrying in %v", n, msg, delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// endAttempt records how attempt n ended in the job's history.
func (r *Runner) endAttempt(item string, n, code int, reason string) {
	r.update(item, func(j *runner.Job) {
		for i := len(j.History) - 1; i >= 0; i-- {
			if a := &j.History[i]; a.Number == n && a.FinishedAt.IsZero() {
				a.FinishedAt = time.Now().UTC()
				c := code
				a.ExitCode = &c
				a.Reason = reason
				if reason == "" {
					a.Reason = "succeeded"
				}
				return
			}
		}
	})
}

// running records that attempt n, queued by its launcher until now, runs.
func (r *Runner) running(item string, n int, at time.Time) runner.Job {
	return r.update(item, func(j *runner.Job) {
		j.Phase = runner.PhaseRunning
		if j.StartedAt.IsZero() {
			j.StartedAt = at.UTC()
		}
		for i := len(j.History) - 1; i >= 0; i-- {
			if j.History[i].Number == n {
				j.History[i].StartedAt = at.UTC()
				return
			}
		}
	})
}

// setWhere records where attempt n runs.
func (r *Runner) setWhere(item string, n int, where string) {
	r.update(item, func(j *runner.Job) {
		for i := len(j.History) - 1; i >= 0; i-- {
			if j.History[i].Number == n {
				j.History[i].Where = where
				return
			}
		}
	})
}

// finish records a job's final state and reports it.
func (r *Runner) finish(item string, code int, dur time.Duration, msg string, cancelled bool, jl *JobLog) {
	rec := r.update(item, func(j *runner.Job) {
		j.FinishedAt = time.Now().UTC()
		j.RetryAt = time.Time{}
		if h := j.History; cancelled && len(h) > 0 && h[len(h)-1].FinishedAt.IsZero() {
			// The attempt the cancel stopped.
			a := &h[len(h)-1]
			a.FinishedAt = j.FinishedAt
			c := code
			a.ExitCode = &c
			a.Reason = runner.CancelledError
		}
		j.LastDuration = dur
		j.ExitCode = code
		switch {
		case cancelled:
			j.Phase = runner.PhaseFailed
			j.Cancelled = true
			j.Error = runner.CancelledError
		case code == runner.ExitOK:
			j.Phase = runner.PhaseSucceeded
			j.Error = ""
		default:
			j.Phase = runner.PhaseFailed
			j.Error = msg
			if code == runner.ExitPermanent {
				j.Error = msg + " (permanent: not retried)"
			}
		}
	})
	if cancelled {
		jl.Notef("job cancelled")
	}
	r.mu.Lock()
	delete(r.cancelled, item)
	st := r.store
	r.mu.Unlock()
	st.DeleteItem(item)
	// The slot is free now; the manager calls Sync before it acks the
	// item, so the final state is on disk before the source forgets it.
	r.emit(rec)
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
	ran := func(where string) {
		r.setWhere(it.Name, n, where)
		if r.cfg.PendingUntilRan {
			start = time.Now()
			r.emit(r.running(it.Name, n, start))
		}
	}
	code, err := r.launcher.Launch(actx, &Attempt{Queue: r.cfg.Queue, Job: name, Item: it, ItemDoc: doc, Number: n, WorkDir: dir, ItemFile: itemFile, Log: jl, Resumed: resumed, Ran: ran})
	dur := time.Since(start)
	if actx.Err() == context.DeadlineExceeded && ctx.Err() == nil { // however the stopped attempt ended
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
