// Package runnertest is the conformance suite of runner.Runner: every
// runner runs it against its real backend (processes, podman, the test
// control plane), so that the manager can rely on one behaviour.
package runnertest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

// Behaviour is what the executor does with an item.
type Behaviour int

const (
	Succeed Behaviour = iota // exit 0 at once
	Fail                     // exit 1 (retryable), every attempt
	Block                    // run until stopped
)

// Harness is one runner under test, on its backend.
type Harness struct {
	// Runner is a new runner (Run not called yet). The suite runs it.
	Runner runner.Runner
	// Item makes an item whose executor behaves as b.
	Item func(name string, b Behaviour) *itemapi.Item
	// Env returns the environment the executor of job j (which succeeded,
	// for an item made with Succeed) saw, and the EnvSpec it should have
	// been built from: the suite checks that they agree with
	// runner.ExecutorEnv. Each runner proves it its own way (a process
	// prints its environment; a pod spec is read).
	Env func(t *testing.T, j runner.Job) (got map[string]string, want runner.EnvSpec)
	// RunningTimeout bounds the waits for a job's state (default 60s).
	RunningTimeout time.Duration
}

// suite is a running runner and the updates it delivered.
type suite struct {
	h       Harness
	mu      sync.Mutex
	cond    *sync.Cond
	last    map[string]runner.Job
	history map[string][]runner.Job
	overlap atomic.Bool
}

// RunConformanceTests runs the suite. newHarness is called once: the
// subtests share one runner (keep each runner's run short).
func RunConformanceTests(t *testing.T, newHarness func(t *testing.T) Harness) {
	h := newHarness(t)
	if h.RunningTimeout <= 0 {
		h.RunningTimeout = 60 * time.Second
	}
	s := &suite{h: h, last: map[string]runner.Job{}, history: map[string][]runner.Job{}}
	s.cond = sync.NewCond(&s.mu)
	ctx, cancel := context.WithCancel(context.Background())
	// The manager lists before it runs the runner: that must work.
	if _, err := h.Runner.Jobs(ctx); err != nil {
		t.Fatalf("Jobs before Run: %v", err)
	}
	var inFlight atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- h.Runner.Run(ctx, func(j runner.Job) {
			if inFlight.Add(1) > 1 {
				s.overlap.Store(true)
			}
			time.Sleep(time.Millisecond) // widen the window of an overlap
			s.mu.Lock()
			s.last[j.Item] = j
			s.history[j.Item] = append(s.history[j.Item], j)
			s.cond.Broadcast()
			s.mu.Unlock()
			inFlight.Add(-1)
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	t.Run("StartTwiceRefused", func(t *testing.T) {
		it := h.Item("twice", Succeed)
		s.start(t, it)
		if err := h.Runner.Start(ctx, it); !errors.Is(err, runner.ErrAlreadyExists) {
			t.Fatalf("second Start = %v, want ErrAlreadyExists", err)
		}
		s.waitFor(t, it.Name, "succeeded", func(j runner.Job) bool { return j.Phase == runner.PhaseSucceeded })
		if err := h.Runner.Start(ctx, it); !errors.Is(err, runner.ErrAlreadyExists) {
			t.Fatalf("Start of a finished job = %v, want ErrAlreadyExists", err)
		}
	})
	t.Run("SecondRunRefused", func(t *testing.T) {
		// Run is running (a job finished above).
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		if err := h.Runner.Run(rctx, func(runner.Job) {}); err == nil {
			t.Error("a second Run was accepted")
		}
	})
	t.Run("FinishedStayListed", func(t *testing.T) {
		it := h.Item("listed", Succeed)
		s.start(t, it)
		s.waitFor(t, it.Name, "succeeded", func(j runner.Job) bool { return j.Phase == runner.PhaseSucceeded })
		jobs, err := h.Runner.Jobs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.Item == it.Name {
				if j.Phase != runner.PhaseSucceeded || j.Name == "" {
					t.Fatalf("listed as %+v", j)
				}
				return
			}
		}
		t.Fatalf("a finished job is not listed: %+v", jobs)
	})
	t.Run("UnknownItems", func(t *testing.T) {
		if err := h.Runner.Forget(ctx, "never-started"); err != nil {
			t.Errorf("Forget of an unknown item = %v, want nil", err)
		}
		if err := h.Runner.Cancel(ctx, "never-started"); !errors.Is(err, runner.ErrNotFound) {
			t.Errorf("Cancel of an unknown item = %v, want ErrNotFound", err)
		}
	})
	t.Run("Environment", func(t *testing.T) {
		it := h.Item("env", Succeed)
		s.start(t, it)
		j := s.waitFor(t, it.Name, "succeeded", func(j runner.Job) bool { return j.Phase == runner.PhaseSucceeded })
		got, spec := h.Env(t, j)
		if spec.Job != j.Name {
			t.Errorf("the spec's job name %q is not the job's %q", spec.Job, j.Name)
		}
		want := runner.ExecutorEnv(spec)
		for _, e := range want {
			if g, ok := got[e.Name]; !ok || g != e.Value {
				t.Errorf("%s = %q (set: %v), want %q", e.Name, g, ok, e.Value)
			}
		}
		wanted := map[string]bool{}
		for _, e := range want {
			wanted[e.Name] = true
		}
		for _, k := range []string{"WORK_ITEM_FILE", "OUTPUT_DIR", "INPUT_DIR", "OUTPUT_URL", "ITEMQ_QUEUE", "ITEMQ_JOB_NAME", "ITEMQ_ATTEMPT", "ITEMQ_STEP", "ITEMQ_STEPS"} {
			if _, ok := got[k]; ok && !wanted[k] {
				t.Errorf("%s=%q is set but not in the contract for this step", k, got[k])
			}
		}
	})
	t.Run("CancelStopsAttempt", func(t *testing.T) {
		it := h.Item("cancel", Block)
		s.start(t, it)
		s.waitFor(t, it.Name, "running", func(j runner.Job) bool { return j.Phase == runner.PhaseRunning })
		if err := h.Runner.Cancel(ctx, it.Name); err != nil {
			t.Fatal(err)
		}
		j := s.waitFor(t, it.Name, "cancelled", func(j runner.Job) bool { return j.Phase.Finished() })
		if j.Phase != runner.PhaseFailed || !j.Cancelled || j.Error != runner.CancelledError {
			t.Fatalf("after Cancel: %+v", j)
		}
		if err := h.Runner.Cancel(ctx, it.Name); err != nil {
			t.Errorf("Cancel of a finished job = %v, want nil", err)
		}
		time.Sleep(500 * time.Millisecond)
		if l := s.lastOf(it.Name); l.Phase != runner.PhaseFailed || !l.Cancelled {
			t.Errorf("a cancelled job changed: %+v", l)
		}
	})
	t.Run("RetryWaitIsNotRunning", func(t *testing.T) {
		it := h.Item("retry", Fail)
		s.start(t, it)
		j := s.waitFor(t, it.Name, "waiting for a retry", func(j runner.Job) bool { return !j.RetryAt.IsZero() || j.Phase.Finished() })
		if j.Phase != runner.PhasePending || j.RetryAt.IsZero() || j.Attempts < 1 {
			t.Fatalf("after a failed attempt: %+v, want Pending with RetryAt set", j)
		}
		// A job waiting for its retry is cancelled at once.
		if err := h.Runner.Cancel(ctx, it.Name); err != nil {
			t.Fatal(err)
		}
		j = s.waitFor(t, it.Name, "cancelled", func(j runner.Job) bool { return j.Phase.Finished() })
		if !j.Cancelled || !j.RetryAt.IsZero() {
			t.Fatalf("after Cancel in backoff: %+v", j)
		}
	})
	t.Run("NotificationsSerial", func(t *testing.T) {
		var items []*itemapi.Item
		for i := range 4 {
			it := h.Item(fmt.Sprintf("serial-%d", i), Succeed)
			items = append(items, it)
			s.start(t, it)
		}
		for _, it := range items {
			s.waitFor(t, it.Name, "succeeded", func(j runner.Job) bool { return j.Phase == runner.PhaseSucceeded })
		}
		if s.overlap.Load() {
			t.Fatal("notify was called concurrently")
		}
	})
}

func (s *suite) start(t *testing.T, it *itemapi.Item) {
	t.Helper()
	if err := s.h.Runner.Start(context.Background(), it); err != nil {
		t.Fatalf("Start %q: %v", it.Name, err)
	}
}

func (s *suite) lastOf(item string) runner.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[item]
}

// waitFor waits until an update of item satisfies ok, and returns it.
func (s *suite) waitFor(t *testing.T, item, what string, ok func(runner.Job) bool) runner.Job {
	t.Helper()
	deadline := time.Now().Add(s.h.RunningTimeout)
	stop := time.AfterFunc(s.h.RunningTimeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := 0
	for {
		h := s.history[item]
		for ; seen < len(h); seen++ {
			if ok(h[seen]) {
				return h[seen]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s within %v; updates: %+v", item, what, s.h.RunningTimeout, h)
		}
		s.cond.Wait()
	}
}

// EnvFromLog reads the "env NAME=VALUE" lines the probe executor
// (internal/runner/container/testdata/probe) printed into a job's log.
func EnvFromLog(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kv, ok := strings.CutPrefix(sc.Text(), "env "); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env
}

// Held is a runner that reports the jobs it was given and starts nothing
// (for the manager's and the dashboard's benchmarks).
type Held struct{ Records []runner.Job }

var _ runner.Runner = (*Held)(nil)

func (h *Held) Run(ctx context.Context, _ func(runner.Job)) error { <-ctx.Done(); return nil }
func (h *Held) Start(context.Context, *itemapi.Item) error        { return nil }
func (h *Held) Jobs(context.Context) ([]runner.Job, error)        { return h.Records, nil }
func (h *Held) Cancel(context.Context, string) error              { return nil }
func (h *Held) Forget(context.Context, string) error              { return nil }
func (h *Held) MarkAcked(context.Context, string, itemapi.Outcome) error {
	return nil
}

// ProbeItem is an item for the probe executor
// (internal/runner/container/testdata/probe) that behaves as b; a
// succeeding one prints its environment (EnvFromLog reads it).
func ProbeItem(name string, b Behaviour) *itemapi.Item {
	data := `{"printEnv":true}`
	switch b {
	case Fail:
		data = `{"exit":1}`
	case Block:
		data = `{"sleepMs":600000}`
	}
	return itemapi.NewItem(name, []byte(data))
}
