package redissource

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/sourcetest"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

var sourceListAll = source.ListOptions{}

// streamBackend adds entries with XADD (data in field "data") and removes
// them by acknowledging.
type streamBackend struct {
	c      *redis.Client
	d      *Driver
	stream string
}

func (b *streamBackend) Put(ctx context.Context, t *testing.T, _ string, data []byte) (string, error) {
	return xadd(t, b.c, b.stream, string(data))[0], nil
}

func (b *streamBackend) Remove(ctx context.Context, _ *testing.T, name string) error {
	return b.d.Ack(ctx, name, itemapi.Succeeded)
}

// listBackend pushes values with RPUSH, as an RQ-style producer does; the
// driver names a value when it moves it, so Put waits for the new name.
type listBackend struct {
	c      *redis.Client
	d      *Driver
	list   string
	mu     sync.Mutex
	seen   map[string]bool
	values map[string]string // name → value
}

func (b *listBackend) Put(ctx context.Context, t *testing.T, _ string, data []byte) (string, error) {
	if err := b.c.RPush(ctx, b.list, data).Err(); err != nil {
		return "", err
	}
	var name string
	deadline := time.Now().Add(10 * time.Second)
	for name == "" && time.Now().Before(deadline) {
		b.mu.Lock()
		b.d.idx.Ascend(func(n string, it *item) bool {
			if !b.seen[n] && it.value == string(data) {
				name = n
				b.seen[n] = true
				b.values[n] = it.value
				return false
			}
			return true
		})
		b.mu.Unlock()
		if name == "" {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if name == "" {
		return "", fmt.Errorf("value %s not moved into the processing list", data)
	}
	return name, nil
}

func (b *listBackend) Remove(ctx context.Context, _ *testing.T, name string) error {
	return b.d.Ack(ctx, name, itemapi.Succeeded)
}

func TestConformanceStreams(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	var mu sync.Mutex
	drivers := map[*testing.T]*Driver{}
	mk := func(ctx context.Context, t *testing.T) (source.Driver, sourcetest.Backend, error) {
		cfg := testConfig(srv)
		cfg.Streams = []string{key("conf")}
		cfg.JSONField = "data"
		d, err := New(ctx, cfg, testLogger(t))
		if err != nil {
			return nil, nil, err
		}
		mu.Lock()
		drivers[t] = d
		mu.Unlock()
		return d, &streamBackend{c: c, d: d, stream: cfg.Streams[0]}, nil
	}
	archived := func(ctx context.Context, t *testing.T, name string, outcome itemapi.Outcome) error {
		mu.Lock()
		d := drivers[t]
		mu.Unlock()
		k, id := splitName(name)
		p, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: k, Group: "itemq", Start: id, End: id, Count: 1}).Result()
		if err != nil {
			return err
		}
		if len(p) != 0 {
			return fmt.Errorf("%s still pending after its ack", name)
		}
		dead, err := c.XRange(ctx, d.DeadLetterKey(k), "-", "+").Result()
		if err != nil {
			return err
		}
		found := slices.ContainsFunc(dead, func(m redis.XMessage) bool { return m.Values[FieldID] == id && m.Values[FieldStream] == k })
		if found != (outcome == itemapi.Failed) {
			return fmt.Errorf("%s (%s): in the dead-letter stream = %v", name, outcome, found)
		}
		return nil
	}
	sourcetest.RunConformanceTests(t, mk, sourcetest.Options{
		Watch: true, Submit: true, Ack: true, AckRemoves: true, Archived: archived, Redrive: true, RedriveRenames: true,
	})
}

func TestConformanceLists(t *testing.T) {
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	var mu sync.Mutex
	drivers := map[*testing.T]*listBackend{}
	mk := func(ctx context.Context, t *testing.T) (source.Driver, sourcetest.Backend, error) {
		cfg := testConfig(srv)
		cfg.Lists = []string{key("confl")}
		d, err := New(ctx, cfg, testLogger(t))
		if err != nil {
			return nil, nil, err
		}
		b := &listBackend{c: c, d: d, list: cfg.Lists[0], seen: map[string]bool{}, values: map[string]string{}}
		mu.Lock()
		drivers[t] = b
		mu.Unlock()
		return d, b, nil
	}
	archived := func(ctx context.Context, t *testing.T, name string, outcome itemapi.Outcome) error {
		mu.Lock()
		b := drivers[t]
		mu.Unlock()
		d := b.d
		b.mu.Lock()
		value := b.values[name]
		b.mu.Unlock()
		l, _ := splitName(name)
		proc, err := c.LRange(ctx, d.ProcessingList(l), 0, -1).Result()
		if err != nil {
			return err
		}
		for _, e := range proc {
			if _, v, _ := parseElem(e); v == value {
				return fmt.Errorf("processing list still holds %q", e)
			}
		}
		dead, err := c.LRange(ctx, d.DeadLetterKey(l), 0, -1).Result()
		if err != nil {
			return err
		}
		if got := slices.Contains(dead, value); got != (outcome == itemapi.Failed) {
			return fmt.Errorf("%s (%s): value %s in the dead-letter list %q = %v", name, outcome, value, dead, got)
		}
		return nil
	}
	sourcetest.RunConformanceTests(t, mk, sourcetest.Options{
		Watch: true, Submit: true, Ack: true, AckRemoves: true, Archived: archived, Redrive: true, RedriveRenames: true,
	})
}
