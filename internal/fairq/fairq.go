// Package fairq orders the items waiting for a job (issue 15, fair
// dispatch): higher priority first, FIFO within a priority, a share of
// the starts kept for lower priorities so that the lowest is never
// starved, and, among items of the same priority, a weighted fair share
// across a key such as the tenant, with an optional cap on each key's
// items in flight.
//
// A Queue implements client-go's workqueue.Queue, so the manager keeps
// client-go's workqueue (deduplication, processing set, rate-limited
// retries) and only the order is this package's: the workqueue asks Len
// and Pop under its lock. The simulator (internal/sim) uses the same Queue
// directly with a virtual clock.
//
// The share is start-time fair queueing over keys: each key has a virtual
// time that grows by 1/weight with every item it is given; the eligible key
// with the smallest virtual time goes next. A key that was idle starts at
// the virtual time of the last item given, so it cannot bank credit while
// it sends nothing. A key at its cap is not eligible: its items do not
// count in Len, and Release makes them eligible again.
//
// Each priority has a heap of its eligible keys by (virtual time, oldest
// item), so Push and Pop cost O(log keys) for every key, plus a step per
// priority present (the priorities are kept sorted).
//
// The share of lower priorities: while items of a lower priority than the
// highest waiting wait too, LowShare of the starts go below: to the
// priority whose next item in its fair order has waited longest. So urgent items go
// first at once, and a burst of urgent ones still leaves the rest a trickle
// that, oldest first, reaches every item. (Ageing, raising a priority with
// its wait, was tried first: a burst that waits longer than the steps to
// the top priority then goes before every new urgent item — in the
// simulator an urgent stream beside a burst of 10,000 waited 640 s at p95.)
package fairq

import (
	"container/heap"
	"math"
	"slices"
	"sync"
)

// Class of an item: the key it is shared by and its priority.
type Class struct {
	Key      string
	Priority int
}

// Config of a Queue. The zero Config is a plain FIFO.
type Config struct {
	// LowShare is the fraction of starts that go to a lower priority than
	// the highest waiting, while one waits (0: none; strict priority, and
	// the lowest may starve).
	LowShare float64
	// Weights of keys in the fair share (absent or ≤ 0: 1).
	Weights map[string]float64
	// KeyCap bounds the items of one key in flight, from Pop to Release
	// (0: no cap).
	KeyCap int
}

type entry[T comparable] struct {
	item  T
	class Class
	seq   uint64 // the order of pushes: smaller is older
}

// fifo is a deque of entries; remove from the front.
type fifo[T comparable] struct {
	buf  []*entry[T]
	head int
}

func (f *fifo[T]) len() int         { return len(f.buf) - f.head }
func (f *fifo[T]) push(e *entry[T]) { f.buf = append(f.buf, e) }
func (f *fifo[T]) front() *entry[T] { return f.buf[f.head] }
func (f *fifo[T]) remove() *entry[T] {
	e := f.buf[f.head]
	f.buf[f.head] = nil
	f.head++
	if f.head > 64 && f.head*2 >= len(f.buf) { // compact
		n := copy(f.buf, f.buf[f.head:])
		clear(f.buf[n:])
		f.buf = f.buf[:n]
		f.head = 0
	}
	return e
}

type key[T comparable] struct {
	name     string
	items    map[int]*fifo[T] // priority → its items, oldest first
	pos      map[int]int      // priority → index in that level's heap (absent: not in it)
	n        int              // items waiting
	inflight int              // popped or held, not released
	vtime    float64
}

// level is one priority: its eligible keys with items of it, by (virtual
// time, oldest item).
type level[T comparable] struct {
	prio int
	keys []*key[T]
	n    int // items of this priority waiting, of every key
}

func (l *level[T]) Len() int { return len(l.keys) }
func (l *level[T]) Less(i, j int) bool {
	a, b := l.keys[i], l.keys[j]
	if a.vtime != b.vtime {
		return a.vtime < b.vtime
	}
	return a.items[l.prio].front().seq < b.items[l.prio].front().seq
}
func (l *level[T]) Swap(i, j int) {
	l.keys[i], l.keys[j] = l.keys[j], l.keys[i]
	l.keys[i].pos[l.prio] = i
	l.keys[j].pos[l.prio] = j
}
func (l *level[T]) Push(x any) {
	k := x.(*key[T])
	k.pos[l.prio] = len(l.keys)
	l.keys = append(l.keys, k)
}
func (l *level[T]) Pop() any {
	k := l.keys[len(l.keys)-1]
	l.keys[len(l.keys)-1] = nil
	l.keys = l.keys[:len(l.keys)-1]
	delete(k.pos, l.prio)
	return k
}

// Queue is a fair, prioritised queue of items. Its methods are safe for
// concurrent use.
type Queue[T comparable] struct {
	cfg Config

	mu       sync.Mutex
	classes  map[T]Class // the class of every item that has one
	keys     map[string]*key[T]
	levels   map[int]*level[T]
	prios    []int        // the priorities with items waiting, highest first
	held     map[T]string // items in flight → their key
	wakes    int          // zero items pushed as wake-ups
	eligible int          // items of keys below their cap
	vclock   float64      // the virtual time of the last item given
	seq      uint64
	credit   float64         // of LowShare: a start for a lower priority at ≥ 1
	pushed   map[T]*entry[T] // items waiting
}

// New returns an empty Queue.
func New[T comparable](cfg Config) *Queue[T] {
	return &Queue[T]{cfg: cfg, classes: map[T]Class{}, keys: map[string]*key[T]{},
		levels: map[int]*level[T]{}, held: map[T]string{}, pushed: map[T]*entry[T]{}}
}

// SetClass records an item's class; an item without one has the zero
// Class. It applies from the item's next Push; an item in flight (Pop or
// Hold) counts against its new key's cap from now on.
func (q *Queue[T]) SetClass(item T, c Class) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.classes[item] = c
	old, held := q.held[item]
	if !held || old == c.Key {
		return
	}
	// Move the flight from the old key to the new one.
	ok := q.keys[old]
	wasCapped := q.cappedLocked(ok)
	ok.inflight--
	if wasCapped && !q.cappedLocked(ok) && ok.n > 0 {
		q.eligible += ok.n
		q.enterLocked(ok)
	}
	if ok.n == 0 && ok.inflight == 0 {
		delete(q.keys, old)
	}
	q.held[item] = c.Key
	nk := q.keyLocked(c.Key)
	wasCapped = q.cappedLocked(nk)
	nk.inflight++
	if !wasCapped && q.cappedLocked(nk) {
		q.eligible -= nk.n
		q.leaveLocked(nk)
	}
}

// Class returns an item's class, if it has one.
func (q *Queue[T]) Class(item T) (Class, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c, ok := q.classes[item]
	return c, ok
}

// Forget drops an item's class (the item is gone for good).
func (q *Queue[T]) Forget(item T) {
	q.mu.Lock()
	delete(q.classes, item)
	q.mu.Unlock()
}

func (q *Queue[T]) keyLocked(name string) *key[T] {
	k := q.keys[name]
	if k == nil {
		k = &key[T]{name: name, items: map[int]*fifo[T]{}, pos: map[int]int{}}
		q.keys[name] = k
	}
	return k
}

func (q *Queue[T]) levelLocked(prio int) *level[T] {
	l := q.levels[prio]
	if l == nil {
		l = &level[T]{prio: prio}
		q.levels[prio] = l
		i, _ := slices.BinarySearchFunc(q.prios, prio, func(a, b int) int { return b - a })
		q.prios = slices.Insert(q.prios, i, prio)
	}
	return l
}

func (q *Queue[T]) dropLevelLocked(prio int) {
	delete(q.levels, prio)
	if i, ok := slices.BinarySearchFunc(q.prios, prio, func(a, b int) int { return b - a }); ok {
		q.prios = slices.Delete(q.prios, i, i+1)
	}
}

func (q *Queue[T]) cappedLocked(k *key[T]) bool {
	return q.cfg.KeyCap > 0 && k.inflight >= q.cfg.KeyCap
}

// enterLocked puts an eligible key in the heap of every priority it has
// items of; leaveLocked takes it out of them.
func (q *Queue[T]) enterLocked(k *key[T]) {
	for prio, f := range k.items {
		if _, in := k.pos[prio]; !in && f.len() > 0 {
			heap.Push(q.levels[prio], k)
		}
	}
}

func (q *Queue[T]) leaveLocked(k *key[T]) {
	for prio, i := range k.pos {
		heap.Remove(q.levels[prio], i)
	}
}

// Push adds an item (workqueue.Queue). The zero item is a wake-up: it is
// given before anything else and carries no work.
func (q *Queue[T]) Push(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	if item == zero {
		q.wakes++
		return
	}
	if _, ok := q.pushed[item]; ok {
		return
	}
	c := q.classes[item]
	q.seq++
	e := &entry[T]{item: item, class: c, seq: q.seq}
	q.pushed[item] = e
	k := q.keyLocked(c.Key)
	if k.n == 0 {
		// Back from idle: no credit for the time it sent nothing.
		k.vtime = math.Max(k.vtime, q.vclock)
	}
	l := q.levelLocked(c.Priority)
	f := k.items[c.Priority]
	if f == nil {
		f = &fifo[T]{}
		k.items[c.Priority] = f
	}
	f.push(e)
	k.n++
	l.n++
	if q.cappedLocked(k) {
		return
	}
	q.eligible++
	if _, in := k.pos[c.Priority]; !in {
		heap.Push(l, k)
	}
}

// Touch is called when a waiting item is added again (workqueue.Queue):
// its place is kept.
func (q *Queue[T]) Touch(T) {}

// Len is the number of items that Pop may give now: those of keys below
// their cap, and wake-ups (workqueue.Queue).
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wakes + q.eligible
}

// Waiting is the number of items waiting, eligible or not.
func (q *Queue[T]) Waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pushed)
}

// Pop gives the next item (workqueue.Queue; called only when Len > 0). The
// item counts against its key's cap until Release.
func (q *Queue[T]) Pop() T {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	if q.wakes > 0 {
		q.wakes--
		return zero
	}
	var pick *level[T] // the top priority with an eligible key
	top := -1
	for i, prio := range q.prios {
		if l := q.levels[prio]; l.Len() > 0 {
			pick, top = l, i
			break
		}
	}
	if pick == nil {
		return zero // Len was 0: a caller's mistake; give a wake-up
	}
	if q.cfg.LowShare > 0 {
		// The lower priority whose next item has waited longest.
		var low *level[T]
		for _, prio := range q.prios[top+1:] {
			l := q.levels[prio]
			if l.Len() > 0 && (low == nil || l.keys[0].items[prio].front().seq < low.keys[0].items[low.prio].front().seq) {
				low = l
			}
		}
		if low != nil {
			q.credit += q.cfg.LowShare
			if q.credit >= 1 {
				q.credit--
				pick = low
			}
		}
	}
	k := pick.keys[0]
	f := k.items[pick.prio]
	e := f.remove()
	k.n--
	k.inflight++
	q.eligible--
	delete(q.pushed, e.item)
	q.held[e.item] = k.name
	if f.len() == 0 {
		delete(k.items, pick.prio)
		heap.Remove(pick, k.pos[pick.prio])
	}
	if pick.n--; pick.n == 0 {
		q.dropLevelLocked(pick.prio)
	}
	q.vclock = k.vtime
	w := q.cfg.Weights[k.name]
	if w <= 0 {
		w = 1
	}
	k.vtime += 1 / w
	if q.cappedLocked(k) {
		q.eligible -= k.n
		q.leaveLocked(k)
	} else {
		for prio, i := range k.pos {
			heap.Fix(q.levels[prio], i)
		}
	}
	return e.item
}

// Hold counts an item already in flight (e.g. a job found running at
// start) against its key's cap, once.
func (q *Queue[T]) Hold(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.held[item]; ok {
		return
	}
	c := q.classes[item]
	q.held[item] = c.Key
	k := q.keyLocked(c.Key)
	was := q.cappedLocked(k)
	k.inflight++
	if !was && q.cappedLocked(k) {
		q.eligible -= k.n
		q.leaveLocked(k)
	}
}

// Release ends an item's flight. It reports whether items of its key that
// were held back by the cap may go now (the caller then pushes a wake-up,
// the zero item, so that a waiting Get sees them).
func (q *Queue[T]) Release(item T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	name, ok := q.held[item]
	if !ok {
		return false
	}
	delete(q.held, item)
	k := q.keys[name]
	was := q.cappedLocked(k)
	k.inflight--
	if k.n == 0 && k.inflight == 0 {
		delete(q.keys, name) // when it comes back, it starts from the clock
		return false
	}
	if was && !q.cappedLocked(k) && k.n > 0 {
		q.eligible += k.n
		q.enterLocked(k)
		return true
	}
	return false
}

// InFlight is the number of items of a key between Pop (or Hold) and
// Release.
func (q *Queue[T]) InFlight(keyName string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if k := q.keys[keyName]; k != nil {
		return k.inflight
	}
	return 0
}
