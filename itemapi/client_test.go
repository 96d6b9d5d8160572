package itemapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
)

// fast are client options for tests: short backoff, so retries do not
// slow the tests down.
var fast = []itemapi.ClientOption{itemapi.WithBackoff(time.Millisecond, 20*time.Millisecond)}

// ambassadorServer is the real ambassador handler over an in-memory source.
type ambassadorServer struct {
	*httptest.Server
	d       *memsource.Driver
	handler http.Handler
}

// newAmbassador starts the real ambassador over memsource. wrap, when not
// nil, stands in front of it (to count, fail or cut requests).
func newAmbassador(t *testing.T, heartbeat time.Duration, wrap func(http.Handler) http.Handler) *ambassadorServer {
	t.Helper()
	d := memsource.New()
	src := source.New(d, source.WithMaxSubmitBytes(1024))
	h, stop := ambassador.NewHandler(src, slog.New(slog.DiscardHandler), "test", heartbeat)
	var front http.Handler = h
	if wrap != nil {
		front = wrap(h)
	}
	srv := httptest.NewServer(front)
	t.Cleanup(func() { stop(); srv.CloseClientConnections(); srv.Close(); src.Close() })
	return &ambassadorServer{Server: srv, d: d, handler: h}
}

func newClient(t *testing.T, url string, opts ...itemapi.ClientOption) *itemapi.Client {
	t.Helper()
	c, err := itemapi.NewClient(url, append(slices.Clone(fast), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func put(t *testing.T, d *memsource.Driver, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := d.Put(n, json.RawMessage(fmt.Sprintf(`{"n":%q}`, n))); err != nil {
			t.Fatal(err)
		}
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestNewClientValidatesURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://h", "http://", "http://h/?x=1", "http://h#f", "://x"} {
		if _, err := itemapi.NewClient(u); err == nil {
			t.Errorf("NewClient(%q) accepted", u)
		}
	}
	for _, o := range []itemapi.ClientOption{
		itemapi.WithHTTPClient(nil), itemapi.WithRequestTimeout(0), itemapi.WithRetries(-1),
		itemapi.WithBackoff(0, time.Second), itemapi.WithBackoff(time.Second, time.Millisecond), itemapi.WithLogger(nil),
		itemapi.WithBearerToken("a\nb"), itemapi.WithPageSize(0), itemapi.WithPollInterval(0), itemapi.WithWatchIdleTimeout(-1),
	} {
		if _, err := itemapi.NewClient("http://h", o); err == nil {
			t.Errorf("NewClient accepted a bad option")
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "https://amb.example:443/", "http://h/prefix/"} {
		if _, err := itemapi.NewClient(u); err != nil {
			t.Errorf("NewClient(%q): %v", u, err)
		}
	}
}

func TestListFollowsPages(t *testing.T) {
	var pages atomic.Int32
	srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/items" {
				pages.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	var want []string
	for i := range 2500 {
		n := fmt.Sprintf("item-%05d", i)
		want = append(want, n)
	}
	put(t, srv.d, want...)
	c := newClient(t, srv.URL, itemapi.WithPageSize(100))
	ctx := ctxFor(t, 30*time.Second)
	got, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List: %d names, want %d (first %v)", len(got), len(want), got[:min(3, len(got))])
	}
	if n := pages.Load(); n != 25 {
		t.Fatalf("List took %d requests, want 25 pages of 100", n)
	}

	page, err := c.ListPage(ctx, 10, "")
	if err != nil || len(page.Items) != 10 || page.Continue == "" || page.Kind != itemapi.KindItemList {
		t.Fatalf("ListPage: %+v %v", page, err)
	}
	next, err := c.ListPage(ctx, 10, page.Continue)
	if err != nil || next.Items[0] != "item-00010" {
		t.Fatalf("second page: %+v %v", next, err)
	}
	if _, err := c.ListPage(ctx, 10, "!!not-a-token"); !itemapi.IsBadRequest(err) {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := c.ListPage(ctx, -1, ""); !itemapi.IsBadRequest(err) {
		t.Fatalf("negative limit: %v", err)
	}

	empty := newAmbassador(t, time.Second, nil)
	got, err = newClient(t, empty.URL).List(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty List: %v %v", got, err)
	}
}

// TestListWhileChanging: a listing that runs while items come and go has
// every item that stayed the whole time, exactly once, in order.
func TestListWhileChanging(t *testing.T) {
	srv := newAmbassador(t, time.Second, nil)
	var stable []string
	for i := range 1000 {
		stable = append(stable, fmt.Sprintf("s-%04d", i))
	}
	put(t, srv.d, stable...)
	ctx := ctxFor(t, 30*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := fmt.Sprintf("s-%04d-x%d", i%1000, i)
			put(t, srv.d, n)
			srv.d.Remove(n)
		}
	})
	got, err := newClient(t, srv.URL, itemapi.WithPageSize(7)).List(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatal("listing not sorted or has duplicates")
	}
	var kept []string
	for _, n := range got {
		if !strings.Contains(n, "-x") {
			kept = append(kept, n)
		}
	}
	if !slices.Equal(kept, stable) {
		t.Fatalf("stable items: got %d, want %d", len(kept), len(stable))
	}
}

func TestGetEscapesNames(t *testing.T) {
	srv := newAmbassador(t, time.Second, nil)
	names := []string{"plain", "a/b/c.mp4", "with space", "100%", "%2F", "ünïcødé/日本語", "q?x=1#frag", "..", ".", "a+b&c=d", "semi;colon"}
	put(t, srv.d, names...)
	c := newClient(t, srv.URL)
	ctx := ctxFor(t, 10*time.Second)
	for _, n := range names {
		it, err := c.Get(ctx, n)
		if err != nil {
			t.Errorf("Get(%q): %v", n, err)
			continue
		}
		var data struct{ N string }
		if it.Name != n || it.Kind != itemapi.KindItem || it.APIVersion != itemapi.APIVersion || json.Unmarshal(it.Data, &data) != nil || data.N != n {
			t.Errorf("Get(%q) = %+v (data %s)", n, it, it.Data)
		}
	}
	if _, err := c.Get(ctx, "missing/one"); !itemapi.IsNotFound(err) {
		t.Fatalf("missing: %v", err)
	} else if !strings.Contains(err.Error(), "/v1/items/missing%2Fone") {
		t.Fatalf("error does not say what was asked: %v", err)
	}
	var st *itemapi.Status
	if _, err := c.Get(ctx, "missing"); !errors.As(err, &st) || st.Code != 404 || st.Reason != itemapi.ReasonNotFound {
		t.Fatalf("not a *Status: %#v", err)
	}
}

func TestInvalidNamesNeverSent(t *testing.T) {
	var requests atomic.Int32
	srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1); h.ServeHTTP(w, r) })
	})
	c := newClient(t, srv.URL)
	ctx := ctxFor(t, 10*time.Second)
	for _, n := range []string{"", "a\x00b", "\xff", strings.Repeat("x", itemapi.MaxNameBytes+1)} {
		if _, err := c.Get(ctx, n); !itemapi.IsBadRequest(err) {
			t.Errorf("Get(%q): %v", n, err)
		}
		if err := c.Ack(ctx, n, itemapi.Succeeded); !itemapi.IsBadRequest(err) {
			t.Errorf("Ack(%q): %v", n, err)
		}
	}
	if err := c.Ack(ctx, "a", "done"); !itemapi.IsBadRequest(err) {
		t.Errorf("Ack with a bad outcome: %v", err)
	}
	if _, err := c.Submit(ctx, json.RawMessage(`{"x":`)); !itemapi.IsBadRequest(err) {
		t.Errorf("Submit of invalid JSON: %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests sent for invalid input", n)
	}
}

func TestSubmit(t *testing.T) {
	var location string
	srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if r.Method == http.MethodPost && rec.Code == http.StatusCreated {
				location = rec.Header().Get("Location")
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
		})
	})
	c := newClient(t, srv.URL)
	ctx := ctxFor(t, 10*time.Second)
	it, err := c.Submit(ctx, json.RawMessage(`{"url":"s3://in/a.mp4"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(it.Name, "submit-") || string(it.Data) != `{"url":"s3://in/a.mp4"}` {
		t.Fatalf("submitted: %+v", it)
	}
	if location != itemapi.ItemPath(it.Name) {
		t.Fatalf("Location %q, want %q", location, itemapi.ItemPath(it.Name))
	}
	got, err := c.Get(ctx, it.Name)
	if err != nil || string(got.Data) != string(it.Data) {
		t.Fatalf("Get of the submitted item: %+v %v", got, err)
	}

	if _, err := c.Submit(ctx, json.RawMessage(`{"big":"`+strings.Repeat("x", 2000)+`"}`)); !itemapi.IsTooLarge(err) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := c.Submit(ctx, json.RawMessage(`[1,2]`)); !itemapi.IsBadRequest(err) {
		t.Fatalf("not an object: %v", err)
	}
}

func TestAck(t *testing.T) {
	srv := newAmbassador(t, time.Second, nil)
	put(t, srv.d, "a/b", "c")
	c := newClient(t, srv.URL)
	ctx := ctxFor(t, 10*time.Second)
	if err := c.Ack(ctx, "a/b", itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, "c", itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	if o, ok := srv.d.Outcome("a/b"); !ok || o != itemapi.Succeeded {
		t.Fatalf("outcome of a/b: %q %v", o, ok)
	}
	if o, ok := srv.d.Outcome("c"); !ok || o != itemapi.Failed {
		t.Fatalf("outcome of c: %q %v", o, ok)
	}
	err := c.Ack(ctx, "a/b", itemapi.Succeeded)
	if !itemapi.IsNotFound(err) {
		t.Fatalf("second ack: %v", err)
	}
}

// TestAckAfterAmbiguousFailure: the first DELETE archives the item but its
// answer is lost (a 502 from a proxy); the retry's NotFound is success.
func TestAckAfterAmbiguousFailure(t *testing.T) {
	var deletes atomic.Int32
	srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodDelete && deletes.Add(1) == 1 {
				h.ServeHTTP(httptest.NewRecorder(), r) // the source archives it...
				http.Error(w, "upstream went away", http.StatusBadGateway)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	put(t, srv.d, "x")
	c := newClient(t, srv.URL)
	if err := c.Ack(ctxFor(t, 10*time.Second), "x", itemapi.Succeeded); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if deletes.Load() != 2 {
		t.Fatalf("%d DELETEs, want 2", deletes.Load())
	}
	if o, _ := srv.d.Outcome("x"); o != itemapi.Succeeded {
		t.Fatalf("outcome %q", o)
	}
}

func TestReady(t *testing.T) {
	var requests atomic.Int32
	srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1); h.ServeHTTP(w, r) })
	})
	c := newClient(t, srv.URL)
	ctx := ctxFor(t, 10*time.Second)
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	srv.d.SetReady(errors.New("disk gone"))
	requests.Store(0)
	err := c.Ready(ctx)
	if !itemapi.IsUnavailable(err) || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("not ready: %v", err)
	}
	if requests.Load() != 1 {
		t.Fatalf("a not-ready answer was retried: %d requests", requests.Load())
	}
}

// flaky fails the first n requests with code (and optional headers), then
// passes the rest to h. It counts every request.
type flaky struct {
	h        http.Handler
	n        int32
	code     int
	header   http.Header
	requests atomic.Int32
	times    []time.Time
	mu       sync.Mutex
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := f.requests.Add(1)
	f.mu.Lock()
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
	if i <= f.n {
		for k, v := range f.header {
			w.Header()[k] = v
		}
		http.Error(w, fmt.Sprintf("flaky failure %d", i), f.code)
		return
	}
	f.h.ServeHTTP(w, r)
}

func TestRetries(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	t.Run("5xx then success", func(t *testing.T) {
		var f *flaky
		srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler { f = &flaky{h: h, n: 2, code: 503}; return f })
		put(t, srv.d, "a")
		c := newClient(t, srv.URL)
		it, err := c.Get(ctx, "a")
		if err != nil || it.Name != "a" {
			t.Fatalf("Get: %+v %v", it, err)
		}
		if n := f.requests.Load(); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
	})
	t.Run("gives up after the retries", func(t *testing.T) {
		var f *flaky
		srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler { f = &flaky{h: h, n: 100, code: 502}; return f })
		c := newClient(t, srv.URL, itemapi.WithRetries(2))
		_, err := c.List(ctx)
		if !itemapi.IsUnavailable(err) {
			t.Fatalf("List: %v", err)
		}
		var st *itemapi.Status
		if !errors.As(err, &st) || st.Code != 502 || !strings.Contains(st.Message, "GET /v1/items") || !strings.Contains(st.Message, "flaky failure 3") {
			t.Fatalf("error does not tell what happened: %v", err)
		}
		if n := f.requests.Load(); n != 3 {
			t.Fatalf("%d requests, want 3 (1 + 2 retries)", n)
		}
	})
	t.Run("4xx never retried", func(t *testing.T) {
		for _, code := range []int{400, 401, 403, 404, 405, 409, 413} {
			var f *flaky
			srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler { f = &flaky{h: h, n: 100, code: code}; return f })
			c := newClient(t, srv.URL)
			_, err := c.Get(ctx, "a")
			var st *itemapi.Status
			if !errors.As(err, &st) || st.Code != code || st.Reason != itemapi.ReasonForCode(code) {
				t.Fatalf("%d: %v", code, err)
			}
			if err := c.Ack(ctx, "a", itemapi.Succeeded); itemapi.ReasonOf(err) != itemapi.ReasonForCode(code) {
				t.Fatalf("%d: ack: %v", code, err)
			}
			if n := f.requests.Load(); n != 2 {
				t.Fatalf("%d: %d requests for one Get and one Ack", code, n)
			}
		}
	})
	t.Run("submit not retried after reaching the server", func(t *testing.T) {
		var f *flaky
		srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler { f = &flaky{h: h, n: 1, code: 503}; return f })
		c := newClient(t, srv.URL)
		if _, err := c.Submit(ctx, json.RawMessage(`{}`)); !itemapi.IsUnavailable(err) {
			t.Fatalf("Submit: %v", err)
		}
		if n := f.requests.Load(); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
		if l, _ := c.List(ctx); len(l) != 0 {
			t.Fatalf("items after a failed submit: %v", l)
		}
	})
	t.Run("submit not retried after a broken connection", func(t *testing.T) {
		var posts atomic.Int32
		srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				posts.Add(1)
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			})
		})
		_, err := newClient(t, srv.URL).Submit(ctx, json.RawMessage(`{}`))
		if err == nil || !itemapi.IsUnavailable(err) || !strings.Contains(err.Error(), "POST /v1/items") {
			t.Fatalf("Submit: %v", err)
		}
		if posts.Load() != 1 {
			t.Fatalf("%d POSTs, want 1", posts.Load())
		}
	})
	t.Run("submit retried on dial errors", func(t *testing.T) {
		srv := newAmbassador(t, time.Second, nil)
		var dials atomic.Int32
		tr := http.DefaultTransport.(*http.Transport).Clone()
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) <= 2 {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused (test)")}
			}
			return d.DialContext(ctx, network, addr)
		}
		c := newClient(t, srv.URL, itemapi.WithHTTPClient(&http.Client{Transport: tr}))
		it, err := c.Submit(ctx, json.RawMessage(`{"a":1}`))
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		if l, _ := c.List(ctx); !slices.Equal(l, []string{it.Name}) {
			t.Fatalf("items: %v", l)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := newClient(t, "http://"+addr, itemapi.WithRetries(2))
		_, err = c.Get(ctx, "a")
		if !itemapi.IsUnavailable(err) || !strings.Contains(err.Error(), "GET /v1/items/a") || !strings.Contains(err.Error(), "3 attempts") {
			t.Fatalf("Get: %v", err)
		}
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Fatalf("the network error is not in the chain: %#v", err)
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	var f *flaky
	srv := newAmbassador(t, time.Second, func(h http.Handler) http.Handler {
		f = &flaky{h: h, n: 1, code: 429, header: http.Header{"Retry-After": {"1"}}}
		return f
	})
	put(t, srv.d, "a")
	c := newClient(t, srv.URL) // backoff ≤ 20ms: only Retry-After can make it wait a second
	if _, err := c.Get(ctxFor(t, 10*time.Second), "a"); err != nil {
		t.Fatal(err)
	}
	if len(f.times) != 2 {
		t.Fatalf("%d requests", len(f.times))
	}
	if gap := f.times[1].Sub(f.times[0]); gap < 950*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After said 1s", gap)
	}

	// A Retry-After longer than the caller's deadline: give up at once with
	// the server's error rather than sleep into the deadline.
	f.requests.Store(0)
	f.header.Set("Retry-After", "60")
	start := time.Now()
	_, err := c.Get(ctxFor(t, 2*time.Second), "a")
	if !itemapi.IsUnavailable(err) || time.Since(start) > 1500*time.Millisecond { // the deadline is 2 s
		t.Fatalf("Get: %v after %v", err, time.Since(start))
	}
}

func TestRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c := newClient(t, srv.URL, itemapi.WithRequestTimeout(100*time.Millisecond), itemapi.WithRetries(1))
	start := time.Now()
	_, err := c.Get(context.Background(), "a")
	if !errors.Is(err, context.DeadlineExceeded) || !itemapi.IsUnavailable(err) || !strings.Contains(err.Error(), "request timeout") {
		t.Fatalf("Get: %v", err)
	}
	if requests.Load() != 2 {
		t.Fatalf("%d requests, want 2 (a timed-out GET is retried)", requests.Load())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestContextCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.List(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List: %v", err)
	}
	// A cancelled context is not retried and fails at once.
	start := time.Now()
	if _, err := c.Get(ctx, "a"); !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	// Cancelled while waiting to retry.
	f503 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	t.Cleanup(f503.Close)
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel2)
	start = time.Now()
	if _, err := newClient(t, f503.URL).Get(ctx2, "a"); !errors.Is(err, context.Canceled) || !itemapi.IsUnavailable(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("Get: %v after %v", err, time.Since(start))
	}
}

func TestHeadersAndPrefix(t *testing.T) {
	var got http.Header
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		path = r.URL.EscapedPath()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"kind":"Item","apiVersion":"v1","name":"a/b","data":{}}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL+"/amb/", itemapi.WithBearerToken("s3cret"))
	if _, err := c.Get(ctxFor(t, 5*time.Second), "a/b"); err != nil {
		t.Fatal(err)
	}
	if path != "/amb/v1/items/a%2Fb" {
		t.Errorf("path %q", path)
	}
	if ua := got.Get("User-Agent"); ua != "itemq-client/"+version.Version {
		t.Errorf("User-Agent %q", ua)
	}
	if a := got.Get("Authorization"); a != "Bearer s3cret" {
		t.Errorf("Authorization %q", a)
	}
}

func TestBadAnswers(t *testing.T) {
	ctx := ctxFor(t, 10*time.Second)
	answer := func(code int, ctype, body string) *itemapi.Client {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ctype)
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return newClient(t, srv.URL, itemapi.WithRetries(0))
	}
	// A proxy's HTML error page: a Status built from the code, with a
	// snippet of the body.
	_, err := answer(502, "text/html", "<html><body>Bad gateway\nfrom nginx</body></html>").Get(ctx, "a")
	var st *itemapi.Status
	if !errors.As(err, &st) || st.Reason != itemapi.ReasonUnavailable || !strings.Contains(st.Message, "GET /v1/items/a") ||
		!strings.Contains(st.Message, "502") || !strings.Contains(st.Message, "Bad gateway from nginx") {
		t.Fatalf("502: %v", err)
	}
	// Another item than the one asked for.
	if _, err := answer(200, "application/json", `{"kind":"Item","apiVersion":"v1","name":"b","data":{}}`).Get(ctx, "a"); err == nil {
		t.Fatal("accepted the wrong item")
	}
	// Not JSON.
	if _, err := answer(200, "application/json", `<html>`).List(ctx); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("not JSON: %v", err)
	}
	// A Status where a list should be.
	if _, err := answer(200, "application/json", `{"kind":"Status","apiVersion":"v1"}`).List(ctx); err == nil {
		t.Fatal("accepted a Status as a list")
	}
	// A body over the bound.
	big := `{"kind":"Item","apiVersion":"v1","name":"a","data":{"x":"` + strings.Repeat("x", itemapi.MaxResponseBytes) + `"}}`
	if _, err := answer(200, "application/json", big).Get(ctx, "a"); !itemapi.IsTooLarge(err) {
		t.Fatalf("huge body: %v", err)
	}
	// A huge error page: judged by its code, the body cut short.
	_, err = answer(500, "text/plain", strings.Repeat("e", 8<<20)).Get(ctx, "a")
	if !errors.As(err, &st) || st.Code != 500 || st.Reason != itemapi.ReasonInternal || len(st.Message) > 1000 {
		t.Fatalf("huge error page: %.300v", err)
	}
	// Minimal documents without kind and apiVersion are accepted.
	it, err := answer(200, "application/json", `{"name":"a","data":{"x":1}}`).Get(ctx, "a")
	if err != nil || it.Kind != itemapi.KindItem || it.APIVersion != itemapi.APIVersion {
		t.Fatalf("minimal item: %+v %v", it, err)
	}
}

// minimalServer is a third-party ambassador as small as the contract
// allows: GET /v1/items (no paging, no watch: it ignores every parameter)
// and GET /v1/items/{name}.
type minimalServer struct {
	mu    sync.Mutex
	items map[string]string
}

func (m *minimalServer) set(name, data string) {
	m.mu.Lock()
	m.items[name] = data
	m.mu.Unlock()
}

func (m *minimalServer) remove(name string) {
	m.mu.Lock()
	delete(m.items, name)
	m.mu.Unlock()
}

func (m *minimalServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/items" {
		names := make([]string, 0, len(m.items))
		for n := range m.items {
			names = append(names, n)
		}
		slices.Sort(names)
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "ItemList", "apiVersion": "v1", "items": names})
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/items/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, err := url.PathUnescape(rest)
	if err != nil {
		http.Error(w, "bad name", http.StatusBadRequest)
		return
	}
	data, ok := m.items[name]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","code":404,"reason":"NotFound","message":"no item %q"}`, name)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Item", "apiVersion": "v1", "name": name, "data": json.RawMessage(data)})
}

func newMinimal(t *testing.T, names ...string) (*minimalServer, *httptest.Server) {
	m := &minimalServer{items: map[string]string{}}
	for _, n := range names {
		m.set(n, `{}`)
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func TestMinimalServerListGet(t *testing.T) {
	var names []string
	for i := range 250 {
		names = append(names, fmt.Sprintf("dir/%03d file", i))
	}
	m, srv := newMinimal(t, names...)
	m.set("x", `{"url":"file:///x"}`)
	c := newClient(t, srv.URL, itemapi.WithPageSize(10))
	ctx := ctxFor(t, 10*time.Second)
	got, err := c.List(ctx)
	if err != nil || !slices.Equal(got, append(slices.Clone(names), "x")) {
		t.Fatalf("List: %d names, %v", len(got), err)
	}
	it, err := c.Get(ctx, "dir/007 file")
	if err != nil || it.Name != "dir/007 file" {
		t.Fatalf("Get: %+v %v", it, err)
	}
	if it, err := c.Get(ctx, "x"); err != nil || string(it.Data) != `{"url":"file:///x"}` {
		t.Fatalf("Get: %+v %v", it, err)
	}
	if _, err := c.Get(ctx, "nope"); !itemapi.IsNotFound(err) {
		t.Fatalf("Get missing: %v", err)
	}
	if _, err := c.Submit(ctx, json.RawMessage(`{}`)); !itemapi.IsMethodNotAllowed(err) {
		t.Fatalf("Submit: %v", err)
	}
	if err := c.Ack(ctx, "x", itemapi.Succeeded); !itemapi.IsMethodNotAllowed(err) {
		t.Fatalf("Ack: %v", err)
	}
}

// TestListServerIgnoresContinue: a server that honours limit but ignores
// continue would page forever; List notices and asks for everything.
func TestListServerIgnoresContinue(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		names := all
		next := ""
		if l := r.URL.Query().Get("limit"); l != "" {
			var n int
			fmt.Sscan(l, &n)
			if n < len(names) {
				names, next = names[:n], "more"
			}
		}
		_ = json.NewEncoder(w).Encode(itemapi.NewItemList(names, next))
	}))
	t.Cleanup(srv.Close)
	got, err := newClient(t, srv.URL, itemapi.WithPageSize(2)).List(ctxFor(t, 5*time.Second))
	if err != nil || !slices.Equal(got, all) {
		t.Fatalf("List: %v %v", got, err)
	}
}
