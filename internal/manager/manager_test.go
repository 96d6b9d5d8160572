package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/statusapi"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// scripted is a Launcher whose attempts do what a function says.
type scripted struct {
	mu    sync.Mutex
	runs  map[string]int // item → attempts launched
	codes func(item string, attempt int) int
	block map[string]chan struct{} // items whose attempts wait until closed (or ctx ends)
}

func newScripted(codes func(string, int) int) *scripted {
	return &scripted{runs: map[string]int{}, codes: codes, block: map[string]chan struct{}{}}
}

func (s *scripted) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	s.mu.Lock()
	s.runs[a.Item.Name]++
	n := s.runs[a.Item.Name]
	b := s.block[a.Item.Name]
	s.mu.Unlock()
	if b != nil {
		select {
		case <-b:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
	// The item file is where the contract says, with the item in it.
	raw, err := os.ReadFile(a.ItemFile)
	if err != nil {
		return -1, err
	}
	var it itemapi.Item
	if err := json.Unmarshal(raw, &it); err != nil || it.Validate() != nil || it.Name != a.Item.Name {
		return -1, fmt.Errorf("bad item file %s: %v", raw, err)
	}
	return s.codes(a.Item.Name, n), nil
}

func (s *scripted) count(item string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[item]
}

type env struct {
	t      *testing.T
	mem    *memsource.Driver
	src    *source.Source
	runner *local.Runner
	m      *manager.Manager
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, mem *memsource.Driver, stateDir string, l local.Launcher, tune func(*manager.Config, *local.Config)) *env {
	t.Helper()
	src := source.New(mem)
	lc := local.Config{Queue: "test", StateDir: stateDir, MaxAttempts: 3, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	qc := manager.Config{Queue: "test", MaxActive: 4, MinActive: 4, Resync: time.Hour, Log: slog.New(slog.DiscardHandler)}
	if tune != nil {
		tune(&qc, &lc)
	}
	r, err := local.New(lc, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(qc, &manager.InProcess{Src: src}, r)
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, mem: mem, src: src, runner: r, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- m.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("manager Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("manager did not stop within 10 s")
	}
}

func put(t *testing.T, mem *memsource.Driver, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := mem.Put(n, json.RawMessage(fmt.Sprintf(`{"n":%q}`, n))); err != nil {
			t.Fatal(err)
		}
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func waitOutcomes(t *testing.T, mem *memsource.Driver, items []string, want itemapi.Outcome) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "items acknowledged", func() error {
		for _, n := range items {
			if o, ok := mem.Outcome(n); !ok || o != want {
				return fmt.Errorf("%s: outcome %q (acked %v), want %q", n, o, ok, want)
			}
		}
		return nil
	})
}

func TestEveryItemRunsOnceAndIsAcked(t *testing.T) {
	mem := memsource.New()
	items := names("a", 50)
	put(t, mem, items[:25]...)
	l := newScripted(func(string, int) int { return 0 })
	e := start(t, mem, t.TempDir(), l, nil)
	put(t, mem, items[25:]...) // some before, some after the start
	waitOutcomes(t, mem, items, itemapi.Succeeded)
	for _, n := range items {
		if c := l.count(n); c != 1 {
			t.Errorf("%s ran %d times", n, c)
		}
		st, ok := e.m.Status(n)
		if !ok || st.State != itemapi.StateSucceeded || st.Attempts != 1 || st.Job != runner.JobName("test", n) {
			t.Errorf("status of %s: %+v", n, st)
		}
	}
}

func TestRetriesAndDeadLetters(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "flaky", "bad", "hopeless", "fine")
	l := newScripted(func(item string, attempt int) int {
		switch item {
		case "flaky":
			if attempt == 1 {
				return 1
			}
		case "bad":
			return 2
		case "hopeless":
			return 1
		}
		return 0
	})
	e := start(t, mem, t.TempDir(), l, nil)
	waitOutcomes(t, mem, []string{"flaky", "fine"}, itemapi.Succeeded)
	waitOutcomes(t, mem, []string{"bad", "hopeless"}, itemapi.Failed)
	for item, want := range map[string]int{"flaky": 2, "fine": 1, "bad": 1, "hopeless": 3} {
		if c := l.count(item); c != want {
			t.Errorf("%s: %d attempts, want %d", item, c, want)
		}
	}
	testutil.Eventually(t, 5*time.Second, "dead state", func() error {
		st, _ := e.m.Status("bad")
		if st.State != itemapi.StateDead || !strings.Contains(st.Error, "exit code 2") {
			return fmt.Errorf("status of bad: %+v", st)
		}
		return nil
	})
}

func TestRestartResumesAndNeverRerunsFinished(t *testing.T) {
	mem := memsource.New()
	dir := t.TempDir()
	put(t, mem, "done1", "done2", "stuck")
	l := newScripted(func(string, int) int { return 0 })
	l.block["stuck"] = make(chan struct{})
	e := start(t, mem, dir, l, nil)
	waitOutcomes(t, mem, []string{"done1", "done2"}, itemapi.Succeeded)
	testutil.Eventually(t, 5*time.Second, "stuck running", func() error {
		if st, _ := e.m.Status("stuck"); st.State != itemapi.StateRunning {
			return fmt.Errorf("stuck is %s", st.State)
		}
		return nil
	})
	e.stop() // the manager stops while "stuck" runs

	// The same source after the restart: the acked items were archived; a
	// new one came. Finished items do not run again; the interrupted one
	// does.
	put(t, mem, "new")
	l2 := newScripted(func(string, int) int { return 0 })
	e2 := start(t, mem, dir, l2, nil)
	waitOutcomes(t, mem, []string{"stuck", "new"}, itemapi.Succeeded)
	if l2.count("done1")+l2.count("done2") != 0 {
		t.Fatalf("finished items ran again after a restart")
	}
	if st, _ := e2.m.Status("stuck"); st.Attempts != 1 {
		t.Fatalf("the interrupted attempt counted: %+v", st)
	}
}

// noAck hides memsource's Acker: a source that cannot archive.
type noAck struct{ *memsource.Driver }

func (noAck) Ack() {}

type listGet struct{ d *memsource.Driver }

func (l listGet) List(ctx context.Context, o source.ListOptions) ([]string, string, error) {
	return l.d.List(ctx, o)
}
func (l listGet) Get(ctx context.Context, n string) (json.RawMessage, error) { return l.d.Get(ctx, n) }
func (l listGet) ErrorReason(err error) itemapi.Reason                       { return l.d.ErrorReason(err) }
func (l listGet) Close() error                                               { return l.d.Close() }

func TestSourceWithoutAckKeepsOwnRecord(t *testing.T) {
	mem := memsource.New()
	put(t, mem, names("x", 10)...)
	l := newScripted(func(string, int) int { return 0 })
	src := source.New(listGet{mem}) // no watch, no ack: polled
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir()}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: 50 * time.Millisecond}, &manager.InProcess{Src: src, PollInterval: 10 * time.Millisecond}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 20*time.Second, "all succeeded", func() error {
		for _, n := range names("x", 10) {
			if st, _ := m.Status(n); st.State != itemapi.StateSucceeded {
				return fmt.Errorf("%s is %s", n, st.State)
			}
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // several resyncs
	for _, n := range names("x", 10) {
		if c := l.count(n); c != 1 {
			t.Fatalf("%s ran %d times", n, c)
		}
	}
}

// An acknowledgement that did not stick (an ambassador that answered it,
// then died before it committed, and lists the item again after a restart,
// with no DELETED ever sent): a full listing finds it; it runs once more
// (its executor would skip: _SUCCESS.json) and is acknowledged again. A
// source that keeps listing acknowledged items is given up on after a few
// rounds.
func TestAckThatDidNotStick(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "kafka/0/7", "stays")
	src := &lossyWatch{InProcess: &manager.InProcess{Src: source.New(mem)}, drop: map[string]bool{"kafka/0/7": true, "stays": true}}
	l := newScripted(func(string, int) int { return 0 })
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir()}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: 50 * time.Millisecond}, src, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitOutcomes(t, mem, []string{"kafka/0/7", "stays"}, itemapi.Succeeded)
	put(t, mem, "kafka/0/7") // the restarted ambassador lists it again
	testutil.Eventually(t, 10*time.Second, "ran and acked again", func() error {
		if c := l.count("kafka/0/7"); c != 2 {
			return fmt.Errorf("ran %d times", c)
		}
		if _, err := mem.Get(context.Background(), "kafka/0/7"); err == nil {
			return fmt.Errorf("not acked again")
		}
		return nil
	})
}

// A source that answers acks with success but keeps listing the items: each
// runs again at most three more times, then the manager leaves it alone.
func TestSourceThatKeepsAckedItems(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "stays")
	l := newScripted(func(string, int) int { return 0 })
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir()}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: 30 * time.Millisecond}, &manager.InProcess{Src: source.New(keepAcker{mem})}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 10*time.Second, "four runs", func() error {
		if c := l.count("stays"); c != 4 {
			return fmt.Errorf("ran %d times", c)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // many resyncs later
	if c := l.count("stays"); c != 4 {
		t.Fatalf("an item the source keeps listing after its acks ran %d times, want 4", c)
	}
}

// keepAcker answers acks but keeps the items.
type keepAcker struct{ *memsource.Driver }

func (keepAcker) Ack(context.Context, string, itemapi.Outcome) error { return nil }

// lossyWatch drops the DELETED events of some items, as a watch stream cut
// by an ambassador crash does.
type lossyWatch struct {
	*manager.InProcess
	drop map[string]bool
}

func (w *lossyWatch) Watch(ctx context.Context, handle func(itemapi.WatchEvent) error) error {
	return w.InProcess.Watch(ctx, func(ev itemapi.WatchEvent) error {
		if ev.Type == itemapi.Deleted && w.drop[ev.Name] {
			return nil
		}
		return handle(ev)
	})
}

func TestItemBackAfterArchiveRunsAgain(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "video.mp4")
	l := newScripted(func(string, int) int { return 0 })
	start(t, mem, t.TempDir(), l, nil)
	waitOutcomes(t, mem, []string{"video.mp4"}, itemapi.Succeeded)
	put(t, mem, "video.mp4") // dropped again after it was archived
	testutil.Eventually(t, 10*time.Second, "second run", func() error {
		if c := l.count("video.mp4"); c != 2 {
			return fmt.Errorf("ran %d times", c)
		}
		return nil
	})
}

func TestConcurrencyLimit(t *testing.T) {
	mem := memsource.New()
	items := names("c", 12)
	var mu sync.Mutex
	active, peak := 0, 0
	l := launcherFunc(func(ctx context.Context, a *local.Attempt) (int, error) {
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		active--
		mu.Unlock()
		return 0, nil
	})
	put(t, mem, items...)
	start(t, mem, t.TempDir(), l, func(q *manager.Config, _ *local.Config) {
		q.MaxActive, q.MinActive, q.DrainTime = 3, 1, time.Millisecond
	})
	waitOutcomes(t, mem, items, itemapi.Succeeded)
	if peak > 3 || peak < 2 {
		t.Fatalf("peak concurrency %d with MaxActive 3", peak)
	}
}

type launcherFunc func(context.Context, *local.Attempt) (int, error)

func (f launcherFunc) Launch(ctx context.Context, a *local.Attempt) (int, error) { return f(ctx, a) }

func TestStatusAPI(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "a/1", "b 2")
	l := newScripted(func(string, int) int { return 0 })
	e := start(t, mem, t.TempDir(), l, nil)
	srv := httptest.NewServer(statusapi.NewAPI(e.m, statusapi.APIOptions{Token: "s3cret"}))
	defer srv.Close()
	waitOutcomes(t, mem, []string{"a/1", "b 2"}, itemapi.Succeeded)

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = fmt.Fprint(&b, mustRead(resp))
		return resp.StatusCode, b.String()
	}
	if code, body := get("/v1/jobs/" + itemapi.EscapeName("a/1")); code != 200 || !strings.Contains(body, `"state":"succeeded"`) || !strings.Contains(body, `"item":"a/1"`) {
		t.Fatalf("GET job: %d %s", code, body)
	}
	if code, body := get("/v1/jobs?state=succeeded&limit=1"); code != 200 || !strings.Contains(body, `"continue"`) {
		t.Fatalf("GET jobs page: %d %s", code, body)
	}
	if code, _ := get("/v1/jobs/nope"); code != 404 {
		t.Fatalf("GET missing job: %d", code)
	}
	if code, _ := get("/v1/jobs?state=weird"); code != 400 {
		t.Fatalf("bad state filter: %d", code)
	}
	post := func(token, body string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/jobs", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("", `{"x":1}`); resp.StatusCode != 401 {
		t.Fatalf("POST without token: %d", resp.StatusCode)
	}
	if resp := post("wrong", `{"x":1}`); resp.StatusCode != 401 {
		t.Fatalf("POST with a wrong token: %d", resp.StatusCode)
	}
	if resp := post("s3cret", `nope`); resp.StatusCode != 400 {
		t.Fatalf("POST of bad JSON: %d", resp.StatusCode)
	}
	resp := post("s3cret", `{"frames":[1,2]}`)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || !strings.HasPrefix(loc, "/v1/jobs/") {
		t.Fatalf("POST: %d Location %q", resp.StatusCode, loc)
	}
	testutil.Eventually(t, 10*time.Second, "submitted job succeeded", func() error {
		if code, body := get(loc); code != 200 || !strings.Contains(body, `"state":"succeeded"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := get(p); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
	_, metrics := get("/metrics")
	for _, m := range []string{"itemq_manager_jobs_succeeded_total 3", "itemq_manager_parallelism", "itemq_manager_arrival_rate", "itemq_manager_dispatch_latency_seconds_bucket", "itemq_manager_resync_seconds_count"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("metrics lack %q", m)
		}
	}

	// The Go client of the status API.
	jc, err := itemapi.NewJobsClient(srv.URL, itemapi.WithBearerToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, err := jc.Get(ctx, "a/1"); err != nil || st.State != itemapi.StateSucceeded {
		t.Fatalf("JobsClient.Get: %+v %v", st, err)
	}
	if _, err := jc.Get(ctx, "nope"); !itemapi.IsNotFound(err) {
		t.Fatalf("JobsClient.Get of a missing job: %v", err)
	}
	page, err := jc.List(ctx, itemapi.StateSucceeded, 2, "")
	if err != nil || len(page.Items) != 2 || page.Continue == "" {
		t.Fatalf("JobsClient.List: %+v %v", page, err)
	}
	if rest, err := jc.List(ctx, itemapi.StateSucceeded, 2, page.Continue); err != nil || len(rest.Items) != 1 {
		t.Fatalf("JobsClient.List, second page: %+v %v", rest, err)
	}
	st, err := jc.Submit(ctx, json.RawMessage(`{"y":2}`))
	if err != nil || st.Item == "" {
		t.Fatalf("JobsClient.Submit: %+v %v", st, err)
	}
	testutil.Eventually(t, 10*time.Second, "job submitted by the client succeeded", func() error {
		got, err := jc.Get(ctx, st.Item)
		if err != nil || got.State != itemapi.StateSucceeded {
			return fmt.Errorf("%+v %v", got, err)
		}
		return nil
	})
}

func mustRead(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
