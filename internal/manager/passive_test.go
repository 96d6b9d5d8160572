package manager_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// memRunner is a Runner whose jobs succeed as soon as they start; it
// counts the calls that write.
type memRunner struct {
	mu      sync.Mutex
	jobs    map[string]runner.Job
	starts  map[string]int
	acks    int
	forgets int
	notify  func(runner.Job)
	updates chan runner.Job
}

func newMemRunner(jobs ...runner.Job) *memRunner {
	r := &memRunner{jobs: map[string]runner.Job{}, starts: map[string]int{}, updates: make(chan runner.Job, 1024)}
	for _, j := range jobs {
		r.jobs[j.Item] = j
	}
	return r
}

func (r *memRunner) Run(ctx context.Context, notify func(runner.Job)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-r.updates:
			notify(j)
		}
	}
}

func (r *memRunner) Start(_ context.Context, it *itemapi.Item) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.jobs[it.Name]; ok {
		return runner.ErrAlreadyExists
	}
	r.starts[it.Name]++
	now := time.Now()
	j := runner.Job{Item: it.Name, Name: runner.JobName("test", it.Name), Phase: runner.PhaseSucceeded, Attempts: 1, CreatedAt: now, StartedAt: now, FinishedAt: now}
	r.jobs[it.Name] = j
	r.updates <- j
	return nil
}

func (r *memRunner) Jobs(context.Context) ([]runner.Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runner.Job
	for _, j := range r.jobs {
		out = append(out, j)
	}
	return out, nil
}

func (r *memRunner) MarkAcked(_ context.Context, item string, outcome itemapi.Outcome) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[item]
	j.Acked = outcome
	r.jobs[item] = j
	r.acks++
	return nil
}

func (r *memRunner) Forget(_ context.Context, item string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, item)
	r.forgets++
	return nil
}

func (r *memRunner) Cancel(context.Context, string) error { return nil }

func (r *memRunner) counts() (starts, acks, forgets int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.starts {
		starts += n
	}
	return starts, r.acks, r.forgets
}

// A passive manager (a standby replica) follows the source and the runner
// and answers the status API, but starts, acknowledges and forgets nothing
// until it becomes active; then it catches up at once.
func TestPassiveManager(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "new1", "new2")
	done := time.Now().Add(-time.Hour)
	r := newMemRunner(
		runner.Job{Item: "finished", Name: runner.JobName("test", "finished"), Phase: runner.PhaseSucceeded, Attempts: 1, CreatedAt: done, FinishedAt: done},
		runner.Job{Item: "back", Name: runner.JobName("test", "back"), Phase: runner.PhaseSucceeded, Attempts: 1, CreatedAt: done, FinishedAt: done, Acked: itemapi.Succeeded},
	)
	put(t, mem, "finished")
	m := manager.New(manager.Config{Queue: "test", MaxActive: 4, MinActive: 4, Resync: time.Hour, Log: slog.New(slog.DiscardHandler)},
		&manager.InProcess{Src: source.New(mem)}, r)
	m.SetActive(false)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()

	testutil.Eventually(t, 10*time.Second, "passive manager synced", m.Ready)
	// "back" was archived before the start and is back in the source: new
	// work, but dropping its old job is a write, put off while passive.
	put(t, mem, "back", "sentinel") // events arrive in order: once sentinel is known, so is back's return
	m.Reconcile()
	for item, want := range map[string]itemapi.State{"sentinel": itemapi.StatePending, "new1": itemapi.StatePending, "new2": itemapi.StatePending, "finished": itemapi.StateSucceeded, "back": itemapi.StateSucceeded} {
		testutil.Eventually(t, 10*time.Second, "status of "+item, func() error {
			if st, ok := m.Status(item); !ok || st.State != want {
				return fmt.Errorf("%+v, want %s", st, want)
			}
			return nil
		})
	}
	if s, a, f := r.counts(); s+a+f != 0 {
		t.Fatalf("passive manager wrote: %d starts, %d acks, %d forgets", s, a, f)
	}
	if _, acked := mem.Outcome("finished"); acked {
		t.Fatal("passive manager acknowledged an item")
	}

	m.SetActive(true)
	waitOutcomes(t, mem, []string{"new1", "new2", "sentinel", "finished", "back"}, itemapi.Succeeded)
	testutil.Eventually(t, 10*time.Second, "acks recorded", func() error {
		if s, a, f := r.counts(); s != 4 || a != 5 || f != 1 {
			return fmt.Errorf("%d starts (want 4), %d acks (want 5), %d forgets (want 1)", s, a, f)
		}
		return nil
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, item := range []string{"new1", "new2", "sentinel", "back"} {
		if r.starts[item] != 1 {
			t.Errorf("%s started %d times", item, r.starts[item])
		}
	}
}
