package kafkasource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/sourcetest"
	"github.com/itemq/itemq/itemapi"
)

var sourceListAll = source.ListOptions{}

// backend produces the suite's items as messages, spread over the topic's
// partitions, and removes them by acknowledging.
type backend struct {
	c          *cluster
	d          *Driver
	topic      string
	partitions int32
	n          atomic.Int32
}

func (b *backend) Put(_ context.Context, t *testing.T, _ string, data []byte) (string, error) {
	p := b.n.Add(1) % b.partitions
	return b.c.produce(t, &kgo.Record{Topic: b.topic, Partition: p, Value: data})[0], nil
}

func (b *backend) Remove(ctx context.Context, _ *testing.T, name string) error {
	return b.d.Ack(ctx, name, itemapi.Succeeded)
}

// withoutMeta checks the data is the put data plus a _kafka object that
// names the message.
func withoutMeta(put []byte, got json.RawMessage) error {
	var g, p map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("got %s: %w", got, err)
	}
	if err := json.Unmarshal(put, &p); err != nil {
		return fmt.Errorf("put %s: %w", put, err)
	}
	meta, ok := g[MetaKey].(map[string]any)
	if !ok || meta["topic"] == nil || meta["partition"] == nil || meta["offset"] == nil || meta["timestamp"] == nil {
		return fmt.Errorf("got %s: no _kafka metadata", got)
	}
	delete(g, MetaKey)
	if !reflect.DeepEqual(g, p) {
		return fmt.Errorf("got %s, want %s plus _kafka", got, put)
	}
	return nil
}

func TestConformance(t *testing.T) {
	c := newCluster(t).clients(t)
	var mu sync.Mutex
	byTest := map[*testing.T]*backend{}
	dlqOf := map[*testing.T]string{}
	groupOf := map[*testing.T]string{}
	mk := func(ctx context.Context, t *testing.T) (source.Driver, sourcetest.Backend, error) {
		topic := c.topic(t, "conf", 3)
		cfg := c.config(topic)
		cfg.DeadLetterTopic = c.topic(t, "conf-dlq", 1)
		cfg.SubmitTopic = topic
		d, err := New(ctx, cfg, testLogger(t))
		if err != nil {
			return nil, nil, err
		}
		b := &backend{c: c, d: d, topic: topic, partitions: 3}
		mu.Lock()
		byTest[t], dlqOf[t], groupOf[t] = b, cfg.DeadLetterTopic, cfg.Group
		mu.Unlock()
		return d, b, nil
	}
	archived := func(ctx context.Context, t *testing.T, name string, outcome itemapi.Outcome) error {
		mu.Lock()
		dlq, group := dlqOf[t], groupOf[t]
		mu.Unlock()
		k, off, _ := parseName(name)
		// Acknowledged either way: the group's offset moves past it.
		eventually(t, "committed past "+name, func() error {
			if got := c.committed(t, group, k.topic, k.partition); got <= off {
				return fmt.Errorf("committed %d, want more than %d", got, off)
			}
			return nil
		})
		dead := consumeAll(t, c, dlq)
		var found bool
		for _, r := range dead {
			if header(r, HeaderItem) == name {
				found = true
			}
		}
		if found != (outcome == itemapi.Failed) {
			return fmt.Errorf("%s (%s): in the dead-letter topic = %v", name, outcome, found)
		}
		return nil
	}
	sourcetest.RunConformanceTests(t, mk, sourcetest.Options{
		Watch: true, Submit: true, Ack: true, AckRemoves: true, Redrive: true, RedriveRenames: true,
		DataMatches: withoutMeta,
		Archived:    archived,
	})
}

// consumeAll reads a topic from its start to its current end.
func consumeAll(t testing.TB, c *cluster, topic string) []*kgo.Record {
	t.Helper()
	ends := c.endOffsets(t, topic)
	var want int64
	for _, e := range ends {
		want += e
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consume %s: got %d of %d records: %v", topic, len(out), want, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("consume %s: %v", topic, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// tenListed produces ten messages to a new one-partition topic and opens
// a driver that lists them.
func tenListed(t *testing.T, prefix string) (*cluster, string, Config, []string, *Driver) {
	t.Helper()
	c := newCluster(t).clients(t)
	topic := c.topic(t, prefix, 1)
	cfg := c.config(topic)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"i":%d}`, i)})
	}
	names := c.produce(t, recs...)
	d := open(t, cfg)
	eventually(t, "10 items listed", func() error {
		if got := listed(t, d); len(got) != 10 {
			return fmt.Errorf("listed %d", len(got))
		}
		return nil
	})
	return c, topic, cfg, names, d
}

func TestOutOfOrderAcksCommitTheDonePrefix(t *testing.T) {
	c, topic, cfg, names, d := tenListed(t, "ooo")
	ctx := context.Background()
	ack := func(i int) {
		t.Helper()
		if err := d.Ack(ctx, names[i], itemapi.Succeeded); err != nil {
			t.Fatalf("ack %s: %v", names[i], err)
		}
	}
	commits := func(want int64) {
		t.Helper()
		if err := d.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got := c.committed(t, cfg.Group, topic, 0); got != want {
			t.Fatalf("committed %d, want %d", got, want)
		}
	}
	for _, i := range []int{5, 3, 7} {
		ack(i)
	}
	commits(-1) // offset 0 is not done: nothing may be committed
	ack(0)
	commits(1)
	ack(2)
	commits(1) // 1 is open
	ack(1)
	commits(4) // 0..3 done, 4 open
	ack(4)
	commits(6) // 5 was done already; 6 open

	// A restart (another member of the group, after this one is gone)
	// starts at the commit point: 6..9 are delivered again, 7 included
	// although it was acknowledged (at-least-once), and nothing before 6.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.committed(t, cfg.Group, topic, 0); got != 6 {
		t.Fatalf("committed after close %d, want 6", got)
	}
	d2 := open(t, cfg)
	eventually(t, "redelivery from the commit point", func() error {
		if got, want := listed(t, d2), sortedCopy(names[6:]); !slices.Equal(got, want) {
			return fmt.Errorf("listed %v, want %v", got, want)
		}
		return nil
	})
}

func TestDeadLetter(t *testing.T) {
	c := newCluster(t).clients(t)
	topic := c.topic(t, "dl", 2)
	cfg := c.config(topic)
	cfg.DeadLetterTopic = "dl-dead" // created below, after a first failing try
	hs := []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-1")}, {Key: "bin", Value: []byte{0, 1, 2}}, {Key: "trace-id", Value: []byte("t-2")}}
	names := c.produce(t,
		&kgo.Record{Topic: topic, Partition: 1, Key: []byte("k1"), Value: []byte(`{"job":1}`), Headers: hs},
		&kgo.Record{Topic: topic, Partition: 1, Key: nil, Value: []byte("not json")},
	)
	d := open(t, cfg, kgo.UnknownTopicRetries(1))
	eventually(t, "2 items listed", func() error {
		if got := listed(t, d); len(got) != 2 {
			return fmt.Errorf("listed %v", got)
		}
		return nil
	})
	ctx := context.Background()

	// The dead-letter topic does not exist yet: the ack fails and the
	// message stays pending (it is not lost).
	err := d.Ack(ctx, names[0], itemapi.Failed)
	if err == nil {
		t.Fatal("ack failed with a missing dead-letter topic succeeded")
	}
	if r := reasonOf(err); r != itemapi.ReasonUnavailable {
		t.Fatalf("dead-letter failure: reason %q (%v), want Unavailable", r, err)
	}
	if _, err := d.Get(ctx, names[0]); err != nil {
		t.Fatalf("after a failed dead-letter the item must still be there: %v", err)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.committed(t, cfg.Group, topic, 1); got != -1 {
		t.Fatalf("committed %d after a failed dead-letter", got)
	}

	c.createTopic(t, cfg.DeadLetterTopic, 1)
	for _, n := range names {
		if err := d.Ack(ctx, n, itemapi.Failed); err != nil {
			t.Fatalf("ack %s failed: %v", n, err)
		}
	}
	if err := d.Ack(ctx, names[0], itemapi.Failed); !itemapi.IsNotFound(err) {
		t.Fatalf("second ack: %v, want NotFound", err)
	}
	dead := consumeAll(t, c, cfg.DeadLetterTopic)
	if len(dead) != 2 {
		t.Fatalf("dead-letter topic has %d messages, want 2", len(dead))
	}
	r := dead[0]
	if string(r.Key) != "k1" || string(r.Value) != `{"job":1}` {
		t.Fatalf("dead letter key %q value %q", r.Key, r.Value)
	}
	if !slices.EqualFunc(r.Headers[:3], hs, func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
		t.Fatalf("dead letter lost the message's headers: %v", r.Headers)
	}
	want := map[string]string{
		HeaderSourceTopic: topic, HeaderSourcePartition: "1", HeaderSourceOffset: "0",
		HeaderItem: names[0], HeaderOutcome: "failed", HeaderGroup: cfg.Group,
	}
	for k, v := range want {
		if got := header(r, k); got != v {
			t.Fatalf("dead letter header %s = %q, want %q (headers %v)", k, got, v, r.Headers)
		}
	}
	if header(r, HeaderReason) == "" || header(r, HeaderSourceTimestamp) == "" {
		t.Fatalf("dead letter without reason or timestamp: %v", r.Headers)
	}
	if dead[1].Key != nil || string(dead[1].Value) != "not json" || header(dead[1], HeaderItem) != names[1] {
		t.Fatalf("second dead letter: key %q value %q headers %v", dead[1].Key, dead[1].Value, dead[1].Headers)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.committed(t, cfg.Group, topic, 1); got != 2 {
		t.Fatalf("committed %d, want 2", got)
	}
}

func TestFailedWithoutDeadLetterTopicIsJustDone(t *testing.T) {
	c := newCluster(t).clients(t)
	topic := c.topic(t, "nodl", 1)
	cfg := c.config(topic)
	names := c.produce(t, &kgo.Record{Topic: topic, Value: []byte(`{}`)})
	d := open(t, cfg)
	eventually(t, "listed", func() error {
		if len(listed(t, d)) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	if err := d.Ack(context.Background(), names[0], itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.committed(t, cfg.Group, topic, 0); got != 1 {
		t.Fatalf("committed %d, want 1", got)
	}
}

func TestWindowFullPausesAndResumes(t *testing.T) {
	c := newCluster(t).clients(t)
	topic := c.topic(t, "bp", 2)
	cfg := c.config(topic)
	cfg.MaxPending = 5
	const perPart = 40
	var recs []*kgo.Record
	for p := int32(0); p < 2; p++ {
		for i := range perPart {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, `{"p":%d,"i":%d}`, p, i)})
		}
	}
	c.produce(t, recs...)
	d := open(t, cfg)
	p0, p1 := topic+"/0", topic+"/1"

	paused := func() error {
		got := d.cl.PauseFetchPartitions(nil)[topic]
		slices.Sort(got)
		if !slices.Equal(got, []int32{0, 1}) {
			return fmt.Errorf("paused partitions %v, want [0 1]", got)
		}
		return nil
	}
	eventually(t, "both partitions paused with full windows", func() error {
		if err := paused(); err != nil {
			return err
		}
		if got := perPartitionOf(t, d); got[p0] != 5 || got[p1] != 5 {
			return fmt.Errorf("listed per partition %v, want 5 each", got)
		}
		return nil
	})
	d.mu.Lock()
	for k, w := range d.parts {
		if len(w.msgs) != 5 || len(w.overflow) > perPart-5 {
			t.Errorf("%v: window %d overflow %d", k, len(w.msgs), len(w.overflow))
		}
	}
	d.mu.Unlock()

	// Out-of-order acks do not make room (the window spans from the
	// lowest open message); acking the head does.
	ctx := context.Background()
	head := func(part string) []string {
		var out []string
		for _, n := range listed(t, d) {
			if n[:len(part)+1] == part+"/" {
				out = append(out, n)
			}
		}
		slices.SortFunc(out, func(a, b string) int { return int(offsetOf(a) - offsetOf(b)) })
		return out
	}
	h := head(p0)
	if err := d.Ack(ctx, h[4], itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	if got := perPartitionOf(t, d); got[p0] != 4 || got[p1] != 5 {
		t.Fatalf("after acking the last of p0: %v", got)
	}
	if err := paused(); err != nil {
		t.Fatalf("out-of-order ack must not resume: %v", err)
	}
	for _, n := range h[:2] {
		if err := d.Ack(ctx, n, itemapi.Succeeded); err != nil {
			t.Fatal(err)
		}
	}
	// Offsets 0, 1 and 4 done: the window is 2..6, with 2, 3, 5, 6 open.
	if got, want := head(p0), []string{p0 + "/2", p0 + "/3", p0 + "/5", p0 + "/6"}; !slices.Equal(got, want) {
		t.Fatalf("p0 after acks: %v, want %v", got, want)
	}

	// A fake manager acks everything; the listing never exceeds the bound
	// and every message comes through, each once, in order per partition.
	seen := map[string]bool{}
	for _, n := range []string{p0 + "/0", p0 + "/1", p0 + "/4"} {
		seen[n] = true
	}
	eventually(t, "all messages through the bounded window", func() error {
		names := listed(t, d)
		for part, n := range perPartition(names) {
			if n > 5 {
				t.Fatalf("%s: %d listed, more than KAFKA_MAX_PENDING=5", part, n)
			}
		}
		for _, n := range names {
			if seen[n] {
				t.Fatalf("%s listed twice", n)
			}
			seen[n] = true
			if err := d.Ack(ctx, n, itemapi.Succeeded); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) != 2*perPart {
			return fmt.Errorf("%d of %d messages seen", len(seen), 2*perPart)
		}
		return nil
	})
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if got := c.committed(t, cfg.Group, topic, p); got != perPart {
			t.Fatalf("partition %d committed %d, want %d", p, got, perPart)
		}
	}
	if got := d.cl.PauseFetchPartitions(nil); len(got) != 0 {
		t.Fatalf("still paused after everything was acknowledged: %v", got)
	}
}

func perPartitionOf(t testing.TB, d *Driver) map[string]int { return perPartition(listed(t, d)) }

func offsetOf(name string) int64 {
	_, o, _ := parseName(name)
	return o
}

// runFakeManager lists a driver's items, reads each and acknowledges it
// with a few workers, in random order, until ctx ends; processed counts the
// successful acks by the message's "id".
func runFakeManager(ctx context.Context, d *Driver, workers int, mu *sync.Mutex, processed map[string]int) *sync.WaitGroup {
	var wg sync.WaitGroup
	work := make(chan string)
	inflight := map[string]bool{}
	var imu sync.Mutex
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				data, err := d.Get(ctx, name)
				if err == nil {
					var v struct {
						ID string `json:"id"`
					}
					_ = json.Unmarshal(data, &v)
					if err = d.Ack(ctx, name, itemapi.Succeeded); err == nil {
						mu.Lock()
						processed[v.ID]++
						mu.Unlock()
					}
				}
				imu.Lock()
				delete(inflight, name)
				imu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		for ctx.Err() == nil {
			names, _, err := d.List(ctx, sourceListAll)
			if err != nil {
				return
			}
			rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			for _, n := range names {
				imu.Lock()
				busy := inflight[n]
				inflight[n] = true
				imu.Unlock()
				if busy {
					continue
				}
				select {
				case work <- n:
				case <-ctx.Done():
					return
				}
			}
			if len(names) == 0 {
				select {
				case <-time.After(5 * time.Millisecond):
				case <-ctx.Done():
				}
			}
		}
	}()
	return &wg
}

func TestManyPartitionsWithAConcurrentManager(t *testing.T) {
	n := 6 * 2000
	if testing.Short() {
		n = 6 * 200
	}
	c := newCluster(t).clients(t)
	topic := c.topic(t, "many", 6)
	cfg := c.config(topic)
	cfg.MaxPending = 100
	d := open(t, cfg)

	var mu sync.Mutex
	processed := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	wg := runFakeManager(ctx, d, 8, &mu, processed)
	defer func() { cancel(); wg.Wait() }()

	// Produce while the manager runs.
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 6), Value: fmt.Appendf(nil, `{"id":"m%d"}`, i)})
		if len(recs) == 500 {
			c.produce(t, recs...)
			recs = nil
		}
	}
	c.produce(t, recs...)

	eventually(t, "every message processed", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(processed) != n {
			return fmt.Errorf("%d of %d processed", len(processed), n)
		}
		return nil
	})
	mu.Lock()
	for id, k := range processed {
		if k != 1 {
			t.Errorf("%s processed %d times by one ambassador without crashes", id, k)
		}
	}
	mu.Unlock()
	eventually(t, "committed to the end", func() error {
		for p, end := range c.endOffsets(t, topic) {
			if got := c.committed(t, cfg.Group, topic, p); got != end {
				return fmt.Errorf("partition %d committed %d, end %d", p, got, end)
			}
		}
		return nil
	})
}

// partitionsOf returns the partitions a driver currently holds.
func partitionsOf(d *Driver) []int32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int32
	for k := range d.parts {
		out = append(out, k.partition)
	}
	slices.Sort(out)
	return out
}

func TestRebalanceSplitsAndHandsOver(t *testing.T) {
	c := newCluster(t).clients(t)
	topic := c.topic(t, "rb", 6)
	cfg := c.config(topic)
	cfg.MaxPending = 10
	const perPartition = 50
	var recs []*kgo.Record
	for p := range int32(6) {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, `{"id":"p%d-%d"}`, p, i)})
		}
	}
	c.produce(t, recs...)

	// A alone holds all six partitions: 10 items each, nothing acked.
	a := open(t, cfg)
	eventually(t, "A holds 6 full windows", func() error {
		if got := perPartitionOf(t, a); len(got) != 6 || slices.Min(slices.Collect(maps.Values(got))) != 10 {
			return fmt.Errorf("A lists %v", got)
		}
		return nil
	})
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	events, err := a.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	var evmu sync.Mutex
	var evs []itemapi.WatchEvent
	go func() {
		for ev := range events {
			evmu.Lock()
			evs = append(evs, ev)
			evmu.Unlock()
		}
	}()
	// A acknowledges the first 3 of each partition before B comes.
	ctx := context.Background()
	for p := range 6 {
		for o := range 3 {
			if err := a.Ack(ctx, itemName(topic, int32(p), int64(o)), itemapi.Succeeded); err != nil {
				t.Fatal(err)
			}
		}
	}

	// B joins: the partitions split, disjointly, and what A gave up went to
	// B from the offsets A committed when it was revoked.
	b := open(t, cfg)
	eventually(t, "partitions split between A and B", func() error {
		pa, pb := partitionsOf(a), partitionsOf(b)
		if len(pa) == 0 || len(pb) == 0 || len(pa)+len(pb) != 6 {
			return fmt.Errorf("A holds %v, B holds %v", pa, pb)
		}
		for _, p := range pa {
			if slices.Contains(pb, p) {
				return fmt.Errorf("partition %d held by both", p)
			}
		}
		if got := perPartitionOf(t, b); len(got) != len(pb) {
			return fmt.Errorf("B lists %v", got)
		}
		return nil
	})
	pa, pb := partitionsOf(a), partitionsOf(b)
	for _, p := range pb {
		if got := c.committed(t, cfg.Group, topic, p); got != 3 {
			t.Fatalf("partition %d moved to B with committed %d, want 3", p, got)
		}
		var want []string
		for o := 3; o < 13; o++ {
			want = append(want, itemName(topic, p, int64(o)))
		}
		eventually(t, "B lists the moved partition from the committed offset", func() error {
			var got []string
			for _, n := range listed(t, b) {
				if k, _, _ := parseName(n); k.partition == p {
					got = append(got, n)
				}
			}
			if !slices.Equal(got, sortedCopy(want)) {
				return fmt.Errorf("B lists %v for partition %d, want %v", got, p, sortedCopy(want))
			}
			return nil
		})
		// A no longer has them: not listed, and an ack is NotFound.
		for _, n := range listed(t, a) {
			if k, _, _ := parseName(n); k.partition == p {
				t.Fatalf("A still lists %s of revoked partition %d", n, p)
			}
		}
		if err := a.Ack(ctx, itemName(topic, p, 3), itemapi.Succeeded); !itemapi.IsNotFound(err) {
			t.Fatalf("ack on A of a revoked partition: %v, want NotFound", err)
		}
	}
	// A's watchers saw DELETED for each item of the revoked partitions.
	evmu.Lock()
	deleted := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == itemapi.Deleted {
			deleted[ev.Name] = true
		}
	}
	evmu.Unlock()
	for _, p := range pb {
		for o := 3; o < 13; o++ {
			if n := itemName(topic, p, int64(o)); !deleted[n] {
				t.Fatalf("A's watch has no DELETED %s", n)
			}
		}
	}
	t.Logf("A holds %v, B holds %v", pa, pb)

	// Both process everything; then A leaves and B finishes A's partitions.
	var mu sync.Mutex
	processed := map[string]int{}
	mctx, mcancel := context.WithCancel(context.Background())
	wgA := runFakeManager(mctx, a, 4, &mu, processed)
	wgB := runFakeManager(mctx, b, 4, &mu, processed)
	defer func() { mcancel(); wgA.Wait(); wgB.Wait() }()
	eventually(t, "some of A's work done", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(processed) < 60 {
			return fmt.Errorf("%d processed", len(processed))
		}
		return nil
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B holds every partition", func() error {
		if got := partitionsOf(b); len(got) != 6 {
			return fmt.Errorf("B holds %v", got)
		}
		return nil
	})
	eventually(t, "every message processed", func() error {
		mu.Lock()
		defer mu.Unlock()
		// The 18 acked by A before B came are not in processed.
		if len(processed)+18 < 6*perPartition {
			return fmt.Errorf("%d of %d processed", len(processed)+18, 6*perPartition)
		}
		return nil
	})
	for p := range int32(6) {
		for i := 3; i < perPartition; i++ {
			id := "p" + strconv.Itoa(int(p)) + "-" + strconv.Itoa(i)
			mu.Lock()
			k := processed[id]
			mu.Unlock()
			if k == 0 {
				t.Fatalf("%s never processed", id)
			}
		}
	}
}

// After a restart, a message the ambassador will deliver again but has
// not admitted yet is Unavailable (the manager retries its ack), not
// NotFound (the manager took the item for gone and ran it again when it
// was listed: seen in the Kafka chaos run). A message before the commit
// point, or beyond the partition's end, is NotFound.
func TestAckOfAMessageNotReadAgainYet(t *testing.T) {
	_, topic, cfg, names, d := tenListed(t, "again")
	ctx := context.Background()
	for i := range 5 {
		if err := d.Ack(ctx, names[i], itemapi.Succeeded); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.MaxPending = 2 // the restarted one admits 5 and 6; 7.. wait in the overflow
	d2 := open(t, cfg)
	eventually(t, "5 and 6 listed again", func() error {
		if got, want := listed(t, d2), sortedCopy(names[5:7]); !slices.Equal(got, want) {
			return fmt.Errorf("listed %v, want %v", got, want)
		}
		return nil
	})
	err := d2.Ack(ctx, names[7], itemapi.Succeeded)
	if itemapi.ReasonOf(err) != itemapi.ReasonUnavailable {
		t.Fatalf("ack of %s, not admitted yet: %v, want Unavailable", names[7], err)
	}
	if _, err := d2.Get(ctx, names[8]); itemapi.ReasonOf(err) != itemapi.ReasonUnavailable {
		t.Errorf("get of %s, not admitted yet: %v, want Unavailable", names[8], err)
	}
	for _, gone := range []string{names[2], fmt.Sprintf("%s/0/999", topic), "other-topic/0/1"} {
		if err := d2.Ack(ctx, gone, itemapi.Succeeded); !itemapi.IsNotFound(err) {
			t.Errorf("ack of %s: %v, want NotFound", gone, err)
		}
	}
	for _, i := range []int{5, 6} {
		if err := d2.Ack(ctx, names[i], itemapi.Succeeded); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the retried ack of 7 taken", func() error {
		return d2.Ack(ctx, names[7], itemapi.Succeeded)
	})
}
