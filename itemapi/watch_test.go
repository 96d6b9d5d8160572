package itemapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/itemq/itemq/itemapi"
)

// recorder is a Watch handler that keeps every event and the caller's view
// of the set, and notes every event that contradicts that view (an ADDED
// for a known name, a DELETED for an unknown one, a HEARTBEAT).
type recorder struct {
	mu         sync.Mutex
	events     []itemapi.WatchEvent
	view       map[string]bool
	violations []string
	block      chan struct{} // when set, handle waits on it once
}

func newRecorder() *recorder { return &recorder{view: map[string]bool{}} }

func (r *recorder) handle(ev itemapi.WatchEvent) error {
	r.mu.Lock()
	block := r.block
	r.block = nil
	if ev.Item != nil && (ev.Type != itemapi.Added || ev.Item.Name != ev.Name) {
		r.violations = append(r.violations, "a document that is not the ADDED item's: "+ev.Name)
	}
	ev.Item = nil // the recorded events compare by type and name
	r.events = append(r.events, ev)
	switch ev.Type {
	case itemapi.Added:
		if r.view[ev.Name] {
			r.violations = append(r.violations, "repeated ADDED "+ev.Name)
		}
		r.view[ev.Name] = true
	case itemapi.Deleted:
		if !r.view[ev.Name] {
			r.violations = append(r.violations, "DELETED of unknown "+ev.Name)
		}
		delete(r.view, ev.Name)
	case itemapi.Synced:
		if ev.Name != "" {
			r.violations = append(r.violations, "SYNCED with a name")
		}
	default:
		r.violations = append(r.violations, "event of type "+string(ev.Type))
	}
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	return nil
}

func (r *recorder) snapshot() []itemapi.WatchEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) viewNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n := range r.view {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.violations) > 0 {
		t.Fatalf("%d events contradict the caller's view, first: %v", len(r.violations), r.violations[:min(5, len(r.violations))])
	}
}

// waitEvents waits until at least n events arrived after index from, and
// returns them.
func (r *recorder) waitEvents(t *testing.T, from, n int) []itemapi.WatchEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := r.snapshot()
		if len(evs)-from >= n {
			return evs[from:]
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d events after #%d; have %v", n, from, evs[from:])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitUntil polls cond until it is true.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startWatch runs c.Watch in the background; stop cancels it and returns
// what Watch returned.
func startWatch(t *testing.T, c *itemapi.Client, handle func(itemapi.WatchEvent) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Watch(ctx, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				err = errors.New("Watch did not return 10s after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func ev(typ itemapi.EventType, name string) itemapi.WatchEvent {
	return itemapi.WatchEvent{Type: typ, Name: name}
}

var synced = itemapi.WatchEvent{Type: itemapi.Synced}

func added(names ...string) []itemapi.WatchEvent {
	var evs []itemapi.WatchEvent
	for _, n := range names {
		evs = append(evs, ev(itemapi.Added, n))
	}
	return evs
}

func wantEvents(t *testing.T, got []itemapi.WatchEvent, want ...itemapi.WatchEvent) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
}

// watchGate stands in front of a server: it counts watch requests and,
// while down, answers them with 503.
type watchGate struct {
	h        http.Handler
	down     atomic.Bool
	watches  atomic.Int32
	rejected atomic.Int32
}

func (g *watchGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("watch") == "true" {
		g.watches.Add(1)
		if g.down.Load() {
			g.rejected.Add(1)
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
	}
	g.h.ServeHTTP(w, r)
}

func gated(g **watchGate) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler { *g = &watchGate{h: h}; return *g }
}

func serverNames(t *testing.T, srv *ambassadorServer) []string {
	t.Helper()
	var names []string
	srv.d.Index().Ascend(func(n string, _ json.RawMessage) bool { names = append(names, n); return true })
	return names
}

func TestWatchSnapshotAndChanges(t *testing.T) {
	srv := newAmbassador(t, 50*time.Millisecond, nil)
	put(t, srv.d, "b", "a/x y", "c")
	rec := newRecorder()
	stop := startWatch(t, newClient(t, srv.URL), rec.handle)
	wantEvents(t, rec.waitEvents(t, 0, 4), append(added("a/x y", "b", "c"), synced)...)

	put(t, srv.d, "d")
	srv.d.Remove("b")
	put(t, srv.d, "d") // a replacement is no event
	put(t, srv.d, "e")
	wantEvents(t, rec.waitEvents(t, 4, 3), ev(itemapi.Added, "d"), ev(itemapi.Deleted, "b"), ev(itemapi.Added, "e"))
	time.Sleep(200 * time.Millisecond) // heartbeats arrive meanwhile; none reaches the handler
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch returned %v, want context.Canceled", err)
	}
	wantEvents(t, rec.snapshot()[7:])
	rec.check(t)
	noClientGoroutines(t)
}

func TestWatchHandlerErrorEndsWatch(t *testing.T) {
	srv := newAmbassador(t, 50*time.Millisecond, nil)
	put(t, srv.d, "a", "b", "c")
	errStop := errors.New("enough")
	var n int
	err := newClient(t, srv.URL).Watch(ctxFor(t, 10*time.Second), func(itemapi.WatchEvent) error {
		n++
		if n == 2 {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Fatalf("Watch returned %v, want the handler's error as is", err)
	}
}

// TestWatchResumesAfterDisconnect: the connection is cut, items come and go
// while the client cannot reconnect; afterwards the handler sees exactly
// the differences, nothing repeated, nothing lost.
func TestWatchResumesAfterDisconnect(t *testing.T) {
	var gate *watchGate
	srv := newAmbassador(t, 50*time.Millisecond, gated(&gate))
	put(t, srv.d, "a", "b", "c", "d")
	rec := newRecorder()
	c := newClient(t, srv.URL)
	startWatch(t, c, rec.handle)
	wantEvents(t, rec.waitEvents(t, 0, 5), append(added("a", "b", "c", "d"), synced)...)
	put(t, srv.d, "e")
	srv.d.Remove("a")
	wantEvents(t, rec.waitEvents(t, 5, 2), ev(itemapi.Added, "e"), ev(itemapi.Deleted, "a"))

	// Outage: cut the stream, refuse reconnections until the changes are made.
	gate.down.Store(true)
	srv.CloseClientConnections()
	waitUntil(t, "a refused reconnection", func() bool { return gate.rejected.Load() >= 1 })
	put(t, srv.d, "f")
	srv.d.Remove("b")
	put(t, srv.d, "g") // comes and goes: never seen
	srv.d.Remove("g")
	srv.d.Remove("c") // goes and comes back: no change to the caller
	put(t, srv.d, "c")
	put(t, srv.d, "h")
	mark := len(rec.snapshot())
	if mark != 7 {
		t.Fatalf("events during the outage: %v", rec.snapshot()[7:])
	}
	gate.down.Store(false)

	wantEvents(t, rec.waitEvents(t, mark, 4), ev(itemapi.Deleted, "b"), ev(itemapi.Added, "f"), ev(itemapi.Added, "h"), synced)
	// And the new stream carries changes.
	put(t, srv.d, "i")
	srv.d.Remove("d")
	wantEvents(t, rec.waitEvents(t, mark+4, 2), ev(itemapi.Added, "i"), ev(itemapi.Deleted, "d"))
	time.Sleep(100 * time.Millisecond)
	if got := rec.snapshot(); len(got) != mark+6 {
		t.Fatalf("extra events: %v", got[mark+6:])
	}
	rec.check(t)
	if got, want := rec.viewNames(), serverNames(t, srv); !slices.Equal(got, want) {
		t.Fatalf("caller's view %v, server has %v", got, want)
	}
}

// TestWatchChurn: items come and go all the time while the connection is
// cut again and again; the handler never sees a contradiction and ends up
// with the server's set.
func TestWatchChurn(t *testing.T) {
	var gate *watchGate
	srv := newAmbassador(t, 50*time.Millisecond, gated(&gate))
	for i := range 200 {
		put(t, srv.d, fmt.Sprintf("n%03d", i))
	}
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL), rec.handle)
	rec.waitEvents(t, 0, 201)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := fmt.Sprintf("n%03d", rng.IntN(300))
			if rng.IntN(2) == 0 {
				_ = srv.d.Put(n, json.RawMessage(`{}`))
			} else {
				srv.d.Remove(n)
			}
			if rng.IntN(50) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	for range 15 {
		time.Sleep(50 * time.Millisecond)
		srv.CloseClientConnections()
	}
	close(stop)
	wg.Wait()
	// A last outage with changes the client must catch up with.
	gate.down.Store(true)
	rejected := gate.rejected.Load()
	srv.CloseClientConnections()
	waitUntil(t, "a refused reconnection", func() bool { return gate.rejected.Load() > rejected })
	for i := range 300 {
		n := fmt.Sprintf("n%03d", i)
		if i%3 == 0 {
			srv.d.Remove(n)
		} else {
			_ = srv.d.Put(n, json.RawMessage(`{}`))
		}
	}
	gate.down.Store(false)
	want := serverNames(t, srv)
	waitUntil(t, "the caller's view to match the server", func() bool { return slices.Equal(rec.viewNames(), want) })
	rec.check(t)
	if gate.watches.Load() < 5 {
		t.Fatalf("only %d watch connections: the cuts did not happen", gate.watches.Load())
	}
}

// TestWatchOverflowResyncs: a slow handler makes the server's queue for
// the stream overflow; the server ends the stream, the client reconnects
// and resynchronises without loss.
func TestWatchOverflowResyncs(t *testing.T) {
	var gate *watchGate
	srv := newAmbassador(t, 50*time.Millisecond, gated(&gate))
	srv.d.Index().SetMaxQueue(2)
	for i := range 1000 {
		put(t, srv.d, fmt.Sprintf("old-%04d", i))
	}
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL), rec.handle)
	rec.waitEvents(t, 0, 1001)

	release := make(chan struct{})
	rec.mu.Lock()
	rec.block = release // the next event's handler blocks
	rec.mu.Unlock()
	pad := strings.Repeat("p", 200)
	for i := range 20000 {
		put(t, srv.d, fmt.Sprintf("item-%05d-%s", i, pad))
		if i%7 == 3 {
			srv.d.Remove(fmt.Sprintf("item-%05d-%s", i-1, pad))
		}
		if i%20 == 0 {
			srv.d.Remove(fmt.Sprintf("old-%04d", i/20)) // the caller knows these
		}
	}
	close(release)
	want := serverNames(t, srv)
	waitUntil(t, "the caller's view to match the server", func() bool { return slices.Equal(rec.viewNames(), want) })
	rec.check(t)
	if n := gate.watches.Load(); n < 2 {
		t.Fatalf("%d watch connections: the stream did not overflow", n)
	}
}

func TestWatchIdleTimeoutReconnects(t *testing.T) {
	var gate *watchGate
	srv := newAmbassador(t, time.Hour, gated(&gate)) // no heartbeats
	put(t, srv.d, "a")
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL, itemapi.WithWatchIdleTimeout(150*time.Millisecond)), rec.handle)
	rec.waitEvents(t, 0, 2)
	waitUntil(t, "reconnections", func() bool { return gate.watches.Load() >= 3 })
	put(t, srv.d, "b")
	waitUntil(t, "ADDED b", func() bool { return slices.Contains(rec.snapshot(), ev(itemapi.Added, "b")) })
	for i, e := range rec.snapshot() {
		if i > 1 && e != synced && e != ev(itemapi.Added, "b") {
			t.Fatalf("event %d after reconnecting: %v", i, e)
		}
	}
	rec.check(t)
}

func TestWatchHeartbeatsKeepStream(t *testing.T) {
	var gate *watchGate
	srv := newAmbassador(t, 20*time.Millisecond, gated(&gate))
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL, itemapi.WithWatchIdleTimeout(500*time.Millisecond)), rec.handle)
	rec.waitEvents(t, 0, 1)
	time.Sleep(1500 * time.Millisecond)
	if n := gate.watches.Load(); n != 1 {
		t.Fatalf("%d watch connections while heartbeats flowed", n)
	}
	wantEvents(t, rec.snapshot(), synced)
}

func TestWatchRetries5xx(t *testing.T) {
	var f *flaky
	srv := newAmbassador(t, 50*time.Millisecond, func(h http.Handler) http.Handler { f = &flaky{h: h, n: 3, code: 503}; return f })
	put(t, srv.d, "a")
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL), rec.handle)
	wantEvents(t, rec.waitEvents(t, 0, 2), ev(itemapi.Added, "a"), synced)
	put(t, srv.d, "b") // a stream, not polling
	wantEvents(t, rec.waitEvents(t, 2, 1), ev(itemapi.Added, "b"))
}

// TestWatchStreamEdgeCases: a hand-written stream with duplicates, unknown
// event types, blank lines and a broken line.
func TestWatchStreamEdgeCases(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		var lines []string
		switch conns.Add(1) {
		case 1:
			lines = []string{
				`{"type":"ADDED","name":"a"}`, `{"type":"HEARTBEAT"}`, `{"type":"ADDED","name":"b"}`, ``,
				`{"type":"ADDED","name":"a"}`, `{"type":"BOOKMARK","name":"zz"}`, `{"type":"ADDED","name":"gone"}`,
				`{"type":"DELETED","name":"gone"}`, `{"type":"SYNCED"}`,
				`{"type":"ADDED","name":"a"}`, `{"type":"DELETED","name":"unknown"}`, `{"type":"ADDED","name":""}`,
				`{"type":"ADDED","name":"c"}`, `{"type":"SYNCED"}`, `not json`,
			}
		case 2:
			lines = []string{`{"type":"ADDED","name":"b"}`, `{"type":"ADDED","name":"d"}`, `{"type":"SYNCED"}`}
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		w.(http.Flusher).Flush()
		if len(lines) == 3 {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL), rec.handle)
	wantEvents(t, rec.waitEvents(t, 0, 8),
		ev(itemapi.Added, "a"), ev(itemapi.Added, "b"), synced, ev(itemapi.Added, "c"),
		ev(itemapi.Deleted, "a"), ev(itemapi.Deleted, "c"), ev(itemapi.Added, "d"), synced)
	rec.check(t)
}

// syncLog is a slog handler's output, safe to read while written.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestWatchFallsBackToPolling(t *testing.T) {
	m, srv := newMinimal(t, "a", "dir/b c")
	logs := &syncLog{}
	c := newClient(t, srv.URL, itemapi.WithPollInterval(20*time.Millisecond), itemapi.WithPageSize(1),
		itemapi.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	rec := newRecorder()
	stop := startWatch(t, c, rec.handle)
	wantEvents(t, rec.waitEvents(t, 0, 3), ev(itemapi.Added, "a"), ev(itemapi.Added, "dir/b c"), synced)

	// Change the set in one step, so one poll sees all of it.
	m.mu.Lock()
	delete(m.items, "a")
	m.items["new"] = `{}`
	m.items["0first"] = `{}`
	m.mu.Unlock()
	var after []itemapi.WatchEvent
	waitUntil(t, "the change to be polled", func() bool {
		after = nil
		for _, e := range rec.snapshot()[3:] {
			if e != synced {
				after = append(after, e)
			}
		}
		return len(after) >= 3
	})
	wantEvents(t, after, ev(itemapi.Deleted, "a"), ev(itemapi.Added, "0first"), ev(itemapi.Added, "new"))
	// Each poll ends with SYNCED, the change came whole between two of them.
	evs := rec.snapshot()
	i := slices.Index(evs, ev(itemapi.Deleted, "a"))
	if evs[i-1] != synced || evs[i+3] != synced {
		t.Fatalf("the change is not between two SYNCED: %v", evs)
	}
	m.remove("new")
	waitUntil(t, "DELETED new", func() bool { return slices.Contains(rec.snapshot(), ev(itemapi.Deleted, "new")) })
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch returned %v", err)
	}
	rec.check(t)
	noClientGoroutines(t)
	if n := strings.Count(logs.String(), "polling the item list"); n != 1 {
		t.Fatalf("fallback logged %d times:\n%s", n, logs.String())
	}
	if got := rec.viewNames(); !slices.Equal(got, []string{"0first", "dir/b c"}) {
		t.Fatalf("view %v", got)
	}
}

func TestWatchFallbackOnErrorStatus(t *testing.T) {
	for _, code := range []int{400, 404, 405, 501} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			m, _ := newMinimal(t)
			m.set("a", `{}`)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Has("watch") {
					http.Error(w, "no watching here", code)
					return
				}
				m.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			rec := newRecorder()
			startWatch(t, newClient(t, srv.URL, itemapi.WithPollInterval(20*time.Millisecond)), rec.handle)
			wantEvents(t, rec.waitEvents(t, 0, 2), ev(itemapi.Added, "a"), synced)
			m.set("b", `{}`)
			waitUntil(t, "ADDED b", func() bool { return slices.Contains(rec.snapshot(), ev(itemapi.Added, "b")) })
			rec.check(t)
		})
	}
}

// TestWatchPollingSurvivesErrors: while polling, a failing list is logged
// and the next poll carries on.
func TestWatchPollingSurvivesErrors(t *testing.T) {
	m, _ := newMinimal(t, "a")
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		m.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rec := newRecorder()
	startWatch(t, newClient(t, srv.URL, itemapi.WithPollInterval(10*time.Millisecond), itemapi.WithRetries(0)), rec.handle)
	rec.waitEvents(t, 0, 2)
	failing.Store(true)
	m.set("b", `{}`)
	time.Sleep(100 * time.Millisecond)
	failing.Store(false)
	waitUntil(t, "ADDED b", func() bool { return slices.Contains(rec.snapshot(), ev(itemapi.Added, "b")) })
	rec.check(t)
}

// TestWatchSlowHandlerIsNotIdle: time spent in the handler does not count
// as a silent stream.
func TestWatchSlowHandlerIsNotIdle(t *testing.T) {
	var gate *watchGate
	srv := newAmbassador(t, 20*time.Millisecond, gated(&gate))
	put(t, srv.d, "a")
	rec := newRecorder()
	release := make(chan struct{})
	rec.block = release // the first event's handler takes a while
	stop := startWatch(t, newClient(t, srv.URL, itemapi.WithWatchIdleTimeout(300*time.Millisecond)), rec.handle)
	time.Sleep(time.Second)
	close(release)
	wantEvents(t, rec.waitEvents(t, 0, 2), ev(itemapi.Added, "a"), synced)
	time.Sleep(200 * time.Millisecond)
	if n := gate.watches.Load(); n != 1 {
		t.Fatalf("%d watch connections: a slow handler was taken for an idle stream", n)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch returned %v", err)
	}
	noClientGoroutines(t)
}

// noClientGoroutines fails when a goroutine of the client outlives the
// call that started it.
func noClientGoroutines(t *testing.T) {
	t.Helper()
	var stacks string
	waitUntil(t, "the client's goroutines to end", func() bool {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "itemapi.(*watcher)") && !strings.Contains(stacks, "itemapi.(*Client)")
	})
}

// An ADDED event may carry the item's document; Watch passes it on (with
// its kind filled in) and drops one that names another item.
func TestWatchPassesItemDocuments(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"type":"SYNCED"}`)
		fmt.Fprintln(w, `{"type":"ADDED","name":"a","item":{"data":{"x":1}}}`)
		fmt.Fprintln(w, `{"type":"ADDED","name":"b","item":{"name":"other","data":{}}}`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	c, err := itemapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []itemapi.WatchEvent
	err = c.Watch(ctx, func(ev itemapi.WatchEvent) error {
		got = append(got, ev)
		if len(got) == 3 {
			return errors.New("enough")
		}
		return nil
	})
	if err == nil || err.Error() != "enough" {
		t.Fatalf("Watch: %v (events %+v)", err, got)
	}
	if a := got[1]; a.Name != "a" || a.Item == nil || a.Item.Name != "a" || a.Item.Kind != itemapi.KindItem || string(a.Item.Data) != `{"x":1}` {
		t.Fatalf("a: %+v item %+v", a, a.Item)
	}
	if b := got[2]; b.Name != "b" || b.Item != nil {
		t.Fatalf("b must lose its mismatched document: %+v item %+v", b, b.Item)
	}
}
