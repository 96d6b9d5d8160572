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
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// lateNotify delivers the finish of item "late" only when hold is closed,
// as a runner whose updates lag behind its listing does.
type lateNotify struct {
	runner.Runner
	hold chan struct{}
}

func (l *lateNotify) Run(ctx context.Context, notify func(runner.Job)) error {
	return l.Runner.Run(ctx, func(j runner.Job) {
		if j.Item == "late" && j.Phase.Finished() {
			go func() {
				<-l.hold
				notify(j)
			}()
			return
		}
		notify(j)
	})
}

// A job whose finish a resync lists before the runner's update arrives
// still gets its completion event, once (the CI run of 2026-12-03 lost a
// webhook this way: the listing recorded the job as finished, and the
// update that came later was no longer a change).
func TestFinishSeenFirstInAListing(t *testing.T) {
	mem := memsource.New()
	lc := local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}
	lr, err := local.New(lc, newScripted(func(string, int) int { return 0 }))
	if err != nil {
		t.Fatal(err)
	}
	r := &lateNotify{Runner: lr, hold: make(chan struct{})}
	var mu sync.Mutex
	events := map[string][]string{}
	cfg := manager.Config{Queue: "test", MaxActive: 2, MinActive: 2, Resync: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
		OnFinish: func(event string, st itemapi.JobStatus, id string) {
			mu.Lock()
			events[st.Item] = append(events[st.Item], event)
			mu.Unlock()
		}}
	m := manager.New(cfg, &manager.InProcess{Src: source.New(mem)}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	put(t, mem, "late")
	testutil.Eventually(t, 30*time.Second, "the listing shows it finished and the manager took it", func() error {
		if st, ok := m.Status("late"); !ok || st.State != itemapi.StateSucceeded {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	close(r.hold)
	waitOutcomes(t, mem, []string{"late"}, itemapi.Succeeded)
	time.Sleep(300 * time.Millisecond) // the late update, and resyncs after it
	mu.Lock()
	defer mu.Unlock()
	if got := events["late"]; len(got) != 1 || got[0] != manager.EventSucceeded {
		t.Errorf("events of late: %v, want one %q", got, manager.EventSucceeded)
	}
}
