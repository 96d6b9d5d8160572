package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/statusapi"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// recorder is a Launcher whose attempts take a fixed time and that
// records the order of starts and the items of each tenant running at
// once.
type recorder struct {
	took time.Duration

	mu      sync.Mutex
	starts  []string
	running map[string]int // tenant → attempts running
	most    map[string]int // tenant → most at once
	now     int            // attempts running
	mostAll int            // most at once of all tenants
}

func newRecorder(took time.Duration) *recorder {
	return &recorder{took: took, running: map[string]int{}, most: map[string]int{}}
}

func tenant(name string) string { return name[:1] }

func (r *recorder) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	t := tenant(a.Item.Name)
	r.mu.Lock()
	r.starts = append(r.starts, a.Item.Name)
	r.running[t]++
	r.most[t] = max(r.most[t], r.running[t])
	r.now++
	r.mostAll = max(r.mostAll, r.now)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running[t]--
		r.now--
		r.mu.Unlock()
	}()
	select {
	case <-time.After(r.took):
		return 0, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// index is where an item is in the order of starts (-1: not started).
func (r *recorder) index(item string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, n := range r.starts {
		if n == item {
			return i
		}
	}
	return -1
}

func (r *recorder) started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

func putData(t *testing.T, mem *memsource.Driver, name, data string) {
	t.Helper()
	if err := mem.Put(name, json.RawMessage(data)); err != nil {
		t.Fatal(err)
	}
}

// One tenant's burst cannot starve another that sends an item now and
// then: each of b's items starts within a few starts of its arrival, not
// after a's 120 (with MANAGER_FAIR_KEY unset, FIFO, it waits for them all:
// checked by the second case).
func TestFairShareAcrossTenants(t *testing.T) {
	for _, fair := range []bool{true, false} {
		t.Run(fmt.Sprintf("fair=%v", fair), func(t *testing.T) {
			mem := memsource.New()
			rec := newRecorder(100 * time.Millisecond)
			start(t, mem, t.TempDir(), rec, func(c *manager.Config, _ *local.Config) {
				c.MaxActive, c.MinActive = 2, 2
				if fair {
					c.Fair = manager.Fair{KeyField: "tenant"}
				}
			})
			for i := range 120 {
				putData(t, mem, fmt.Sprintf("a%03d", i), `{"tenant":"a"}`)
			}
			testutil.Eventually(t, 30*time.Second, "a's burst under way", func() error {
				if n := rec.started(); n < 4 {
					return fmt.Errorf("%d started", n)
				}
				return nil
			})
			worst := 0
			for i := range 5 {
				name := fmt.Sprintf("b%d", i)
				before := rec.started()
				putData(t, mem, name, `{"tenant":"b"}`)
				testutil.Eventually(t, 30*time.Second, name+" started", func() error {
					if rec.index(name) < 0 {
						return fmt.Errorf("not yet (%d started)", rec.started())
					}
					return nil
				})
				worst = max(worst, rec.index(name)-before)
			}
			t.Logf("b's items waited for at most %d starts of a", worst)
			// c = 2: a slot frees every 50 ms; b's item is read by a
			// classify worker, then ties a's head at the share's clock and
			// is newer, so a few of a's may go first.
			if fair && worst > 5 {
				t.Errorf("b waited for %d starts of a, want ≤ 5", worst)
			}
			if !fair && worst < 50 {
				t.Errorf("FIFO: b waited for only %d starts; the test does not show what fairness changes", worst)
			}
		})
	}
}

// Higher priority first; a submission sets it with ?priority (here
// Manager.WithPriority, which POST /v1/jobs?priority=N calls).
func TestPriorityGoesFirst(t *testing.T) {
	mem := memsource.New()
	rec := newRecorder(10 * time.Millisecond)
	e := start(t, mem, t.TempDir(), rec, func(c *manager.Config, _ *local.Config) {
		c.MaxActive, c.MinActive = 1, 1
		c.Fair = manager.Fair{PriorityField: "meta.prio"}
	})
	for i := range 100 {
		putData(t, mem, fmt.Sprintf("l%03d", i), `{"meta":{"prio":0}}`)
	}
	testutil.Eventually(t, 30*time.Second, "the low items under way", func() error {
		if n := rec.started(); n < 2 {
			return fmt.Errorf("%d started", n)
		}
		return nil
	})
	data, err := e.m.WithPriority(json.RawMessage(`{"x":1}`), 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != `{"meta":{"prio":7},"x":1}` {
		t.Errorf("WithPriority: %s", got)
	}
	before := rec.started()
	it, err := e.m.Submit(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the urgent item started", func() error {
		if rec.index(it.Name) < 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if st, ok := e.m.Status(it.Name); !ok || st.Priority == nil || *st.Priority != 7 {
		t.Errorf("the status shows priority %v, want 7", st.Priority)
	}
	if d := rec.index(it.Name) - before; d > 1 {
		t.Errorf("the priority-7 item went after %d more low ones, want ≤ 1 (the one starting)", d)
	}
	waitOutcomes(t, mem, []string{it.Name}, itemapi.Succeeded)
	testutil.Eventually(t, 30*time.Second, "the item archived", func() error {
		if _, err := mem.Get(context.Background(), it.Name); err == nil {
			return fmt.Errorf("still in the source")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // the manager takes the DELETED event
	if st, ok := e.m.Status(it.Name); !ok || st.Priority == nil || *st.Priority != 7 {
		t.Errorf("the record of the archived item shows priority %v, want 7", st.Priority)
	}
	if _, err := e.m.WithPriority(json.RawMessage(`[1]`), 1); !itemapi.IsBadRequest(err) {
		t.Errorf("WithPriority of an array: %v", err)
	}
	noField := manager.New(manager.Config{Queue: "q"}, nil, nil)
	if _, err := noField.WithPriority(json.RawMessage(`{}`), 1); err == nil || !strings.Contains(err.Error(), "MANAGER_PRIORITY_FIELD") {
		t.Errorf("WithPriority without a priority field: %v", err)
	}
}

// A key's cap holds its jobs in flight to the cap while another key's
// items use the rest of the parallelism; the capped items all run.
func TestFairKeyCap(t *testing.T) {
	mem := memsource.New()
	rec := newRecorder(15 * time.Millisecond)
	start(t, mem, t.TempDir(), rec, func(c *manager.Config, _ *local.Config) {
		c.MaxActive, c.MinActive = 4, 4
		c.Fair = manager.Fair{KeyField: "tenant", KeyCap: 1}
	})
	var all []string
	for i := range 20 {
		for _, tn := range []string{"a", "b"} {
			n := fmt.Sprintf("%s%02d", tn, i)
			putData(t, mem, n, fmt.Sprintf(`{"tenant":%q}`, tn))
			all = append(all, n)
		}
	}
	waitOutcomes(t, mem, all, itemapi.Succeeded)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, tn := range []string{"a", "b"} {
		if rec.most[tn] != 1 {
			t.Errorf("tenant %s had %d attempts at once, want 1 (the cap)", tn, rec.most[tn])
		}
	}
	if rec.mostAll != 2 {
		t.Errorf("%d attempts at once, want 2 (one of each tenant)", rec.mostAll)
	}
}

// POST /v1/jobs?priority=N writes the priority into the data's field; a
// manager without one, or a priority that is not an integer, answers 400.
func TestSubmitPriorityOverHTTP(t *testing.T) {
	for _, field := range []string{"prio", ""} {
		mem := memsource.New()
		e := start(t, mem, t.TempDir(), newRecorder(time.Hour), func(c *manager.Config, _ *local.Config) {
			c.Fair = manager.Fair{PriorityField: field}
		})
		srv := httptest.NewServer(statusapi.NewAPI(e.m, statusapi.APIOptions{}))
		post := func(q string) (int, string) {
			resp, err := http.Post(srv.URL+"/v1/jobs"+q, "application/json", strings.NewReader(`{"x":1}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		code, body := post("?priority=3")
		if field == "" {
			if code != 400 || !strings.Contains(body, "MANAGER_PRIORITY_FIELD") {
				t.Errorf("without a field: %d %s", code, body)
			}
			srv.Close()
			continue
		}
		if code != 202 {
			t.Fatalf("submit with priority: %d %s", code, body)
		}
		var st itemapi.JobStatus
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		it, err := mem.Get(context.Background(), st.Item)
		if err != nil || string(it) != `{"prio":3,"x":1}` {
			t.Errorf("the item's data: %s %v", it, err)
		}
		if code, body := post("?priority=high"); code != 400 {
			t.Errorf("priority=high: %d %s", code, body)
		}
		// The Go client (and itemq submit --priority) sends it.
		jc, err := itemapi.NewJobsClient(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		p := -4
		st2, err := jc.SubmitWith(context.Background(), json.RawMessage(`{"y":2}`), itemapi.SubmitOptions{Priority: &p})
		if err != nil {
			t.Fatal(err)
		}
		if it, err := mem.Get(context.Background(), st2.Item); err != nil || string(it) != `{"prio":-4,"y":2}` {
			t.Errorf("the client's submission: %s %v", it, err)
		}
		srv.Close()
	}
}

// startLog is a runner whose jobs never end; it records starts.
type startLog struct {
	*runnertest.Held
	mu      sync.Mutex
	started []string
}

func (s *startLog) Start(_ context.Context, it *itemapi.Item) error {
	s.mu.Lock()
	s.started = append(s.started, it.Name)
	s.mu.Unlock()
	return nil
}

func (s *startLog) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.started))
}

// A job found running at start counts against its key's cap before
// anything new starts (it counted under the key "" before: a restart let a
// tenant at its cap start one more).
func TestFairKeyCapCountsJobsFoundRunning(t *testing.T) {
	mem := memsource.New()
	putData(t, mem, "a-old", `{"tenant":"a"}`)
	putData(t, mem, "a-new", `{"tenant":"a"}`)
	putData(t, mem, "b-new", `{"tenant":"b"}`)
	r := &startLog{Held: &runnertest.Held{Records: []runner.Job{
		{Item: "a-old", Name: runner.JobName("q", "a-old"), Phase: runner.PhaseRunning, Attempts: 1, StartedAt: time.Now()},
	}}}
	m := manager.New(manager.Config{Queue: "q", MaxActive: 5, MinActive: 5, Resync: time.Hour, Log: slog.New(slog.DiscardHandler),
		Fair: manager.Fair{KeyField: "tenant", KeyCap: 1}}, &manager.InProcess{Src: source.New(mem)}, r)
	runManager(t, m)
	testutil.Eventually(t, 30*time.Second, "b-new started", func() error {
		if got := r.names(); !slices.Contains(got, "b-new") {
			return fmt.Errorf("started %v", got)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if got := r.names(); !slices.Equal(got, []string{"b-new"}) {
		t.Errorf("started %v, want only b-new (a is at its cap with a-old running)", got)
	}
	if st, _ := m.Status("a-old"); st.FairKey != "a" {
		t.Errorf("a-old's key %q, want a", st.FairKey)
	}
}

// slowHighGets reads items of priority 4 slowly, as a source whose reads
// take their time.
type slowHighGets struct{ *manager.InProcess }

func (s slowHighGets) Get(ctx context.Context, name string) (*itemapi.Item, error) {
	it, err := s.InProcess.Get(ctx, name)
	if err == nil && strings.Contains(string(it.Data), `"prio":4`) {
		time.Sleep(100 * time.Millisecond)
	}
	return it, err
}

// Items listed by name only (here all of them: an in-process source's
// events carry no data) start in priority order from the first start:
// dispatch waits for the classify workers' reads (at most
// maxClassifyHold) instead of starting whichever item was read first.
func TestPriorityOrderFromTheFirstStart(t *testing.T) {
	mem := memsource.New()
	for i := range 20 {
		putData(t, mem, fmt.Sprintf("p%02d", i), fmt.Sprintf(`{"prio":%d}`, i%5))
	}
	rec := newRecorder(20 * time.Millisecond)
	lr, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, rec)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 1, MinActive: 1, Resync: time.Hour, Log: slog.New(slog.DiscardHandler),
		Fair: manager.Fair{PriorityField: "prio", LowShare: -1}}, slowHighGets{&manager.InProcess{Src: source.New(mem)}}, lr)
	runManager(t, m)
	testutil.Eventually(t, 30*time.Second, "four started", func() error {
		if n := rec.started(); n < 4 {
			return fmt.Errorf("%d started", n)
		}
		return nil
	})
	rec.mu.Lock()
	first := slices.Clone(rec.starts[:4])
	rec.mu.Unlock()
	slices.Sort(first)
	if want := []string{"p04", "p09", "p14", "p19"}; !slices.Equal(first, want) {
		t.Errorf("the first four started: %v, want the priority-4 items %v", first, want)
	}
}

// failFirst fails each item's first attempt, then runs as its recorder.
type failFirst struct {
	*recorder
	mu   sync.Mutex
	seen map[string]bool
}

func (f *failFirst) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	code, err := f.recorder.Launch(ctx, a)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && !f.seen[a.Item.Name] {
		f.seen[a.Item.Name] = true
		return 1, nil
	}
	return code, err
}

// The per-key cap holds through retries: a job waiting for its next
// attempt still counts against its key (it holds no slot of c), so the
// key's next item does not start beside the retry. Before, the wait
// released the key, its next item started, and the retry ran beside it:
// two of a key capped at one.
func TestFairKeyCapHoldsThroughRetries(t *testing.T) {
	mem := memsource.New()
	rec := &failFirst{recorder: newRecorder(30 * time.Millisecond), seen: map[string]bool{}}
	start(t, mem, t.TempDir(), rec, func(c *manager.Config, _ *local.Config) {
		c.MaxActive, c.MinActive = 4, 4
		c.Fair = manager.Fair{KeyField: "tenant", KeyCap: 1}
	})
	var all []string
	for i := range 8 {
		n := fmt.Sprintf("a%02d", i)
		putData(t, mem, n, `{"tenant":"a"}`)
		all = append(all, n)
	}
	waitOutcomes(t, mem, all, itemapi.Succeeded)
	rec.recorder.mu.Lock()
	defer rec.recorder.mu.Unlock()
	if rec.most["a"] != 1 {
		t.Errorf("tenant a had %d attempts at once, want 1 (the cap)", rec.most["a"])
	}
}
