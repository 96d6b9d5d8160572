package fairq_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/itemq/itemq/internal/fairq"
)

func pushAll(q *fairq.Queue[string], c fairq.Class, names ...string) {
	for _, n := range names {
		q.SetClass(n, c)
		q.Push(n)
	}
}

func popAll(q *fairq.Queue[string]) []string {
	var out []string
	for q.Len() > 0 {
		out = append(out, q.Pop())
	}
	return out
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestZeroConfigIsFIFO(t *testing.T) {
	q := fairq.New[string](fairq.Config{})
	for _, n := range seq("x", 200) {
		q.Push(n)
	}
	q.Push("x3") // again while waiting: one entry, its place kept
	if got := popAll(q); !slices.Equal(got, seq("x", 200)) {
		t.Errorf("order %v", got)
	}
}

func TestHigherPriorityFirstFIFOWithin(t *testing.T) {
	q := fairq.New[string](fairq.Config{})
	pushAll(q, fairq.Class{Priority: 0}, "low0", "low1")
	pushAll(q, fairq.Class{Priority: 5}, "high0", "high1")
	pushAll(q, fairq.Class{Priority: -1}, "bulk0")
	pushAll(q, fairq.Class{Priority: 5}, "high2")
	want := []string{"high0", "high1", "high2", "low0", "low1", "bulk0"}
	if got := popAll(q); !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// The share of lower priorities: a steady stream of urgent items goes
// first, yet one start in four (LowShare 0.25) goes to the oldest lower
// item, whatever its priority below the top, so none starves.
func TestLowShareBeatsStarvation(t *testing.T) {
	q := fairq.New[string](fairq.Config{LowShare: 0.25})
	pushAll(q, fairq.Class{Priority: 0}, "zero0", "zero1")
	pushAll(q, fairq.Class{Priority: 1}, "one0")
	var got []string
	for i := range 12 {
		pushAll(q, fairq.Class{Priority: 5}, fmt.Sprintf("u%d", i))
		got = append(got, q.Pop())
	}
	want := []string{"u0", "u1", "u2", "zero0", "u3", "u4", "u5", "zero1", "u6", "u7", "u8", "one0"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	// Strict priority (no share): the low ones wait for every urgent one.
	q = fairq.New[string](fairq.Config{})
	pushAll(q, fairq.Class{Priority: 0}, "zero0")
	for i := range 10 {
		pushAll(q, fairq.Class{Priority: 5}, fmt.Sprintf("u%d", i))
		if n := q.Pop(); n == "zero0" {
			t.Fatalf("strict priority gave the low item at pop %d", i)
		}
	}
}

func TestFairShareAcrossKeys(t *testing.T) {
	q := fairq.New[string](fairq.Config{})
	pushAll(q, fairq.Class{Key: "a"}, seq("a", 100)...)
	pushAll(q, fairq.Class{Key: "b"}, seq("b", 5)...)
	got := popAll(q)
	// b's items alternate with a's from the start, though a's came first.
	for i := range 5 {
		if got[2*i+1] != fmt.Sprintf("b%d", i) {
			t.Fatalf("order %v", got[:12])
		}
	}
	if !slices.Equal(got[10:], seq("a", 100)[5:]) {
		t.Errorf("a's items out of order: %v", got[10:])
	}
}

func TestWeights(t *testing.T) {
	q := fairq.New[string](fairq.Config{Weights: map[string]float64{"gold": 3}})
	pushAll(q, fairq.Class{Key: "gold"}, seq("g", 60)...)
	pushAll(q, fairq.Class{Key: "free"}, seq("f", 60)...)
	got := popAll(q)[:40]
	g := 0
	for _, n := range got {
		if strings.HasPrefix(n, "g") {
			g++
		}
	}
	if g != 30 {
		t.Errorf("gold had %d of the first 40, want 30: %v", g, got)
	}
}

// A key that sent nothing for a while gets its share from when it comes
// back, not a run of everything it "saved".
func TestNoCreditWhileIdle(t *testing.T) {
	q := fairq.New[string](fairq.Config{})
	pushAll(q, fairq.Class{Key: "b"}, "b-early")
	pushAll(q, fairq.Class{Key: "a"}, seq("a", 100)...)
	for range 51 {
		n := q.Pop()
		q.Release(n)
	}
	pushAll(q, fairq.Class{Key: "b"}, seq("b", 10)...)
	got := popAll(q)[:6]
	want := []string{"b0", "a50", "b1", "a51", "b2", "a52"}
	if !slices.Equal(got, want) && !slices.Equal(got, []string{"a50", "b0", "a51", "b1", "a52", "b2"}) {
		t.Errorf("after b's idle time: %v, want alternation", got)
	}
}

func TestKeyCap(t *testing.T) {
	q := fairq.New[string](fairq.Config{KeyCap: 2})
	pushAll(q, fairq.Class{Key: "a"}, seq("a", 5)...)
	pushAll(q, fairq.Class{Key: "b"}, "b0")
	q.SetClass("running", fairq.Class{Key: "b"})
	q.Hold("running") // found running at start
	q.Hold("running") // counted once
	var got []string
	for q.Len() > 0 {
		got = append(got, q.Pop())
	}
	if !slices.Equal(got, []string{"a0", "b0", "a1"}) {
		t.Fatalf("popped %v, want a0 b0 a1 (a capped at 2, b at 2 with the held one)", got)
	}
	if q.Len() != 0 || q.Waiting() != 3 || q.InFlight("a") != 2 {
		t.Fatalf("Len %d, Waiting %d, InFlight(a) %d", q.Len(), q.Waiting(), q.InFlight("a"))
	}
	if q.Release("b0") {
		t.Error("releasing b0 said a's items may go")
	}
	if !q.Release("a0") {
		t.Error("releasing a0 did not say a's items may go")
	}
	if q.Release("a0") {
		t.Error("a second release of a0 counted")
	}
	if n := q.Pop(); n != "a2" || q.Len() != 0 {
		t.Errorf("after a release: %q, Len %d", n, q.Len())
	}
}

// In client-go's workqueue: the order is the Queue's, a capped key's items
// wait in the queue, and a wake-up after Release lets a blocked Get have
// them.
func TestInClientGoWorkqueue(t *testing.T) {
	fq := fairq.New[string](fairq.Config{KeyCap: 1})
	wq := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "test", Queue: fq})
	defer wq.ShutDown()
	for _, n := range []string{"a0", "a1", "b0"} {
		fq.SetClass(n, fairq.Class{Key: n[:1]})
	}
	fq.SetClass("urgent", fairq.Class{Key: "c", Priority: 9})
	for _, n := range []string{"a0", "a1", "b0", "urgent"} {
		wq.Add(n)
	}
	var got []string
	for range 3 {
		n, _ := wq.Get()
		got = append(got, n)
		wq.Done(n)
	}
	if !slices.Equal(got, []string{"urgent", "a0", "b0"}) {
		t.Fatalf("order %v", got)
	}
	next := make(chan string)
	go func() {
		for {
			n, shutdown := wq.Get()
			if shutdown {
				close(next)
				return
			}
			wq.Done(n)
			if n != "" {
				next <- n
			}
		}
	}()
	select {
	case n := <-next:
		t.Fatalf("%q given while a is at its cap", n)
	case <-time.After(100 * time.Millisecond):
	}
	if fq.Release("a0") {
		wq.Add("") // the wake-up
	}
	select {
	case n := <-next:
		if n != "a1" {
			t.Errorf("after the release: %q", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a1 not given after a0's release")
	}
}

// BenchmarkPushPop: one Push and one Pop with a backlog of 10,000 items
// spread over the given number of keys (and three priorities).
func BenchmarkPushPop(b *testing.B) {
	for _, keys := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			q := fairq.New[int](fairq.Config{LowShare: 0.1})
			for i := 1; i <= 10000; i++ {
				q.SetClass(i, fairq.Class{Key: fmt.Sprint(i % keys), Priority: i % 3})
				q.Push(i)
			}
			n := 10000
			b.ResetTimer()
			for range b.N {
				n++
				q.SetClass(n, fairq.Class{Key: fmt.Sprint(n % keys), Priority: n % 3})
				q.Push(n)
				it := q.Pop()
				q.Release(it)
				q.Forget(it)
			}
		})
	}
}

// model is the order written plainly (a scan of every waiting item), to
// check the heaps' bookkeeping against.
type model struct {
	cfg     fairq.Config
	items   []mItem // waiting, in push order
	vtime   map[string]float64
	busy    map[string]int // key → waiting + in flight (absent: forgotten)
	flight  map[string]int
	held    map[int]string
	vclock  float64
	credit  float64
	seq     int
	classes map[int]fairq.Class
}

type mItem struct {
	id  int
	c   fairq.Class
	seq int
}

func (m *model) capped(k string) bool { return m.cfg.KeyCap > 0 && m.flight[k] >= m.cfg.KeyCap }

func (m *model) push(id int) {
	for _, it := range m.items {
		if it.id == id {
			return
		}
	}
	c := m.classes[id]
	waiting := 0
	for _, it := range m.items {
		if it.c.Key == c.Key {
			waiting++
		}
	}
	if waiting == 0 {
		m.vtime[c.Key] = max(m.vtime[c.Key], m.vclock)
	}
	m.seq++
	m.items = append(m.items, mItem{id, c, m.seq})
}

func (m *model) len() int {
	n := 0
	for _, it := range m.items {
		if !m.capped(it.c.Key) {
			n++
		}
	}
	return n
}

// fairPick is the next item of a priority in the fair order (-1: none).
func (m *model) fairPick(prio int) int {
	best := -1
	for i, it := range m.items {
		if it.c.Priority != prio || m.capped(it.c.Key) {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := m.items[best]
		vi, vb := m.vtime[it.c.Key], m.vtime[b.c.Key]
		if vi < vb || (vi == vb && it.seq < b.seq) {
			best = i
		}
	}
	return best
}

func (m *model) pop() int {
	prios := map[int]bool{}
	top, any := 0, false
	for _, it := range m.items {
		if m.capped(it.c.Key) {
			continue
		}
		prios[it.c.Priority] = true
		if !any || it.c.Priority > top {
			top, any = it.c.Priority, true
		}
	}
	pick := m.fairPick(top)
	if m.cfg.LowShare > 0 {
		low := -1
		for p := range prios {
			if p >= top {
				continue
			}
			if i := m.fairPick(p); low < 0 || m.items[i].seq < m.items[low].seq {
				low = i
			}
		}
		if low >= 0 {
			m.credit += m.cfg.LowShare
			if m.credit >= 1 {
				m.credit--
				pick = low
			}
		}
	}
	it := m.items[pick]
	m.items = slices.Delete(m.items, pick, pick+1)
	m.flight[it.c.Key]++
	m.held[it.id] = it.c.Key
	m.vclock = m.vtime[it.c.Key]
	w := m.cfg.Weights[it.c.Key]
	if w <= 0 {
		w = 1
	}
	m.vtime[it.c.Key] += 1 / w
	return it.id
}

func (m *model) release(id int) {
	k, ok := m.held[id]
	if !ok {
		return
	}
	delete(m.held, id)
	m.flight[k]--
	for _, it := range m.items {
		if it.c.Key == k {
			return
		}
	}
	if m.flight[k] == 0 {
		delete(m.vtime, k) // forgotten, as the Queue forgets an idle key
		delete(m.flight, k)
	}
}

// The heaps give the order the plain scan gives, through random pushes,
// pops and releases, with caps, weights and the low share.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		cfg := fairq.Config{LowShare: []float64{0, 0.1, 0.5}[seed%3], KeyCap: int(seed % 3),
			Weights: map[string]float64{"k0": 2, "k1": 0.5}}
		q := fairq.New[int](cfg)
		m := &model{cfg: cfg, vtime: map[string]float64{}, flight: map[string]int{}, held: map[int]string{}, classes: map[int]fairq.Class{}}
		next := 1
		var inFlight []int
		for step := range 3000 {
			switch op := r.IntN(10); {
			case op < 5:
				c := fairq.Class{Key: fmt.Sprintf("k%d", r.IntN(6)), Priority: r.IntN(3)}
				q.SetClass(next, c)
				m.classes[next] = c
				q.Push(next)
				m.push(next)
				next++
			case op < 8:
				if q.Len() != m.len() {
					t.Fatalf("seed %d step %d: Len %d, model %d", seed, step, q.Len(), m.len())
				}
				if m.len() == 0 {
					continue
				}
				got, want := q.Pop(), m.pop()
				if got != want {
					t.Fatalf("seed %d step %d: Pop %d, model %d", seed, step, got, want)
				}
				inFlight = append(inFlight, got)
			default:
				if len(inFlight) == 0 {
					continue
				}
				i := r.IntN(len(inFlight))
				id := inFlight[i]
				inFlight = slices.Delete(inFlight, i, i+1)
				q.Release(id)
				m.release(id)
			}
		}
	}
}

// A held item whose class is learnt later moves its flight to its key.
func TestSetClassOfAHeldItem(t *testing.T) {
	q := fairq.New[string](fairq.Config{KeyCap: 1})
	q.Hold("old") // found running; its class not known yet: key ""
	pushAll(q, fairq.Class{Key: "a"}, "a0")
	if q.Len() != 1 || q.InFlight("") != 1 {
		t.Fatalf("Len %d, InFlight(\"\") %d", q.Len(), q.InFlight(""))
	}
	q.SetClass("old", fairq.Class{Key: "a"})
	if q.Len() != 0 || q.InFlight("a") != 1 || q.InFlight("") != 0 {
		t.Fatalf("after SetClass: Len %d, InFlight(a) %d, InFlight(\"\") %d", q.Len(), q.InFlight("a"), q.InFlight(""))
	}
	if !q.Release("old") || q.Len() != 1 || q.Pop() != "a0" {
		t.Error("a0 not given after old's release")
	}
}
