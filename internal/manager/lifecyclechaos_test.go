package manager_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/dirsource"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/source/redissource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
	"github.com/redis/go-redis/v9"
)

// Cancels and retries, one at a time and in bulk, thrown at random items
// while they run, fail, retry and are acknowledged: once the storm ends and
// what did not succeed is retried, every item has succeeded once, the
// source has archived it as succeeded, the manager says so, and no item
// ever ran two attempts at once. (The races between a retry, the source's
// events and an acknowledgement that CI found one by one.)
// ITEMQ_CHAOS_ITEMS sets the size (default 150; make chaos: 2,000).
func TestLifecycleChaos(t *testing.T) {
	mem := memsource.New()
	items := names("c", testutil.ChaosItems(t, 150))
	put(t, mem, items...)
	stormLifecycle(t, items, &manager.InProcess{Src: source.New(mem)}, mem.Outcome, mem.Len)
}

// The same storm with the dir source behind its ambassador's HTTP API (the
// watch, the acknowledgements and the redrives over HTTP; real files moved
// to .done/ and .failed/ and back).
func TestLifecycleChaosDirOverHTTP(t *testing.T) {
	root := t.TempDir()
	items := names("c", testutil.ChaosItems(t, 150))
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

// stormLifecycle runs the items of src through a manager with the local
// runner under 3 s of cancels and retries, then retries what did not
// succeed until every item has; outcome reads what the source did with an
// item, remaining how many items it still holds.
func stormLifecycle(t *testing.T, items []string, src manager.Source, outcome func(string) (itemapi.Outcome, bool), remaining func() int) {
	t.Helper()
	l := &chaosLauncher{running: map[string]int{}}
	l.setFailing(true)
	log := slog.New(slog.DiscardHandler)
	if p := os.Getenv("ITEMQ_LIFECYCLE_CHAOS_LOG"); p != "" { // a file for the manager's and the runner's debug log
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Log: log}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MinActive: 8, MaxActive: 8, Resync: time.Hour, Log: log}, src, r)
	runManager(t, m)
	ctx := context.Background()
	// A redrive may give an item a new name (a Kafka or Redis source
	// appends it anew): current follows each item to its latest name.
	current := slices.Clone(items)
	renamed := func(from, to string) {
		if to == "" || to == from {
			return
		}
		for i, n := range current {
			if n == from {
				current[i] = to
			}
		}
	}
	retryAll := func(sel itemapi.JobSelector) {
		for _, ai := range m.RetryJobs(ctx, sel).Items {
			renamed(ai.Item, ai.NewItem)
		}
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	storm := time.Now().Add(3 * time.Second)
	actions := 0
	for time.Now().Before(storm) {
		it := current[rng.IntN(len(current))]
		switch r := rng.IntN(20); {
		case r < 9:
			_, _ = m.Cancel(ctx, it)
		case r < 18:
			if n, done, _ := m.Retry(ctx, it); done {
				renamed(it, n)
			}
		case r == 18:
			retryAll(itemapi.JobSelector{State: itemapi.StateDead, Prefix: it[:3]})
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
			retryAll(itemapi.JobSelector{State: st})
		}
		for _, it := range current {
			st, _ := m.Status(it)
			o, acked := outcome(it)
			if st.State != itemapi.StateSucceeded || !acked || o != itemapi.Succeeded {
				return fmt.Errorf("%s: state %q, source outcome %q (acked %v); job %+v", it, st.State, o, acked, st)
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

// The same storm with a Redis stream (a real redis-server): a redrive
// appends the dead-lettered entry anew, under a new name.
func TestLifecycleChaosRedisStream(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := testutil.ChaosItems(t, 150)
	pipe := c.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range cmds {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: "chaos", Values: []string{"n", strconv.Itoa(i)}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("XADD: %v", err)
	}
	items := make([]string, n)
	for i, cmd := range cmds {
		items[i] = "chaos/" + cmd.Val()
	}
	src, err := redissource.Open(ctx, []string{"REDIS_ADDRS=" + srv.Addr, "REDIS_STREAMS=chaos", "REDIS_CONSUMER=chaos", "REDIS_BLOCK=200ms"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	outcome := func(name string) (itemapi.Outcome, bool) {
		id := strings.TrimPrefix(name, "chaos/")
		p, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: "chaos", Group: "itemq", Start: id, End: id, Count: 1}).Result()
		if err != nil || len(p) > 0 {
			return "", false // still pending: not acknowledged
		}
		return itemapi.Succeeded, true // the manager ran it, and it is acknowledged (a failure would be in chaos:dead)
	}
	remaining := func() int {
		gs, err := c.XInfoGroups(ctx, "chaos").Result()
		if err != nil || len(gs) != 1 {
			t.Fatalf("groups %v: %v", gs, err)
		}
		dead, err := c.XLen(ctx, "chaos:dead").Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(gs[0].Pending + dead)
	}
	stormLifecycle(t, items, &manager.InProcess{Src: src}, outcome, remaining)
}
