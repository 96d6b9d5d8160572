package redissource

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// addN adds n small entries to a stream, pipelined.
func addN(b testing.TB, c *redis.Client, stream string, n int) {
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		pipe := c.Pipeline()
		for i := start; i < min(n, start+1000); i++ {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"id", fmt.Sprintf("m%d", i)}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkXAddToWatch: one XADD, then its ADDED on a watch stream awaited,
// b.N times on an idle queue; p50/p99 of that round trip.
func BenchmarkXAddToWatch(b *testing.B) {
	srv := redisserver.Start(b, redisserver.Options{})
	c := srv.Client(b)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("bw")}
	cfg.MaxPending = b.N + 10
	d := open(b, cfg)
	ch, err := d.Watch(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	<-ch // SYNCED
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: cfg.Streams[0], Values: []string{"a", "1"}}).Err(); err != nil {
			b.Fatal(err)
		}
		ev := <-ch
		if ev.Type != itemapi.Added {
			b.Fatalf("event %v", ev)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkAck: b.N held entries acknowledged (succeeded) by 16 concurrent
// callers, as the manager's parallel acks arrive.
func BenchmarkAck(b *testing.B) {
	srv := redisserver.Start(b, redisserver.Options{})
	c := srv.Client(b)
	cfg := testConfig(srv)
	cfg.Streams = []string{key("ba")}
	cfg.MaxPending = b.N
	addN(b, c, cfg.Streams[0], b.N)
	d := open(b, cfg)
	testutil.Eventually(b, time.Minute, "all held", func() error {
		if d.Len() < b.N {
			return fmt.Errorf("%d held", d.Len())
		}
		return nil
	})
	names := listed(b, d)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t0 := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) {
					return
				}
				if err := d.Ack(context.Background(), names[i], itemapi.Succeeded); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(len(names))/time.Since(t0).Seconds(), "acks/s")
}

// BenchmarkVsPlainConsumer: 10,000 entries with a no-op process, through
// the Source (watch → Get → Ack, 8 workers, as the manager's in-process
// source drives it) and through a plain go-redis consumer with the same
// parallelism (8 workers each XREADGROUP COUNT 100 → no-op → XACK) on the
// same server. ratio = plain time ÷ driver time.
func BenchmarkVsPlainConsumer(b *testing.B) {
	const n, workers = 10000, 8
	srv := redisserver.Start(b, redisserver.Options{})
	c := srv.Client(b)
	var driverT, plainT time.Duration
	for range b.N {
		// The driver.
		cfg := testConfig(srv)
		cfg.Streams = []string{key("bv")}
		addN(b, c, cfg.Streams[0], n)
		t0 := time.Now()
		d, err := New(context.Background(), cfg, testLogger(b))
		if err != nil {
			b.Fatal(err)
		}
		src := source.New(d)
		ctx, cancel := context.WithCancel(context.Background())
		ch, _ := src.Watch(ctx)
		work := make(chan string, 1000)
		var done atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range work {
					if _, err := src.Get(ctx, name); err != nil {
						continue
					}
					if err := src.Ack(ctx, name, itemapi.Succeeded); err == nil {
						done.Add(1)
					}
				}
			}()
		}
		for ev := range ch {
			if ev.Type == itemapi.Added {
				work <- ev.Name
			}
			if done.Load() == n {
				break
			}
			if ev.Type == itemapi.Deleted && done.Load() >= n {
				break
			}
		}
		for done.Load() < n {
			time.Sleep(time.Millisecond)
		}
		driverT += time.Since(t0)
		close(work)
		wg.Wait()
		cancel()
		src.Close()

		// The plain consumer.
		s := key("bp")
		addN(b, c, s, n)
		if err := c.XGroupCreate(context.Background(), s, "g", "0").Err(); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		var acked atomic.Int64
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for acked.Load() < n {
					res, err := c.XReadGroup(context.Background(), &redis.XReadGroupArgs{
						Group: "g", Consumer: fmt.Sprint("w", w), Streams: []string{s, ">"}, Count: 100, Block: 100 * time.Millisecond,
					}).Result()
					if err != nil {
						continue
					}
					for _, m := range res[0].Messages {
						_ = m.Values // the no-op process
						if err := c.XAck(context.Background(), s, "g", m.ID).Err(); err == nil {
							acked.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		plainT += time.Since(t0)
	}
	b.ReportMetric(float64(n*b.N)/driverT.Seconds(), "driver-items/s")
	b.ReportMetric(float64(n*b.N)/plainT.Seconds(), "plain-items/s")
	b.ReportMetric(plainT.Seconds()/driverT.Seconds(), "ratio")
}
