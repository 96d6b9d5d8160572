package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// kafka is an in-process kfake cluster the test holds while ambassador
// processes come and go.
type kafka struct {
	addrs []string
	prod  *kgo.Client
	adm   *kadm.Client
}

func newKafka(t testing.TB) *kafka {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &kafka{addrs: kc.ListenAddrs(), prod: prod, adm: kadm.NewClient(prod)}
}

func (k *kafka) createTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := k.adm.CreateTopics(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

// produceIDs writes n messages {"id":"m<i>"} round-robin over the
// partitions and returns the ids.
func (k *kafka) produceIDs(t testing.TB, topic string, partitions int32, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []string
	var recs []*kgo.Record
	flush := func() {
		if err := k.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		recs = recs[:0]
	}
	for i := range n {
		id := fmt.Sprintf("m%d", i)
		ids = append(ids, id)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: fmt.Appendf(nil, `{"id":%q}`, id)})
		if len(recs) == 1000 {
			flush()
		}
	}
	flush()
	return ids
}

// committed returns the group's committed offset per partition of topic.
func (k *kafka) committed(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resps, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	for p, o := range resps[topic] {
		out[p] = o.At
	}
	return out
}

func (k *kafka) endOffsets(t testing.TB, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := k.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// waitCommittedToEnd waits until the group has committed every partition
// of topic up to its end.
func (k *kafka) waitCommittedToEnd(t testing.TB, group, topic string) {
	t.Helper()
	ends := k.endOffsets(t, topic)
	testutil.Eventually(t, time.Minute, "committed to the end", func() error {
		got := k.committed(t, group, topic)
		for p, end := range ends {
			if got[p] != end {
				return fmt.Errorf("committed %v, end offsets %v", got, ends)
			}
		}
		return nil
	})
}

func (k *kafka) ambassadorEnv(topic, group string, extra ...string) []string {
	return append([]string{
		"KAFKA_BROKERS=" + strings.Join(k.addrs, ","),
		"KAFKA_TOPICS=" + topic,
		"KAFKA_GROUP=" + group,
		"ITEMQ_LOG_LEVEL=info",
	}, extra...)
}

func startAmbassador(t *testing.T, env ...string) *testutil.Process {
	t.Helper()
	return testutil.StartServer(t, testutil.Binary(t, "ambassadors/kafka"), "ITEMQ_ADDR", env...)
}

// fakeManager lists items over HTTP, reads each and acknowledges it with a
// few workers, in random order; it tolerates ambassadors that die and come
// back. It records every ack it attempted (by item name) and the ids of the
// messages it acknowledged successfully.
type fakeManager struct {
	mu        sync.Mutex
	attempted map[string]bool
	processed map[string]int // id → successful acks
	names     map[string]int // item name → successful acks
	acked     int
}

func newFakeManager() *fakeManager {
	return &fakeManager{attempted: map[string]bool{}, processed: map[string]int{}, names: map[string]int{}}
}

func (m *fakeManager) count() (ids, acks int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.processed), m.acked
}

// run works on the ambassador at url until ctx ends; it returns a function
// that waits for its goroutines.
func (m *fakeManager) run(ctx context.Context, t *testing.T, url string) func() {
	c, err := itemapi.NewClient(url, itemapi.WithRetries(2), itemapi.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		itemapi.WithRequestTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	work := make(chan string)
	var imu sync.Mutex
	inflight := map[string]bool{}
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				it, err := c.Get(ctx, name)
				if err == nil {
					var v struct {
						ID string `json:"id"`
					}
					_ = json.Unmarshal(it.Data, &v)
					m.mu.Lock()
					m.attempted[name] = true
					m.mu.Unlock()
					if err := c.Ack(ctx, name, itemapi.Succeeded); err == nil {
						m.mu.Lock()
						m.processed[v.ID]++
						m.names[name]++
						m.acked++
						m.mu.Unlock()
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
		}
	}()
	return wg.Wait
}

// checkNoSkip checks the at-least-once invariant after a crash: every
// message below a partition's committed offset was acknowledged (an ack was
// at least sent for it) before the crash.
func (m *fakeManager) checkNoSkip(t *testing.T, topic string, committed map[int32]int64) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	total := int64(0)
	for p, c := range committed {
		for o := int64(0); o < c; o++ {
			if name := fmt.Sprintf("%s/%d/%d", topic, p, o); !m.attempted[name] {
				t.Fatalf("committed offset %d of partition %d skips %s, which was never acknowledged", c, p, name)
			}
		}
		total += c
	}
	t.Logf("at the crash: %d messages committed, %d acks attempted", total, len(m.attempted))
}

// waitAll waits until every id was acknowledged. Messages acknowledged
// twice (redelivered after the crash) must all be at or above the offsets
// committed at the crash: a new member starts exactly there.
func (m *fakeManager) waitAll(t *testing.T, ids []string, topic string, committedAtCrash map[int32]int64) {
	t.Helper()
	testutil.Eventually(t, 2*time.Minute, "every message processed", func() error {
		if n, _ := m.count(); n < len(ids) {
			return fmt.Errorf("%d of %d ids processed", n, len(ids))
		}
		return nil
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	dups := 0
	for _, id := range ids {
		switch k := m.processed[id]; {
		case k == 0:
			t.Fatalf("%s never processed", id)
		case k > 1:
			dups++
		}
	}
	t.Logf("%d ids, %d acks, %d ids acknowledged more than once (redelivered after the crash)", len(ids), m.acked, dups)
	for name, k := range m.names {
		if k < 2 {
			continue
		}
		var p int32
		var o int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, topic+"/"), "%d/%d", &p, &o); err != nil {
			t.Fatalf("item name %q: %v", name, err)
		}
		if o < committedAtCrash[p] {
			t.Fatalf("%s was delivered again although offset %d of partition %d was committed", name, committedAtCrash[p], p)
		}
	}
}

func TestKillAmbassadorMidRun(t *testing.T) {
	k := newKafka(t)
	const topic, group, partitions, n = "work", "kill", 6, 3000
	k.createTopic(t, topic, partitions)
	ids := k.produceIDs(t, topic, partitions, n)
	env := k.ambassadorEnv(topic, group, "KAFKA_MAX_PENDING=50", "KAFKA_COMMIT_INTERVAL=200ms", "KAFKA_SESSION_TIMEOUT=2s")

	a := startAmbassador(t, env...)
	m := newFakeManager()
	ctx, cancel := context.WithCancel(context.Background())
	wait := m.run(ctx, t, a.URL())
	testutil.Eventually(t, time.Minute, "a third processed", func() error {
		if n, _ := m.count(); n < len(ids)/3 {
			return fmt.Errorf("%d processed", n)
		}
		return nil
	})
	a.Kill() // with items listed but not acked, and acks not yet committed
	cancel()
	wait()
	atCrash := k.committed(t, group, topic)
	m.checkNoSkip(t, topic, atCrash)

	b := startAmbassador(t, env...)
	ctx, cancel = context.WithCancel(context.Background())
	wait = m.run(ctx, t, b.URL())
	defer func() { cancel(); wait() }()
	m.waitAll(t, ids, topic, atCrash)
	k.waitCommittedToEnd(t, group, topic)
}

// partitionsListed returns the partitions an ambassador lists items of.
func partitionsListed(ctx context.Context, t *testing.T, url string) (map[string]bool, error) {
	c, err := itemapi.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	names, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n[:strings.LastIndexByte(n, '/')]] = true
	}
	return out, nil
}

func TestTwoAmbassadorsSplitAndTakeOver(t *testing.T) {
	k := newKafka(t)
	const topic, group, partitions, n = "shared", "pair", 6, 3000
	k.createTopic(t, topic, partitions)
	ids := k.produceIDs(t, topic, partitions, n)
	env := k.ambassadorEnv(topic, group, "KAFKA_MAX_PENDING=50", "KAFKA_COMMIT_INTERVAL=200ms", "KAFKA_SESSION_TIMEOUT=2s")
	a := startAmbassador(t, env...)
	b := startAmbassador(t, env...)

	ctx := context.Background()
	testutil.Eventually(t, time.Minute, "partitions split between the two", func() error {
		pa, err := partitionsListed(ctx, t, a.URL())
		if err != nil {
			return err
		}
		pb, err := partitionsListed(ctx, t, b.URL())
		if err != nil {
			return err
		}
		if len(pa) == 0 || len(pb) == 0 || len(pa)+len(pb) != partitions {
			return fmt.Errorf("A lists partitions %v, B %v", pa, pb)
		}
		for p := range pa {
			if pb[p] {
				return fmt.Errorf("partition %s listed by both", p)
			}
		}
		return nil
	})

	m := newFakeManager()
	actx, acancel := context.WithCancel(ctx)
	waitA := m.run(actx, t, a.URL())
	bctx, bcancel := context.WithCancel(ctx)
	waitB := m.run(bctx, t, b.URL())
	defer func() { bcancel(); waitB() }()
	testutil.Eventually(t, time.Minute, "a third processed", func() error {
		if n, _ := m.count(); n < len(ids)/3 {
			return fmt.Errorf("%d processed", n)
		}
		return nil
	})
	a.Kill()
	acancel()
	waitA()
	atCrash := k.committed(t, group, topic)
	m.checkNoSkip(t, topic, atCrash)
	// B takes A's partitions over (after A's session times out) from the
	// committed offsets, and everything is processed.
	m.waitAll(t, ids, topic, atCrash)
	k.waitCommittedToEnd(t, group, topic)
	pb, err := partitionsListed(ctx, t, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	if len(pb) != 0 {
		t.Fatalf("B still lists items of %v after everything was processed", pb)
	}
}

func TestReadyzAndSubmit(t *testing.T) {
	k := newKafka(t)
	k.createTopic(t, "in", 2)
	a := startAmbassador(t, k.ambassadorEnv("in", "ready", "KAFKA_SUBMIT_TOPIC=in", "KAFKA_DEAD_LETTER_TOPIC=in-dead")...)
	get := func(path string) (int, string) {
		resp, err := http.Get(a.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "in-dead") {
		t.Fatalf("readyz with a missing dead-letter topic: %d %s", code, body)
	}
	k.createTopic(t, "in-dead", 1)
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d %s", code, body)
	}
	c, err := itemapi.NewClient(a.URL())
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Submit(context.Background(), json.RawMessage(`{"job":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(it.Name, "in/") || !strings.HasSuffix(it.Name, "/0") {
		t.Fatalf("submitted item %q, want in/<partition>/0", it.Name)
	}
	testutil.Eventually(t, 30*time.Second, "submitted item listed", func() error {
		got, err := c.Get(context.Background(), it.Name)
		if err != nil {
			return err
		}
		var v map[string]any
		if err := json.Unmarshal(got.Data, &v); err != nil || v["job"] != "x" || v["_kafka"] == nil {
			return fmt.Errorf("data %s", got.Data)
		}
		return nil
	})
}

func TestBadConfiguration(t *testing.T) {
	bin := testutil.Binary(t, "ambassadors/kafka")
	cmd := exec.Command(bin)
	cmd.Env = []string{"KAFKA_BROKERS=localhost", "KAFKA_SASL_MECHANISM=kerberos", "ITEMQ_ADDR=127.0.0.1:0"}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	for _, want := range []string{`"localhost" is not host:port`, "KAFKA_TOPICS is required", "KAFKA_GROUP is required", `KAFKA_SASL_MECHANISM="kerberos"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Fatalf("output does not say %q:\n%s", want, out)
		}
	}
}
