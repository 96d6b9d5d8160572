package redissource

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// shared starts the redis-server of a test that needs no special one
// (starting one takes milliseconds; each test uses its own keys anyway).
func shared(t *testing.T) *redisserver.Server {
	t.Helper()
	return redisserver.Start(t, redisserver.Options{})
}

func ackAll(t *testing.T, d *Driver, outcome itemapi.Outcome) int {
	t.Helper()
	n := 0
	for _, name := range listed(t, d) {
		if err := d.Ack(context.Background(), name, outcome); err != nil {
			t.Fatalf("Ack(%s): %v", name, err)
		}
		n++
	}
	return n
}

func TestStreamDataIsTheFields(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("fields")}
	d := open(t, cfg)
	ctx := context.Background()
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: cfg.Streams[0], Values: []string{"url", "s3://b/k.mp4", "n", "3"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	name := cfg.Streams[0] + "/" + id
	eventually(t, "listed", func() error {
		if !slices.Equal(listed(t, d), []string{name}) {
			return fmt.Errorf("listed %q", listed(t, d))
		}
		return nil
	})
	data, err := d.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := jsonEq(`{"url":"s3://b/k.mp4","n":"3"}`, data); err != nil {
		t.Fatal(err)
	}
	// Submitted without REDIS_JSON_FIELD: one field per member.
	sub, err := d.Submit(ctx, json.RawMessage(`{"url":"file:///x","frames":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "submitted listed", func() error { _, err := d.Get(ctx, sub); return err })
	data, _ = d.Get(ctx, sub)
	if err := jsonEq(`{"url":"file:///x","frames":"[1,2]"}`, data); err != nil {
		t.Fatal(err)
	}
}

func jsonEq(want string, got json.RawMessage) error {
	var a, b any
	_ = json.Unmarshal([]byte(want), &a)
	if err := json.Unmarshal(got, &b); err != nil {
		return err
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		return fmt.Errorf("data %s, want %s", got, want)
	}
	return nil
}

// Bad entries (too large, not decodable) are dead-lettered with the reason
// at once and never take a place in the window: with a window of 1, the
// good entry behind them is served.
func TestBadEntriesDeadLettered(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("bad")}
	cfg.JSONField = "data"
	cfg.MaxItemBytes = 100
	cfg.MaxPending = 1
	s := cfg.Streams[0]
	names := xadd(t, c, s, `not json`, `{"pad":"`+strings.Repeat("x", 200)+`"}`, `[1]`, `{"ok":true}`)
	d := open(t, cfg)
	eventually(t, "good entry listed", func() error {
		if got := listed(t, d); !slices.Equal(got, names[3:]) {
			return fmt.Errorf("listed %q, want %q", got, names[3:])
		}
		return nil
	})
	dead, err := c.XRange(context.Background(), s+":dead", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 {
		t.Fatalf("dead letters: %v", dead)
	}
	for i, m := range dead {
		if m.Values[FieldID] != strings.TrimPrefix(names[i], s+"/") || m.Values[FieldReason] == "" || m.Values["data"] == nil {
			t.Errorf("dead letter %d: %v", i, m.Values)
		}
	}
	if !strings.Contains(fmt.Sprint(dead[1].Values[FieldReason]), "REDIS_MAX_ITEM_BYTES") ||
		!strings.Contains(fmt.Sprint(dead[0].Values[FieldReason]), "not decodable") {
		t.Errorf("reasons: %v / %v", dead[0].Values[FieldReason], dead[1].Values[FieldReason])
	}
	pend, _ := c.XPending(context.Background(), s, "itemq").Result()
	if pend.Count != 1 {
		t.Errorf("pending %d, want 1 (the good one)", pend.Count)
	}
}

// The window is bounded: with REDIS_MAX_PENDING=5, 20 entries are served 5
// at a time, and each ack lets one more in.
func TestWindowBackpressure(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("win")}
	cfg.MaxPending = 5
	var datas []string
	for i := range 20 {
		datas = append(datas, fmt.Sprintf(`{"i":%d}`, i))
	}
	xadd(t, c, cfg.Streams[0], datas...)
	d := open(t, cfg)
	seen := 0
	for seen < 20 {
		eventually(t, "window filled", func() error {
			if n := len(listed(t, d)); n != min(5, 20-seen) {
				return fmt.Errorf("%d listed", n)
			}
			return nil
		})
		time.Sleep(50 * time.Millisecond)
		if n := len(listed(t, d)); n > 5 {
			t.Fatalf("window of 5 holds %d", n)
		}
		pend, _ := c.XPending(context.Background(), cfg.Streams[0], "itemq").Result()
		if pend.Count > 5 {
			t.Fatalf("%d entries read with a window of 5", pend.Count)
		}
		seen += ackAll(t, d, itemapi.Succeeded)
	}
}

// A restarted driver with the same consumer name serves its pending entries
// again at once (not after REDIS_CLAIM_IDLE); acknowledged ones never come
// back.
func TestRestartRereadsPending(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("restart")}
	names := xadd(t, c, cfg.Streams[0], `{"a":1}`, `{"b":2}`, `{"c":3}`)
	d := open(t, cfg)
	eventually(t, "listed", func() error {
		if len(listed(t, d)) != 3 {
			return fmt.Errorf("listed %q", listed(t, d))
		}
		return nil
	})
	if err := d.Ack(context.Background(), names[0], itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := open(t, cfg)
	eventually(t, "pending re-read", func() error {
		if got := listed(t, d2); !slices.Equal(got, names[1:]) {
			return fmt.Errorf("listed %q, want %q", got, names[1:])
		}
		return nil
	})
	// Another consumer sees none of them until they are idle past
	// REDIS_CLAIM_IDLE.
	cfg3 := cfg
	cfg3.Consumer = "other"
	d3 := open(t, cfg3)
	time.Sleep(300 * time.Millisecond)
	if got := listed(t, d3); len(got) != 0 {
		t.Fatalf("another consumer listed %q", got)
	}
}

// Entries held by a consumer that died are taken over after
// REDIS_CLAIM_IDLE by a live one; a live consumer's held entries are not
// (it refreshes them).
func TestClaimFromDeadConsumer(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("claim")}
	cfg.ClaimIdle = time.Second
	names := xadd(t, c, cfg.Streams[0], `{"a":1}`, `{"b":2}`)
	live := open(t, cfg)
	eventually(t, "live holds both", func() error {
		if len(listed(t, live)) != 2 {
			return fmt.Errorf("listed %q", listed(t, live))
		}
		return nil
	})
	cfgB := cfg
	cfgB.Consumer = "c2"
	other := open(t, cfgB)
	time.Sleep(3 * cfg.ClaimIdle)
	if got := listed(t, other); len(got) != 0 {
		t.Fatalf("a live consumer's entries were taken over: %q", got)
	}
	if got := listed(t, live); len(got) != 2 {
		t.Fatalf("live consumer lost its entries: %q", got)
	}
	live.Close() // dies: its entries stay pending in its name
	eventually(t, "taken over", func() error {
		if got := listed(t, other); !slices.Equal(got, names) {
			return fmt.Errorf("listed %q", got)
		}
		return nil
	})
}

// Two drivers in one group: every entry is served by exactly one.
func TestTwoConsumersShareAGroup(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("two")}
	cfg.MaxPending = 50
	cfgB := cfg
	cfgB.Consumer = "c2"
	a, b := open(t, cfg), open(t, cfgB)
	var datas []string
	for i := range 500 {
		datas = append(datas, fmt.Sprintf(`{"i":%d}`, i))
	}
	all := xadd(t, c, cfg.Streams[0], datas...)
	served := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, d := range []*Driver{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				done := len(served) == len(all)
				mu.Unlock()
				if done {
					return
				}
				for _, n := range listed(t, d) {
					if err := d.Ack(ctx, n, itemapi.Succeeded); err != nil {
						t.Errorf("Ack(%s): %v", n, err)
						return
					}
					mu.Lock()
					served[n]++
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for _, n := range all {
		if served[n] != 1 {
			t.Errorf("%s served %d times", n, served[n])
		}
	}
}

// A stream trimmed while entries are pending: entries held in the window
// are still served and acknowledged; entries trimmed before they were read
// back after a restart are dead-lettered with the reason (their fields are
// gone) instead of staying pending forever.
func TestTrimWhilePending(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	ctx := context.Background()
	cfg := testConfig(srv)
	cfg.Streams = []string{key("trim")}
	s := cfg.Streams[0]
	names := xadd(t, c, s, `{"a":1}`, `{"b":2}`, `{"c":3}`, `{"d":4}`)
	d := open(t, cfg)
	eventually(t, "listed", func() error {
		if len(listed(t, d)) != 4 {
			return fmt.Errorf("listed %q", listed(t, d))
		}
		return nil
	})
	if err := c.XTrimMaxLen(ctx, s, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Held entries: still served, acknowledged normally.
	if _, err := d.Get(ctx, names[0]); err != nil {
		t.Fatalf("Get of a held, trimmed entry: %v", err)
	}
	if err := d.Ack(ctx, names[0], itemapi.Succeeded); err != nil {
		t.Fatalf("Ack of a trimmed entry: %v", err)
	}
	if err := d.Ack(ctx, names[1], itemapi.Failed); err != nil {
		t.Fatalf("Ack(failed) of a trimmed entry: %v", err)
	}
	// A restart: the other two are pending but gone from the stream.
	d.Close()
	d2 := open(t, cfg)
	eventually(t, "nothing pending", func() error {
		pend, err := c.XPending(ctx, s, "itemq").Result()
		if err != nil {
			return err
		}
		if pend.Count != 0 || len(listed(t, d2)) != 0 {
			return fmt.Errorf("%d pending, listed %q", pend.Count, listed(t, d2))
		}
		return nil
	})
	dead, _ := c.XRange(ctx, s+":dead", "-", "+").Result()
	if len(dead) != 3 {
		t.Fatalf("dead letters %v, want the failed one and the two trimmed", dead)
	}
	if !strings.Contains(fmt.Sprint(dead[2].Values[FieldReason]), "trimmed") {
		t.Errorf("reason %v", dead[2].Values[FieldReason])
	}
}

// Lists: equal values are distinct items with distinct names; a restart
// recovers the processing list under the same names; failed moves the
// value to the dead-letter list.
func TestListDuplicatesAndRecovery(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	ctx := context.Background()
	cfg := testConfig(srv)
	cfg.Lists = []string{key("jobs")}
	l := cfg.Lists[0]
	if err := c.RPush(ctx, l, "same", "same", "same", `{"x":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	d := open(t, cfg)
	var names []string
	eventually(t, "listed", func() error {
		if names = listed(t, d); len(names) != 4 {
			return fmt.Errorf("listed %q", names)
		}
		return nil
	})
	data, _ := d.Get(ctx, names[0])
	if err := jsonEq(`{"value":"same"}`, data); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx, names[0], itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(ctx, names[1], itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := open(t, cfg)
	eventually(t, "recovered", func() error {
		if got := listed(t, d2); !slices.Equal(got, names[2:]) {
			return fmt.Errorf("listed %q, want %q", got, names[2:])
		}
		return nil
	})
	dead, _ := c.LRange(ctx, l+":dead", 0, -1).Result()
	if !slices.Equal(dead, []string{"same"}) {
		t.Fatalf("dead-letter list %q", dead)
	}
	if n, _ := c.LLen(ctx, l).Result(); n != 0 {
		t.Fatalf("source list still holds %d", n)
	}
}

func TestReadinessErrors(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{
		Username: "itemq", Password: "right",
		Config: []string{
			"user default off",
			"user itemq on >right ~* &* +@all",
			"user reader on >pw ~* &* +@all -xreadgroup -evalsha -eval",
		},
	})
	ctx := context.Background()
	ready := func(mod func(*Config)) error {
		cfg := testConfig(srv)
		cfg.Username, cfg.Password = "itemq", "right"
		cfg.Streams = []string{key("ready")}
		mod(&cfg)
		d := open(t, cfg)
		var err error
		// A reading loop's error shows within a second or two.
		for i := 0; i < 30; i++ {
			if err = d.Ready(ctx); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	if err := ready(func(*Config) {}); err != nil {
		t.Fatalf("ready with the right password: %v", err)
	}
	for what, c := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"wrong password": {func(c *Config) { c.Password = "wrong" }, "rejected the credentials"},
		"missing stream": {func(c *Config) { c.Create = false }, "does not exist"},
		"ACL forbids":    {func(c *Config) { c.Username, c.Password = "reader", "pw" }, "ACL"},
		"unreachable":    {func(c *Config) { c.Addrs = []string{"127.0.0.1:1"} }, "unreachable"},
	} {
		err := ready(c.mod)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Ready = %v, want an error with %q", what, err, c.want)
		}
	}
}

func TestTLSWithACLUser(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{
		TLS: true, Username: "itemq", Password: "s3cret",
		Config: []string{"user default off", "user itemq on >s3cret ~* &* +@all"},
	})
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Username, cfg.Password = "itemq", "s3cret"
	cfg.TLSCAFile = srv.CAFile
	cfg.Streams = []string{key("tls")}
	cfg.JSONField = "data"
	d := open(t, cfg)
	if err := d.Ready(context.Background()); err != nil {
		t.Fatalf("Ready over TLS: %v", err)
	}
	names := xadd(t, c, cfg.Streams[0], `{"a":1}`)
	eventually(t, "listed over TLS", func() error {
		if !slices.Equal(listed(t, d), names) {
			return fmt.Errorf("listed %q", listed(t, d))
		}
		return nil
	})
	// Without the CA the server's certificate is refused.
	cfg2 := cfg
	cfg2.TLSCAFile = ""
	cfg2.TLS = true
	if err := open(t, cfg2).Ready(context.Background()); err == nil {
		t.Fatal("Ready without the CA succeeded")
	}
}

// redis-server SIGKILLed and restarted with AOF (appendfsync always) while
// entries are pending and being acknowledged: every entry is served, none
// is lost, and none acknowledged before the crash comes back.
func TestServerKilledWithAOF(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{AOF: true})
	c := srv.Client(t)
	ctx := context.Background()
	cfg := testConfig(srv)
	cfg.Streams = []string{key("aof")}
	cfg.MaxPending = 20
	var datas []string
	for i := range 200 {
		datas = append(datas, fmt.Sprintf(`{"i":%d}`, i))
	}
	all := xadd(t, c, cfg.Streams[0], datas...)
	d := open(t, cfg)
	acked := map[string]bool{}
	killed := false
	deadline := time.Now().Add(90 * time.Second)
	for len(acked) < len(all) && time.Now().Before(deadline) {
		for _, n := range listed(t, d) {
			if acked[n] {
				t.Fatalf("%s served again after its acknowledgement", n)
			}
			// NotFound: the XACK reached the server, its answer did not.
			if err := d.Ack(ctx, n, itemapi.Succeeded); err == nil || itemapi.IsNotFound(err) {
				acked[n] = true
			}
		}
		if !killed && len(acked) >= 60 {
			srv.Kill()
			killed = true
			time.Sleep(300 * time.Millisecond)
			srv.Restart(t)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(acked) != len(all) {
		t.Fatalf("%d of %d entries acknowledged", len(acked), len(all))
	}
	pend, err := c.XPending(ctx, cfg.Streams[0], "itemq").Result()
	if err != nil || pend.Count != 0 {
		t.Fatalf("pending after all acks: %+v %v", pend, err)
	}
}

// A read of this consumer's pending entries (or an XAUTOCLAIM) answered
// with an entry that is acknowledged before the answer is admitted must
// not bring it back: it would be served again after its acknowledgement
// (seen under load after a restart, when the history read and the acks of
// the manager's retried requests overlap).
func TestStaleReadDoesNotBringBackAnAckedEntry(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("stale")}
	names := xadd(t, c, cfg.Streams[0], `{"a":1}`, `{"b":2}`)
	d := open(t, cfg)
	eventually(t, "listed", func() error {
		if len(listed(t, d)) != 2 {
			return fmt.Errorf("listed %q", listed(t, d))
		}
		return nil
	})
	ctx := context.Background()
	// The read is sent while both entries are pending...
	start := d.acks.begin()
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: cfg.Group, Consumer: cfg.Consumer,
		Streams: []string{cfg.Streams[0], "0"}}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 2 {
		t.Fatalf("XREADGROUP: %v %+v", err, res)
	}
	// ...the first is acknowledged before its answer is admitted.
	if err := d.Ack(ctx, names[0], itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	for _, m := range res[0].Messages {
		d.admitEntry(ctx, cfg.Streams[0], m, start)
	}
	d.acks.end(start)
	if got := listed(t, d); !slices.Equal(got, names[1:]) {
		t.Fatalf("listed %q after the stale answer, want %q", got, names[1:])
	}
	// The log is pruned once no read that began before the acknowledgement
	// is in flight (the driver's own blocking read ends within Block).
	eventually(t, "the acknowledgement forgotten", func() error {
		if n := d.acks.size(); n != 0 {
			return fmt.Errorf("%d acknowledgements kept", n)
		}
		return nil
	})
}

func TestAckLogBounded(t *testing.T) {
	l := newAckLog()
	l.record("before") // no read in flight: nothing to keep
	if l.size() != 0 {
		t.Fatalf("kept %d", l.size())
	}
	a := l.begin()
	l.record("x")
	b := l.begin()
	l.record("y")
	if !l.stale("x", a) || !l.stale("y", a) || l.stale("x", b) || !l.stale("y", b) {
		t.Fatalf("stale: x/a %v y/a %v x/b %v y/b %v", l.stale("x", a), l.stale("y", a), l.stale("x", b), l.stale("y", b))
	}
	l.end(a) // b still needs y, not x
	if l.stale("x", a) || !l.stale("y", b) || l.size() != 1 {
		t.Fatalf("after the first read ended: size %d", l.size())
	}
	l.end(b)
	if l.size() != 0 {
		t.Fatalf("after every read ended: size %d", l.size())
	}
}

// A driver that has not yet read back the pending items of its earlier run
// (here: Redis is down when it starts) answers Unavailable, not NotFound,
// for a name it does not know: the name may be one of them, and a manager
// takes NotFound on an acknowledgement as "already acknowledged" (seen in
// TestKillAmbassadorMidRunLists: an item acknowledged that way was listed
// again once the processing list was read back, and ran twice). Once they
// are read back, the item is there, and an unknown name is NotFound.
func TestUnknownNamesWhileRecovering(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{AOF: true})
	c := srv.Client(t)
	cfg := testConfig(srv)
	l := key("recover")
	cfg.Lists = []string{l}
	// The earlier run's processing list holds item number 5.
	if err := c.RPush(context.Background(), l+":processing:c1", `itemq1:5:{"id":"m5"}`).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	d := open(t, cfg)
	name := listName(l, 5)
	if _, err := d.Get(context.Background(), name); itemapi.ReasonOf(err) != itemapi.ReasonUnavailable {
		t.Errorf("Get %s before the processing list is read back: %v, want Unavailable", name, err)
	}
	if err := d.Ack(context.Background(), name, itemapi.Succeeded); itemapi.ReasonOf(err) != itemapi.ReasonUnavailable {
		t.Errorf("Ack %s before the processing list is read back: %v, want Unavailable", name, err)
	}
	srv.Restart(t)
	eventually(t, "the processing list read back", func() error {
		if _, err := d.Get(context.Background(), name); err != nil {
			return err
		}
		return nil
	})
	if _, err := d.Get(context.Background(), listName(l, 6)); !itemapi.IsNotFound(err) {
		t.Errorf("Get of an unknown name once recovered: %v, want NotFound", err)
	}
}

// An entry the group has not read yet (behind a full window here; a
// redriven entry, whose new name the redrive answers at once) is not
// "gone": its acknowledgement answers Unavailable, to be tried again, and
// succeeds once the entry is read. The manager took the old NotFound for an
// item already archived: a job cancelled just after its retry stayed
// pending in the group forever (found by TestLifecycleChaosRedisStream).
func TestAckOfAnEntryNotReadYet(t *testing.T) {
	srv := shared(t)
	c := srv.Client(t)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("unread")}
	cfg.MaxPending = 1
	names := xadd(t, c, cfg.Streams[0], `{"i":0}`, `{"i":1}`)
	d := open(t, cfg)
	eventually(t, "the first read", func() error {
		if l := listed(t, d); len(l) != 1 || l[0] != names[0] {
			return fmt.Errorf("listed %v", l)
		}
		return nil
	})
	ctx := context.Background()
	if err := d.Ack(ctx, names[1], itemapi.Failed); itemapi.ReasonOf(err) != itemapi.ReasonUnavailable {
		t.Fatalf("ack of the unread entry: %v (reason %q), want Unavailable", err, itemapi.ReasonOf(err))
	}
	if err := d.Ack(ctx, cfg.Streams[0]+"/9999999999999-0", itemapi.Failed); itemapi.ReasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("ack of an entry that does not exist: %v, want NotFound", err)
	}
	if err := d.Ack(ctx, names[0], itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second read", func() error {
		if err := d.Ack(ctx, names[1], itemapi.Failed); err != nil {
			return err
		}
		return nil
	})
	if n, _ := c.XLen(ctx, d.DeadLetterKey(cfg.Streams[0])).Result(); n != 1 {
		t.Fatalf("dead letter holds %d entries, want 1", n)
	}
}
