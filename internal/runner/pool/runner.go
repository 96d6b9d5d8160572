package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
)

// Workers makes the pool's workers exist: processes on this machine
// (Processes), or a Deployment's pods (runner/kube).
type Workers interface {
	// Scale makes n workers exist. idle names the workers waiting for an
	// attempt now: a scale-down stops those first, and a busy worker
	// told to stop finishes its attempt first.
	Scale(ctx context.Context, n int, idle []string) error
}

// Config of the pool runner.
type Config struct {
	local.Config // the record, retries, logs (PendingUntilRan is set)
	Launcher     LauncherConfig
	// Resize is how often the workers are brought to the wanted number
	// even when it did not change (a worker that died is replaced; default
	// 5s).
	Resize time.Duration
}

// Runner is the pool: the local runner's record and attempts, with a
// Launcher that hands each attempt to a worker, and workers kept at the
// manager's parallelism (runner.Sizer).
type Runner struct {
	*local.Runner
	launcher *Launcher
	workers  Workers
	resize   time.Duration
	// stopGrace: how long workers on this machine get to stop with the
	// manager (a lease's TTL, plus the attempt's grace).
	stopGrace time.Duration
	log       *slog.Logger

	running atomic.Bool
	mu      sync.Mutex
	want    int
	changed chan struct{} // a signal (buffered 1)
}

var (
	_ runner.Runner = (*Runner)(nil)
	_ runner.Sizer  = (*Runner)(nil)
)

// New wires the pool runner; Run starts it.
func New(cfg Config, workers Workers) (*Runner, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.Launcher.Queue = cfg.Queue
	if cfg.Launcher.Log == nil {
		cfg.Launcher.Log = cfg.Log
	}
	l, err := NewLauncher(cfg.Launcher)
	if err != nil {
		return nil, err
	}
	cfg.PendingUntilRan = true
	lr, err := local.New(cfg.Config, l)
	if err != nil {
		return nil, err
	}
	if cfg.Resize <= 0 {
		cfg.Resize = 5 * time.Second
	}
	return &Runner{Runner: lr, launcher: l, workers: workers, resize: cfg.Resize, log: cfg.Log,
		stopGrace: l.cfg.TTL + l.cfg.Grace + time.Second,
		want:      1, changed: make(chan struct{}, 1)}, nil
}

// Handler serves the workers' protocol (under PathPrefix).
func (r *Runner) Handler() http.Handler { return r.launcher.Handler() }

// Workers is the pool's provisioner.
func (r *Runner) Workers() Workers { return r.workers }

// Launcher is the pool's launcher (tests watch its idle workers).
func (r *Runner) Launcher() *Launcher { return r.launcher }

// SetParallelism sets the number of workers wanted.
func (r *Runner) SetParallelism(c int) {
	c = max(c, 0)
	r.mu.Lock()
	same := r.want == c
	r.want = c
	r.mu.Unlock()
	if !same {
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
}

// Run runs the local runner and keeps the workers at the wanted number.
func (r *Runner) Run(ctx context.Context, notify func(runner.Job)) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("pool runner: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.keepWorkers(ctx)
	}()
	err := r.Runner.Run(ctx, notify)
	cancel()
	wg.Wait()
	r.launcher.Close()
	if s, ok := r.workers.(interface{ Stop(time.Duration) }); ok {
		// Workers on this machine go with the manager; each gives up its
		// attempt at its next heartbeat (the leases went with Run).
		s.Stop(r.stopGrace)
	}
	return err
}

func (r *Runner) keepWorkers(ctx context.Context) {
	t := time.NewTicker(r.resize)
	defer t.Stop()
	last := -1
	for {
		r.mu.Lock()
		n := r.want
		r.mu.Unlock()
		if err := r.workers.Scale(ctx, n, r.launcher.Idle()); err != nil && ctx.Err() == nil {
			r.log.Warn("cannot bring the pool to its size; trying again", "workers", n, "err", err)
		} else if n != last {
			r.log.Info("pool resized", "workers", n)
			last = n
		}
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
		case <-t.C:
		}
	}
}

// Validate checks a pool's settings that New cannot (for the manager's
// configuration errors).
func Validate(steps [][]string) error {
	if len(steps) > 1 {
		return fmt.Errorf("the pool runs one executor per item (%d steps given): a pipeline (MANAGER_STEPS) needs MANAGER_EXECUTION=jobs", len(steps))
	}
	return nil
}
