package container_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// Cancel and retry through the manager with the container runner: the
// running container is stopped and removed, the job ends cancelled and is
// dead-lettered; retried, a new container runs it to success; the history
// names each attempt's container.
func TestManagerCancelAndRetry(t *testing.T) {
	r := newRig(t, nil)
	mem := memsource.New()
	if err := mem.Put("wait.json", []byte(`{"waitFor":"/runs/go"}`)); err != nil {
		t.Fatal(err)
	}
	lr, err := local.New(local.Config{Queue: r.queue, StateDir: t.TempDir(), MaxAttempts: 1}, r.l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: r.queue, MaxActive: 1}, &manager.InProcess{Src: source.New(mem)}, lr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitState := func(want itemapi.State) itemapi.JobStatus {
		t.Helper()
		var st itemapi.JobStatus
		testutil.Eventually(t, time.Minute, string(want), func() error {
			st, _ = m.Status("wait.json")
			if st.State != want {
				return fmt.Errorf("state %q", st.State)
			}
			return nil
		})
		return st
	}
	testutil.Eventually(t, time.Minute, "the probe started", func() error {
		if r.count("start wait.json") == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	start := time.Now()
	if ok, err := m.Cancel(ctx, "wait.json"); err != nil || !ok {
		t.Fatalf("Cancel: %v %v", ok, err)
	}
	waitState(itemapi.StateCancelled)
	t.Logf("cancel → container stopped and job cancelled in %v", time.Since(start))
	if o, _ := mem.Outcome("wait.json"); o != itemapi.Failed {
		testutil.Eventually(t, 10*time.Second, "dead-lettered", func() error {
			if o, _ := mem.Outcome("wait.json"); o != itemapi.Failed {
				return fmt.Errorf("outcome %q", o)
			}
			return nil
		})
	}
	if left := r.containers(""); len(left) > 0 {
		t.Errorf("containers left after the cancel: %v", left)
	}
	h, _ := m.History(ctx, "wait.json")
	if len(h) != 1 || !strings.HasPrefix(h[0].Where, "container ") || h[0].Reason != "cancelled" {
		t.Errorf("history after the cancel: %+v", h)
	}

	// Retried: it runs again, in a new container, and succeeds.
	if err := os.WriteFile(filepath.Join(r.runs, "go"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := m.Retry(ctx, "wait.json"); err != nil || !ok {
		t.Fatalf("Retry: %v %v", ok, err)
	}
	st := waitState(itemapi.StateSucceeded)
	if st.Attempts != 1 || r.count("start wait.json") != 2 {
		t.Errorf("after the retry: %d attempts, %d starts", st.Attempts, r.count("start wait.json"))
	}
}
