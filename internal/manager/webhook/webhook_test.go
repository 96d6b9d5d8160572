package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// receiver records the events it accepts, after checking their signature.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	got    map[string]int // id → accepted deliveries
	bad    int
	calls  atomic.Int64
	fail   func(call int64) bool
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := r.calls.Add(1)
	body, _ := io.ReadAll(req.Body)
	if err := Verify(r.secret, req.Header, body, 5*time.Minute); err != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ev CloudEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.SpecVersion != "1.0" || ev.ID != req.Header.Get(HeaderID) ||
		req.Header.Get("Content-Type") != "application/cloudevents+json" || ev.Data.Item != ev.Subject {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if r.fail != nil && r.fail(n) {
		http.Error(w, "flaky", http.StatusServiceUnavailable)
		return
	}
	r.mu.Lock()
	r.got[ev.ID]++
	r.mu.Unlock()
}

func (r *receiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func newSender(t testing.TB, url, dir string) *Sender { return newSenderSync(t, url, dir, false) }

func newSenderSync(t testing.TB, url, dir string, sync bool) *Sender {
	t.Helper()
	s, err := New(Config{URL: url, Secret: "s3cret", Source: "itemq/test", StateDir: dir, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, Timeout: 2 * time.Second, NoSync: !sync})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func run(s *Sender) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func enqueue(s *Sender, from, n int) {
	for i := from; i < from+n; i++ {
		item := fmt.Sprintf("item-%04d", i)
		s.Enqueue(TypeSucceeded, itemapi.JobStatus{Kind: "Job", Item: item, State: itemapi.StateSucceeded}, item+".succeeded")
	}
}

// Every event is delivered, signed, to a receiver that fails half the
// time and to one that is down for a while; a restarted sender does not
// send again what was delivered.
func TestDeliveryAtLeastOnce(t *testing.T) {
	dir := t.TempDir()
	rcv := &receiver{t: t, secret: "s3cret", got: map[string]int{}, fail: func(n int64) bool { return n%2 == 0 }}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	s := newSender(t, srv.URL, dir)
	stop := run(s)
	enqueue(s, 0, 200)
	testutil.Eventually(t, 30*time.Second, "200 events delivered", func() error {
		if n := rcv.delivered(); n != 200 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	stop()
	if rcv.bad != 0 {
		t.Fatalf("%d deliveries had a bad signature or document", rcv.bad)
	}
	// What became of an item's event, for the dashboard.
	if ds := s.Deliveries("item-0001"); len(ds) != 1 || ds[0].DeliveredAt.IsZero() || ds[0].Attempts < 1 || ds[0].Type != TypeSucceeded {
		t.Errorf("deliveries of item-0001: %+v", ds)
	}

	// The receiver is down (connection refused), then back at the same address.
	addr := srv.Listener.Addr().String()
	srv.Close()
	s2 := newSender(t, "http://"+addr, dir)
	stop2 := run(s2)
	enqueue(s2, 0, 300) // the first 200 again (a replay after a restart): dropped as delivered
	if p := s2.Pending(); p != 100 {
		t.Fatalf("%d pending after the replay, want 100", p)
	}
	time.Sleep(2 * time.Second)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv2 := &http.Server{Handler: rcv}
	go srv2.Serve(ln)
	defer srv2.Close()
	testutil.Eventually(t, 30*time.Second, "the rest delivered after the outage", func() error {
		if n := rcv.delivered(); n != 300 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	stop2()
	for id, n := range rcv.got {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
}

// A dead receiver never blocks: past MaxPending, events are dropped and
// counted.
func TestBoundedPending(t *testing.T) {
	s, err := New(Config{URL: "http://127.0.0.1:1", StateDir: t.TempDir(), MaxPending: 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	enqueue(s, 0, 1000)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Enqueue of 1000 events took %v", took)
	}
	if p := s.Pending(); p != 10 {
		t.Errorf("%d pending, want 10", p)
	}
}

func TestVerifyRefusesReplayAndForgery(t *testing.T) {
	body := []byte(`{"x":1}`)
	h := http.Header{}
	h.Set(HeaderID, "e1")
	old := fmt.Sprint(time.Now().Add(-time.Hour).Unix())
	h.Set(HeaderTimestamp, old)
	h.Set(HeaderSignature, "v1,"+Sign("k", "e1", old, body))
	if Verify("k", h, body, 5*time.Minute) == nil {
		t.Error("an hour-old delivery was accepted")
	}
	now := fmt.Sprint(time.Now().Unix())
	h.Set(HeaderTimestamp, now)
	h.Set(HeaderSignature, "v1,"+Sign("other", "e1", now, body))
	if Verify("k", h, body, 5*time.Minute) == nil {
		t.Error("a signature with another key was accepted")
	}
	h.Set(HeaderSignature, "v0,x v1,"+Sign("k", "e1", now, body))
	if err := Verify("k", h, body, 5*time.Minute); err != nil {
		t.Error(err)
	}
}

// BenchmarkDelivery measures events delivered per second to a local
// receiver (go test -bench Delivery ./internal/manager/webhook/).
// With fsync (the default, MANAGER_STATE_FSYNC=true) each delivered id is
// synced to disk before the next one of that worker.
func BenchmarkDelivery(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%v", sync), func(b *testing.B) {
			rcv := &receiver{secret: "s3cret", got: map[string]int{}}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			s := newSenderSync(b, srv.URL, b.TempDir(), sync)
			stop := run(s)
			defer stop()
			b.ResetTimer()
			start := time.Now()
			enqueue(s, 0, b.N)
			for rcv.delivered() < b.N {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
