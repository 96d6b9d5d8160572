package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// addIDs adds n entries {"id":"m<i>"} to a stream and returns their item
// names, in order.
func addIDs(t testing.TB, c *redis.Client, stream string, n int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for start := 0; start < n; start += 1000 {
		pipe := c.Pipeline()
		var cmds []*redis.StringCmd
		for i := start; i < min(n, start+1000); i++ {
			cmds = append(cmds, pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"id", fmt.Sprintf("m%d", i)}}))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("XADD: %v", err)
		}
		for _, c := range cmds {
			names = append(names, stream+"/"+c.Val())
		}
	}
	return names
}

func ambassadorEnv(srv *redisserver.Server, stream string, extra ...string) []string {
	return append([]string{
		"REDIS_ADDRS=" + srv.Addr,
		"REDIS_STREAMS=" + stream,
		"REDIS_CONSUMER=amb-1",
		"ITEMQ_LOG_LEVEL=info",
	}, extra...)
}

func startAmbassador(t *testing.T, env ...string) *testutil.Process {
	t.Helper()
	return testutil.StartServer(t, testutil.Binary(t, "ambassadors/redis"), "ITEMQ_ADDR", env...)
}

// fakeManager lists items over HTTP, reads each and acknowledges it with a
// few workers, in random order; it tolerates an ambassador that dies and
// comes back. It counts successful acks per item name and records any item
// listed again after a successful ack.
type fakeManager struct {
	mu        sync.Mutex
	acked     map[string]int
	attempted map[string]bool
	ackedAt   map[string]time.Time
	relists   []string
	// inflight: names a worker has; like the manager's keyed queue, a
	// name is never handed to two workers at once (otherwise a retried
	// ack answered NotFound, which the client takes as done, counts one
	// acknowledgement twice).
	inflight map[string]bool
}

func (m *fakeManager) run(ctx context.Context, t *testing.T, url string) func() {
	c, err := itemapi.NewClient(url, itemapi.WithRetries(2), itemapi.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		itemapi.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	work := make(chan string)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				m.work(ctx, c, name)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		for ctx.Err() == nil {
			listStart := time.Now()
			names, err := c.List(ctx)
			if err != nil || len(names) == 0 {
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			for _, n := range names {
				m.mu.Lock()
				if at, ok := m.ackedAt[n]; ok && at.Before(listStart) {
					m.relists = append(m.relists, n)
				}
				busy := m.inflight[n]
				if !busy {
					if m.inflight == nil {
						m.inflight = map[string]bool{}
					}
					m.inflight[n] = true
				}
				m.mu.Unlock()
				if busy {
					continue
				}
				select {
				case work <- n:
				case <-ctx.Done():
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return wg.Wait
}

// work gets and acknowledges one item.
func (m *fakeManager) work(ctx context.Context, c *itemapi.Client, name string) {
	defer func() { m.mu.Lock(); delete(m.inflight, name); m.mu.Unlock() }()
	if _, err := c.Get(ctx, name); err != nil {
		return
	}
	m.mu.Lock()
	m.attempted[name] = true
	m.mu.Unlock()
	if err := c.Ack(ctx, name, itemapi.Succeeded); err == nil {
		m.mu.Lock()
		m.acked[name]++
		m.ackedAt[name] = time.Now()
		m.mu.Unlock()
	}
}

// Lists mode, the ambassador SIGKILLed mid-run and started again: its
// processing list is recovered, every value is served, and none is served
// again after its acknowledgement.
func TestKillAmbassadorMidRunLists(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	ctx := context.Background()
	const n = 2000
	for start := 0; start < n; start += 500 {
		var vals []any
		for i := start; i < start+500; i++ {
			vals = append(vals, fmt.Sprintf(`{"id":"m%d"}`, i%1000)) // every value twice
		}
		if err := c.RPush(ctx, "queue", vals...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	addr := testutil.FreeAddr(t)
	env := []string{"REDIS_ADDRS=" + srv.Addr, "REDIS_LISTS=queue", "REDIS_CONSUMER=amb-1", "ITEMQ_LOG_LEVEL=info",
		"ITEMQ_ADDR=" + addr, "REDIS_MAX_PENDING=100"}
	amb := startAmbassador(t, env...)
	m := &fakeManager{acked: map[string]int{}, attempted: map[string]bool{}, ackedAt: map[string]time.Time{}}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := m.run(mctx, t, "http://"+addr)
	count := func() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.acked) }
	testutil.Eventually(t, time.Minute, "a third acknowledged", func() error {
		if k := count(); k < n/3 {
			return fmt.Errorf("%d acked", k)
		}
		return nil
	})
	amb.Kill()
	startAmbassador(t, env...)
	testutil.Eventually(t, 2*time.Minute, "all acknowledged", func() error {
		l, _ := c.LLen(ctx, "queue").Result()
		p, _ := c.LLen(ctx, "queue:processing:amb-1").Result()
		if l != 0 || p != 0 {
			return fmt.Errorf("list %d, processing %d; %d acked", l, p, count())
		}
		return nil
	})
	cancel()
	wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	served := 0
	for name := range m.attempted {
		served++
		if m.acked[name] > 1 {
			t.Errorf("%s acknowledged %d times", name, m.acked[name])
		}
	}
	if served != n {
		t.Errorf("%d distinct items served, want %d (every value, equal ones apart)", served, n)
	}
	if len(m.relists) > 0 {
		t.Errorf("served again after their acknowledgement: %q", m.relists)
	}
	if d, _ := c.LLen(ctx, "queue:dead").Result(); d != 0 {
		t.Errorf("%d values dead-lettered", d)
	}
}

// The ambassador SIGKILLed mid-run and started again (same consumer name):
// its pending entries are read again at once, none is lost, and none is
// served again after it was acknowledged.
func TestKillAmbassadorMidRun(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	names := addIDs(t, c, "jobs", 2000)
	addr := testutil.FreeAddr(t)
	env := ambassadorEnv(srv, "jobs", "ITEMQ_ADDR="+addr, "REDIS_MAX_PENDING=100")
	amb := startAmbassador(t, env...)
	m := &fakeManager{acked: map[string]int{}, attempted: map[string]bool{}, ackedAt: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := m.run(ctx, t, "http://"+addr)
	count := func() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.acked) }
	testutil.Eventually(t, time.Minute, "a third acknowledged", func() error {
		if n := count(); n < len(names)/3 {
			return fmt.Errorf("%d acked", n)
		}
		return nil
	})
	amb.Kill()
	startAmbassador(t, env...)
	// Done when the group has read every entry and none is pending.
	testutil.Eventually(t, 2*time.Minute, "all acknowledged", func() error {
		gs, err := c.XInfoGroups(context.Background(), "jobs").Result()
		if err != nil || len(gs) != 1 {
			return fmt.Errorf("groups %v: %v", gs, err)
		}
		if gs[0].Pending != 0 || gs[0].Lag != 0 {
			return fmt.Errorf("pending %d, lag %d; %d acked", gs[0].Pending, gs[0].Lag, count())
		}
		return nil
	})
	cancel()
	wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		// 0 only for an ack sent when the ambassador was killed: the XACK
		// was done, its answer lost.
		if m.acked[n] > 1 || m.acked[n] == 0 && !m.attempted[n] {
			t.Errorf("%s acknowledged %d times (ack attempted: %v)", n, m.acked[n], m.attempted[n])
		}
	}
	if len(m.relists) > 0 {
		t.Errorf("served again after their acknowledgement: %q", m.relists)
	}
	pend, err := c.XPending(context.Background(), "jobs", "itemq").Result()
	if err != nil || pend.Count != 0 {
		t.Fatalf("pending: %+v %v", pend, err)
	}
}

// /readyz fails with a clear message on a wrong password, and POST
// /v1/items adds an entry (201 with its name).
func TestReadyzAndSubmit(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{Password: "pw", Config: []string{"requirepass pw"}})
	get := func(p *testutil.Process, path string) (int, string) {
		resp, err := http.Get(p.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bad := startAmbassador(t, ambassadorEnv(srv, "jobs", "REDIS_PASSWORD=wrong")...)
	if code, body := get(bad, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "REDIS_PASSWORD") {
		t.Fatalf("readyz with a wrong password: %d %s", code, body)
	}
	good := startAmbassador(t, ambassadorEnv(srv, "jobs", "REDIS_PASSWORD=pw", "REDIS_JSON_FIELD=data")...)
	if code, body := get(good, "/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d %s", code, body)
	}
	resp, err := http.Post(good.URL()+"/v1/items", "application/json", strings.NewReader(`{"url":"file:///in/a.mp4"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var it itemapi.Item
	if err := json.NewDecoder(resp.Body).Decode(&it); err != nil || resp.StatusCode != http.StatusCreated || !strings.HasPrefix(it.Name, "jobs/") {
		t.Fatalf("POST /v1/items: %d %+v %v", resp.StatusCode, it, err)
	}
	got, err := srv.Client(t).XRange(context.Background(), "jobs", "-", "+").Result()
	if err != nil || len(got) != 1 || "jobs/"+got[0].ID != it.Name || got[0].Values["data"] != `{"url":"file:///in/a.mp4"}` {
		t.Fatalf("stream after POST: %v %v", got, err)
	}
}
