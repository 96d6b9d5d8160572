package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// A source that cannot watch is polled at the poll interval every time (the
// old in-process adapter multiplied its wait by 30 on every pass: 1 s,
// 30 s, 15 min, …).
func TestPollingSourceIsPolledAtItsInterval(t *testing.T) {
	mem := memsource.New()
	l := newScripted(func(string, int) int { return 0 })
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir()}, l)
	if err != nil {
		t.Fatal(err)
	}
	src := &manager.InProcess{Src: source.New(listGet{mem}), PollInterval: 20 * time.Millisecond}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: time.Hour}, src, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Five waves, each after several polls: each must be seen within a few
	// polls (the full resync is an hour away).
	for wave := range 5 {
		time.Sleep(100 * time.Millisecond)
		item := fmt.Sprintf("wave%d", wave)
		put(t, mem, item)
		testutil.Eventually(t, 10*time.Second, item+" seen by polling", func() error {
			if st, ok := m.Status(item); !ok || st.State != itemapi.StateSucceeded {
				return fmt.Errorf("%s: %+v", item, st)
			}
			return nil
		})
	}
}

// gatedList is a source whose next full listing, once armed, is taken at
// once and answered only when released: the manager's resync then judges a
// listing that began before what happened meanwhile.
type gatedList struct {
	manager.Source
	mu      sync.Mutex
	armed   bool
	taken   chan struct{}
	release chan struct{}
}

func (g *gatedList) List(ctx context.Context) ([]string, error) {
	names, err := g.Source.List(ctx)
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.taken)
		<-g.release
	}
	return names, err
}

// A periodic resync whose listing began before an item was acknowledged
// (and archived) must not take the item for one that came back: the job
// stays in the status API, and does not run again.
func TestResyncListingOlderThanAnAckKeepsTheRecord(t *testing.T) {
	mem := memsource.New()
	l := newScripted(func(string, int) int { return 0 })
	gate := make(chan struct{})
	l.block["a"] = gate
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir()}, l)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedList{Source: &manager.InProcess{Src: source.New(mem)}, taken: make(chan struct{}), release: make(chan struct{})}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: 30 * time.Millisecond}, g, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	put(t, mem, "a")
	testutil.Eventually(t, 10*time.Second, "a running", func() error {
		if st, _ := m.Status("a"); st.State != itemapi.StateRunning {
			return fmt.Errorf("a is %q", st.State)
		}
		return nil
	})
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
	<-g.taken // a resync listed "a" while it still was in the source
	close(gate)
	testutil.Eventually(t, 10*time.Second, "a acknowledged", func() error {
		if o, ok := mem.Outcome("a"); !ok || o != itemapi.Succeeded {
			return fmt.Errorf("outcome %q %v", o, ok)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // the DELETED event reaches the manager
	close(g.release)
	time.Sleep(200 * time.Millisecond) // that resync, and a few more
	st, ok := m.Status("a")
	if !ok || st.State != itemapi.StateSucceeded {
		t.Fatalf("status of a after the stale listing: %+v (found %v), want succeeded", st, ok)
	}
	if n := l.count("a"); n != 1 {
		t.Fatalf("a ran %d times", n)
	}
}

// An ambassador that follows the book's format to the letter: an Item
// document without "name" (the name is in the URL), no watch (polled), no
// acknowledgements (405). Its items run once each.
func TestBookFormatAmbassador(t *testing.T) {
	items := []string{"one", "two/slash", "three"}
	var mu sync.Mutex
	gets := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/items" && r.URL.Query().Get("watch") == "":
			json.NewEncoder(w).Encode(map[string]any{"kind": "ItemList", "apiVersion": "v1", "items": slices.Sorted(slices.Values(items))})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/items/"):
			name := strings.TrimPrefix(r.URL.Path, "/v1/items/")
			mu.Lock()
			gets[name]++
			mu.Unlock()
			fmt.Fprintf(w, `{"kind":"Item","apiVersion":"v1","data":{"n":%q}}`, name)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","code":405,"reason":"MethodNotAllowed","message":"no"}`)
		}
	}))
	defer srv.Close()
	c, err := itemapi.NewClient(srv.URL, itemapi.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	l := newScripted(func(string, int) int { return 0 })
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir()}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: 50 * time.Millisecond}, c, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 20*time.Second, "all succeeded", func() error {
		for _, n := range items {
			if st, _ := m.Status(n); st.State != itemapi.StateSucceeded {
				return fmt.Errorf("%s is %q (%s)", n, st.State, st.Error)
			}
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // several polls and resyncs
	for _, n := range items {
		if c := l.count(n); c != 1 {
			t.Errorf("%s ran %d times", n, c)
		}
	}
}

// A job waiting for its retry holds no slot: with two slots and two items
// that always fail (long backoff), the good items still run at once.
func TestRetryWaitHoldsNoSlot(t *testing.T) {
	mem := memsource.New()
	bad := []string{"bad0", "bad1"}
	good := names("good", 8)
	l := newScripted(func(item string, _ int) int {
		if strings.HasPrefix(item, "bad") {
			return 1
		}
		return 0
	})
	e := start(t, mem, t.TempDir(), l, func(qc *manager.Config, lc *local.Config) {
		qc.MaxActive, qc.MinActive = 2, 2
		lc.MaxAttempts = 3
		lc.BackoffBase, lc.BackoffMax = 20*time.Second, 20*time.Second
	})
	put(t, mem, bad...)
	testutil.Eventually(t, 10*time.Second, "bad items failed once", func() error {
		for _, n := range bad {
			if l.count(n) < 1 {
				return fmt.Errorf("%s not run yet", n)
			}
		}
		return nil
	})
	put(t, mem, good...)
	// Well within the 10 s..20 s backoff of the bad items.
	testutil.Eventually(t, 5*time.Second, "good items done while the bad ones wait", func() error {
		for _, n := range good {
			if o, ok := mem.Outcome(n); !ok || o != itemapi.Succeeded {
				return fmt.Errorf("%s: outcome %q (acked %v)", n, o, ok)
			}
		}
		return nil
	})
	for _, n := range bad {
		if st, _ := e.m.Status(n); st.State != itemapi.StatePending {
			t.Errorf("%s: %q, want pending (waiting for its retry)", n, st.State)
		}
	}
}
