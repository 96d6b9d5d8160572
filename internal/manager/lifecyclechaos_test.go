package manager_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
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
	n := 150
	if s := os.Getenv("ITEMQ_LIFECYCLE_CHAOS_ITEMS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("ITEMQ_LIFECYCLE_CHAOS_ITEMS=%q: want a positive number", s)
		}
		n = v
	}
	mem := memsource.New()
	items := names("c", n)
	put(t, mem, items...)
	l := &chaosLauncher{running: map[string]int{}}
	l.setFailing(true)
	e := start(t, mem, t.TempDir(), l, func(c *manager.Config, lc *local.Config) {
		c.MinActive, c.MaxActive = 8, 8
		lc.MaxAttempts = 2
	})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	storm := time.Now().Add(3 * time.Second)
	actions := 0
	for time.Now().Before(storm) {
		it := items[rng.IntN(len(items))]
		switch r := rng.IntN(20); {
		case r < 9:
			_, _ = e.m.Cancel(ctx, it)
		case r < 18:
			_, _, _ = e.m.Retry(ctx, it)
		case r == 18:
			e.m.RetryJobs(ctx, itemapi.JobSelector{State: itemapi.StateDead, Prefix: it[:3]})
		default:
			e.m.CancelJobs(ctx, itemapi.JobSelector{Prefix: it[:3]})
		}
		actions++
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
	t.Logf("%d actions in the storm", actions)
	l.setFailing(false)

	// Retry what did not succeed until everything has.
	testutil.Eventually(t, 60*time.Second, "every item succeeded", func() error {
		for _, st := range []itemapi.State{itemapi.StateDead, itemapi.StateCancelled, itemapi.StateFailed} {
			e.m.RetryJobs(ctx, itemapi.JobSelector{State: st})
		}
		for _, it := range items {
			st, _ := e.m.Status(it)
			o, acked := mem.Outcome(it)
			if st.State != itemapi.StateSucceeded || !acked || o != itemapi.Succeeded {
				return fmt.Errorf("%s: state %q, source outcome %q (acked %v)", it, st.State, o, acked)
			}
		}
		return nil
	})
	if mem.Len() != 0 {
		t.Errorf("the source still holds %d items", mem.Len())
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
