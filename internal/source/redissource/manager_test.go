package redissource

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// launchFunc is a local.Launcher from a function.
type launchFunc func(ctx context.Context, a *local.Attempt) (int, error)

func (f launchFunc) Launch(ctx context.Context, a *local.Attempt) (int, error) { return f(ctx, a) }

// Retry through the manager on a Redis stream: a dead entry is redriven as
// a new entry (a new name), which runs once and is acknowledged; the
// manager reports the new name.
func TestManagerRetryRenamesOnRedis(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("mr")}
	cfg.JSONField = "data"
	d := open(t, cfg)
	ids := xadd(t, c, cfg.Streams[0], `{"n":1}`)
	old := ids[0] // "<stream>/<id>"

	var mu sync.Mutex
	runs := map[string]int{}
	fixed := false
	l := launchFunc(func(_ context.Context, a *local.Attempt) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		runs[a.Item.Name]++
		if fixed {
			return 0, nil
		}
		return 2, nil
	})
	r, err := local.New(local.Config{Queue: "q", StateDir: t.TempDir(), MaxAttempts: 1, NoSync: true}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "q", MaxActive: 2, Resync: time.Hour}, &manager.InProcess{Src: source.New(d)}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(item string, want itemapi.State) {
		t.Helper()
		eventually(t, item+" "+string(want), func() error {
			if st, _ := m.Status(item); st.State != want {
				return fmt.Errorf("state %q", st.State)
			}
			return nil
		})
	}
	wait(old, itemapi.StateDead)
	mu.Lock()
	fixed = true
	mu.Unlock()
	res := m.RetryJobs(ctx, itemapi.JobSelector{Items: []string{old}})
	if res.Done != 1 || res.Items[0].NewItem == "" || res.Items[0].NewItem == old {
		t.Fatalf("RetryJobs: %+v", res)
	}
	renamed := res.Items[0].NewItem
	wait(renamed, itemapi.StateSucceeded)
	mu.Lock()
	defer mu.Unlock()
	if runs[old] != 1 || runs[renamed] != 1 {
		t.Errorf("runs: %v", runs)
	}
	if _, ok := m.Status(old); ok {
		t.Errorf("the old name's record was kept")
	}
}
