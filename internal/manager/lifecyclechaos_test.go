package manager_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/dirsource"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// Cancels and retries, one at a time and in bulk, thrown at random items
// while they run, fail, retry and are acknowledged: once the storm ends and
// what did not succeed is retried, every item has succeeded once, the
// source has archived it as succeeded, the manager says so, and no item
// ever ran two attempts at once. (The races between a retry, the source's
// events and an acknowledgement that CI found one by one.)
// ITEMQ_LIFECYCLE_CHAOS_ITEMS sets the size (default 150).
func TestLifecycleChaos(t *testing.T) {
	mem := memsource.New()
	items := names("c", chaosSize(t))
	put(t, mem, items...)
	stormLifecycle(t, items, &manager.InProcess{Src: source.New(mem)}, mem.Outcome, mem.Len)
}

// The same storm with the dir source behind its ambassador's HTTP API (the
// watch, the acknowledgements and the redrives over HTTP; real files moved
// to .done/ and .failed/ and back).
func TestLifecycleChaosDirOverHTTP(t *testing.T) {
	root := t.TempDir()
	items := names("c", chaosSize(t))
	for _, it := range items {
		if err := os.WriteFile(filepath.Join(root, it), []byte(it), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := dirsource.New(ctx, dirsource.Config{Root: root, Pattern: "*", Recursive: true, Data: dirsource.DataFile,
		Watch: true, PollInterval: time.Hour, OnDone: dirsource.OnDoneMove, DoneDir: ".done", FailedDir: ".failed"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, stop := ambassador.NewHandler(source.New(d), slog.New(slog.DiscardHandler), "test", time.Second)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { stop(); srv.Close() })
	client, err := itemapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p ...string) bool {
		_, err := os.Stat(filepath.Join(append([]string{root}, p...)...))
		return err == nil
	}
	outcome := func(it string) (itemapi.Outcome, bool) {
		switch {
		case exists(it):
			return "", false // still in the queue
		case exists(".done", it) && !exists(".failed", it):
			return itemapi.Succeeded, true
		case exists(".failed", it):
			return itemapi.Failed, true
		}
		return "", false
	}
	remaining := func() int {
		n := 0
		for _, it := range items {
			if exists(it) {
				n++
			}
		}
		return n
	}
	stormLifecycle(t, items, client, outcome, remaining)
}

// chaosSize is ITEMQ_LIFECYCLE_CHAOS_ITEMS, or 150.
func chaosSize(t *testing.T) int {
	s := os.Getenv("ITEMQ_LIFECYCLE_CHAOS_ITEMS")
	if s == "" {
		return 150
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("ITEMQ_LIFECYCLE_CHAOS_ITEMS=%q: want a positive number", s)
	}
	return n
}

// stormLifecycle runs the items of src through a manager with the local
// runner under 3 s of cancels and retries, then retries what did not
// succeed until every item has; outcome reads what the source did with an
// item, remaining how many items it still holds.
func stormLifecycle(t *testing.T, items []string, src manager.Source, outcome func(string) (itemapi.Outcome, bool), remaining func() int) {
	t.Helper()
	l := &chaosLauncher{running: map[string]int{}}
	l.setFailing(true)
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MinActive: 8, MaxActive: 8, Resync: time.Hour, Log: slog.New(slog.DiscardHandler)}, src, r)
	runManager(t, m)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	storm := time.Now().Add(3 * time.Second)
	actions := 0
	for time.Now().Before(storm) {
		it := items[rng.IntN(len(items))]
		switch r := rng.IntN(20); {
		case r < 9:
			_, _ = m.Cancel(ctx, it)
		case r < 18:
			_, _, _ = m.Retry(ctx, it)
		case r == 18:
			m.RetryJobs(ctx, itemapi.JobSelector{State: itemapi.StateDead, Prefix: it[:3]})
		default:
			m.CancelJobs(ctx, itemapi.JobSelector{Prefix: it[:3]})
		}
		actions++
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	t.Logf("%d actions in the storm", actions)
	l.setFailing(false)

	// Retry what did not succeed until everything has.
	testutil.Eventually(t, 60*time.Second, "every item succeeded", func() error {
		for _, st := range []itemapi.State{itemapi.StateDead, itemapi.StateCancelled, itemapi.StateFailed} {
			m.RetryJobs(ctx, itemapi.JobSelector{State: st})
		}
		for _, it := range items {
			st, _ := m.Status(it)
			o, acked := outcome(it)
			if st.State != itemapi.StateSucceeded || !acked || o != itemapi.Succeeded {
				return fmt.Errorf("%s: state %q, source outcome %q (acked %v)", it, st.State, o, acked)
			}
		}
		return nil
	})
	if n := remaining(); n != 0 {
		t.Errorf("the source still holds %d items", n)
	}
	if v := l.violations(); v != "" {
		t.Fatal(v)
	}
}

// chaosLauncher runs attempts of 0–15 ms that fail half the time while
// failing is on, and records any item with two attempts at once.
type chaosLauncher struct {
	mu      sync.Mutex
	failing bool
	running map[string]int
	twice   []string
}

func (c *chaosLauncher) setFailing(on bool) {
	c.mu.Lock()
	c.failing = on
	c.mu.Unlock()
}

func (c *chaosLauncher) violations() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.twice) == 0 {
		return ""
	}
	return fmt.Sprintf("items with two attempts at once: %v", c.twice)
}

func (c *chaosLauncher) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	c.mu.Lock()
	c.running[a.Item.Name]++
	if c.running[a.Item.Name] > 1 {
		c.twice = append(c.twice, a.Item.Name)
	}
	fail := c.failing && rand.IntN(2) == 0
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running[a.Item.Name]--
		c.mu.Unlock()
	}()
	select {
	case <-time.After(time.Duration(rand.IntN(16)) * time.Millisecond):
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	if fail {
		return 2, nil
	}
	return 0, nil
}
