package redissource

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
)

var keySeq atomic.Int64

// key returns a fresh key name.
func key(prefix string) string { return fmt.Sprintf("%s-%d", prefix, keySeq.Add(1)) }

func testConfig(srv *redisserver.Server) Config {
	return Config{
		Addrs:            []string{srv.Addr},
		Group:            "itemq",
		Consumer:         "c1",
		Start:            "0",
		Create:           true,
		ClaimIdle:        time.Minute,
		MaxPending:       1000,
		MaxItemBytes:     1 << 20,
		DeadLetterSuffix: ":dead",
		Submit:           true,
		Block:            time.Second,
	}
}

// open starts a driver; it is closed at the end of the test (closing twice
// is fine).
func open(t testing.TB, cfg Config) *Driver {
	t.Helper()
	d, err := New(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ITEMQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func listed(t testing.TB, d *Driver) []string {
	t.Helper()
	names, _, err := d.List(context.Background(), sourceListAll)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return names
}

func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, what, cond)
}

// xadd adds entries with the given JSON data (in field "data") and returns
// their item names.
func xadd(t testing.TB, c *redis.Client, stream string, datas ...string) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for _, d := range datas {
		id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"data", d}}).Result()
		if err != nil {
			t.Fatalf("XADD: %v", err)
		}
		names = append(names, stream+"/"+id)
	}
	return names
}
