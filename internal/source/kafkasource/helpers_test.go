package kafkasource

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/internal/testutil"
)

// cluster is an in-process kfake cluster with an admin and a producer.
type cluster struct {
	kc    *kfake.Cluster
	addrs []string
	adm   *kadm.Client
	prod  *kgo.Client
}

func newCluster(t testing.TB, opts ...kfake.Opt) *cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(kc.Close)
	c := &cluster{kc: kc, addrs: kc.ListenAddrs()}
	return c
}

// clients makes the admin and producer clients (with extra options, e.g.
// SASL or TLS, when the cluster needs them).
func (c *cluster) clients(t testing.TB, extra ...kgo.Opt) *cluster {
	t.Helper()
	prod, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.addrs...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	c.prod = prod
	c.adm = kadm.NewClient(prod)
	return c
}

var topicSeq atomic.Int64

// topic creates a topic with a fresh name and returns the name.
func (c *cluster) topic(t testing.TB, prefix string, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, topicSeq.Add(1))
	c.createTopic(t, name, partitions)
	return name
}

func (c *cluster) createTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.adm.CreateTopics(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// produce writes records (Partition chooses the partition) and returns
// their item names.
func (c *cluster) produce(t testing.TB, recs ...*kgo.Record) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	names := make([]string, len(recs))
	for i, r := range recs {
		names[i] = itemName(r.Topic, r.Partition, r.Offset)
	}
	return names
}

// committed returns the group's committed offset of a partition (-1: none).
func (c *cluster) committed(t testing.TB, group, topic string, partition int32) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resps, err := c.adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	o, ok := resps.Lookup(topic, partition)
	if !ok {
		return -1
	}
	if o.Err != nil {
		t.Fatalf("fetch offset %s/%d: %v", topic, partition, o.Err)
	}
	return o.At
}

// endOffsets returns the end offset of each partition of a topic.
func (c *cluster) endOffsets(t testing.TB, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

var groupSeq atomic.Int64

func (c *cluster) config(topics ...string) Config {
	return Config{
		Brokers:        c.addrs,
		Topics:         topics,
		Group:          fmt.Sprintf("g-%d", groupSeq.Add(1)),
		MaxPending:     1000,
		CommitInterval: 20 * time.Millisecond,
		SessionTimeout: 3 * time.Second,
		ClientID:       "itemq-kafka-test",
	}
}

// open starts a driver; it is closed at the end of the test (closing twice
// is fine).
func open(t testing.TB, cfg Config, extra ...kgo.Opt) *Driver {
	t.Helper()
	d, err := New(context.Background(), cfg, testLogger(t), extra...)
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

// listed returns the driver's whole listing.
func listed(t testing.TB, d *Driver) []string {
	t.Helper()
	names, next, err := d.List(context.Background(), sourceListAll)
	if err != nil || next != "" {
		t.Fatalf("List: %v (next %q)", err, next)
	}
	return names
}

// perPartition counts listed names per "<topic>/<partition>".
func perPartition(names []string) map[string]int {
	out := map[string]int{}
	for _, n := range names {
		i := strings.LastIndexByte(n, '/')
		out[n[:i]]++
	}
	return out
}

func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, what, cond)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
