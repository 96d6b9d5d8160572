package kafkasource

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Benchmarks of the driver on kfake (in-process, one broker, 6 partitions).
// Figures and commands are in docs/benchmarks/kafka.md. Each reports its
// rate as a custom metric; ns/op is per message.

const benchPartitions = 6

func benchSetup(b *testing.B, n int) (*cluster, string, Config) {
	b.Helper()
	c := newCluster(b).clients(b)
	topic := c.topic(b, "bench", benchPartitions)
	cfg := c.config(topic)
	cfg.CommitInterval = time.Second
	cfg.MaxPending = n/benchPartitions + 1 // the whole run fits in the windows: no back-pressure
	return c, topic, cfg
}

func benchRecords(topic string, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % benchPartitions), Value: fmt.Appendf(nil, `{"id":"m%d","url":"s3://in/clips/%d.mp4"}`, i, i)}
	}
	return recs
}

// BenchmarkProduceToWatch: messages/s from the producer's send to the ADDED
// event on a watch stream, and the latency of each (from the record's
// producer timestamp, millisecond precision).
func BenchmarkProduceToWatch(b *testing.B) {
	n := b.N
	c, topic, cfg := benchSetup(b, n)
	d := open(b, cfg)
	// The whole burst may queue for this one watcher (by default a watcher
	// more than 65,536 events behind is cut off and resyncs).
	d.idx.SetMaxQueue(n + 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := d.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for ev := range events { // the empty snapshot
		if ev.Type == itemapi.Synced {
			break
		}
	}
	recs := benchRecords(topic, n)
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, r := range recs {
			c.prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
	}()
	for seen := 0; seen < n; {
		ev, ok := <-events
		if !ok {
			b.Fatal("watch closed")
		}
		if ev.Type != itemapi.Added {
			continue
		}
		now := time.Now()
		seen++
		if m, ok := d.idx.Get(ev.Name); ok {
			d.mu.Lock()
			if m.rec != nil {
				lat = append(lat, now.Sub(m.rec.Timestamp))
			}
			d.mu.Unlock()
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkProduceToWatchOneByOne: the latency of one message on an idle
// queue: produce (acks=all), then wait for its ADDED event; ns/op is the
// round trip.
func BenchmarkProduceToWatchOneByOne(b *testing.B) {
	c, topic, cfg := benchSetup(b, b.N)
	d := open(b, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := d.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for ev := range events {
		if ev.Type == itemapi.Synced {
			break
		}
	}
	recs := benchRecords(topic, b.N)
	b.ResetTimer()
	for _, r := range recs {
		if err := c.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			b.Fatal(err)
		}
		want := itemName(r.Topic, r.Partition, r.Offset)
		for ev := range events {
			if ev.Type == itemapi.Added && ev.Name == want {
				break
			}
		}
	}
}

// BenchmarkAck: acknowledgements/s by 8 concurrent callers in random order
// while the periodic committer runs, and the commit lag: the timer stops
// when the group's committed offsets reach the end of every partition.
func BenchmarkAck(b *testing.B) {
	benchAck(b, func(d *Driver) func(ctx context.Context, name string) error {
		return func(ctx context.Context, name string) error { return d.Ack(ctx, name, itemapi.Succeeded) }
	})
}

// BenchmarkAckHTTP: the same through the ambassador's HTTP API
// (DELETE /v1/items/{name}?outcome=succeeded, itemapi.Client), as the
// manager acknowledges.
func BenchmarkAckHTTP(b *testing.B) {
	benchAck(b, func(d *Driver) func(ctx context.Context, name string) error {
		h, stop := ambassador.NewHandler(source.New(d), testLogger(b), "itemq-kafka", time.Minute)
		srv := httptest.NewServer(h)
		b.Cleanup(func() { stop(); srv.Close() })
		cl, err := itemapi.NewClient(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, name string) error { return cl.Ack(ctx, name, itemapi.Succeeded) }
	})
}

func benchAck(b *testing.B, acker func(*Driver) func(context.Context, string) error) {
	n := b.N
	c, topic, cfg := benchSetup(b, n)
	recs := benchRecords(topic, n)
	for i := 0; i < n; i += 5000 {
		c.produce(b, recs[i:min(i+5000, n)]...)
	}
	d := open(b, cfg)
	ack := acker(d)
	ctx := context.Background()
	var names []string
	testEventually(b, func() error {
		names = listed(b, d)
		if len(names) != n {
			return fmt.Errorf("%d of %d listed", len(names), n)
		}
		return nil
	})
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	work := make(chan string, 1024)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := ack(ctx, name); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	acked := time.Since(start)
	// The periodic committer commits within cfg.CommitInterval; wait for it.
	ends := c.endOffsets(b, topic)
	testEventually(b, func() error {
		for p, end := range ends {
			if end == 0 {
				continue // nothing was produced there: nothing to commit
			}
			if got := c.committed(b, cfg.Group, topic, p); got != end {
				return fmt.Errorf("partition %d committed %d of %d", p, got, end)
			}
		}
		return nil
	})
	committed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/acked.Seconds(), "acks/s")
	// From the last ack to the group's offsets at the end: at most one
	// KAFKA_COMMIT_INTERVAL (1 s here) plus a commit's round trip.
	b.ReportMetric(float64((committed-acked).Microseconds())/1000, "commit-lag-ms")
}

// BenchmarkThroughWindow: the sustained rate of a backlog drained through
// the default windows (KAFKA_MAX_PENDING=1000 per partition, so fetching
// pauses and resumes all the time): every message is seen on the watch and
// acknowledged by 8 workers; msgs/s counts from the start to the last ack.
func BenchmarkThroughWindow(b *testing.B) {
	n := b.N
	c, topic, cfg := benchSetup(b, n)
	cfg.MaxPending = 1000
	recs := benchRecords(topic, n)
	for i := 0; i < n; i += 5000 {
		c.produce(b, recs[i:min(i+5000, n)]...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	d := open(b, cfg)
	events, err := d.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	work := make(chan string, 4096)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := d.Ack(ctx, name, itemapi.Succeeded); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for seen := 0; seen < n; {
		ev, ok := <-events
		if !ok {
			b.Fatal("watch closed")
		}
		if ev.Type == itemapi.Added {
			seen++
			work <- ev.Name
		}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
}

func testEventually(b testing.TB, cond func() error) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
