package redissource

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// Sentinel: the primary is killed, the replica is promoted, and the driver
// (which knows only the Sentinel) follows it: entries added before and after
// the failover are all served.
func TestSentinelFailover(t *testing.T) {
	primary := redisserver.Start(t, redisserver.Options{})
	replica := redisserver.Start(t, redisserver.Options{Config: []string{"replicaof " + strings.Replace(primary.Addr, ":", " ", 1)}})
	pc := primary.Client(t)
	ctx := context.Background()
	eventually(t, "replica in sync", func() error {
		info, err := replica.Client(t).Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica: %v %s", err, info)
		}
		return nil
	})
	sentinel := redisserver.StartSentinel(t, "mymaster", primary.Addr, 1)
	cfg := testConfig(primary)
	cfg.Addrs = []string{sentinel.Addr}
	cfg.MasterName = "mymaster"
	cfg.Streams = []string{key("sentinel")}
	cfg.JSONField = "data"
	d := open(t, cfg)
	before := xadd(t, pc, cfg.Streams[0], `{"a":1}`, `{"b":2}`)
	if err := pc.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "listed before failover", func() error {
		if got := listed(t, d); !slices.Equal(got, before) {
			return fmt.Errorf("listed %q", got)
		}
		return nil
	})
	// The group's state reaches the replica too.
	if err := pc.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	primary.Kill()
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{sentinel.Addr}})
	t.Cleanup(func() { _ = fc.Close() })
	var after []string
	testutil.Eventually(t, 60*time.Second, "promoted and written", func() error {
		id, err := fc.XAdd(ctx, &redis.XAddArgs{Stream: cfg.Streams[0], Values: []string{"data", `{"c":3}`}}).Result()
		if err != nil {
			return err
		}
		after = append(after, cfg.Streams[0]+"/"+id)
		return nil
	})
	eventually(t, "the driver follows the new primary", func() error {
		got := listed(t, d)
		for _, n := range after {
			if !slices.Contains(got, n) {
				return fmt.Errorf("listed %q, want %q among them", got, after)
			}
		}
		return nil
	})
	for _, n := range listed(t, d) {
		if err := d.Ack(ctx, n, itemapi.Succeeded); err != nil {
			t.Fatalf("Ack(%s) on the new primary: %v", n, err)
		}
	}
	if err := d.Ready(ctx); err != nil {
		t.Fatalf("Ready after the failover: %v", err)
	}
}
