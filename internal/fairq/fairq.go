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
// the virtual time of the keys that were busy, so it cannot bank credit
// while it sends nothing. A key at its cap is not eligible: its items do
// not count in Len, and Release makes them eligible again.
//
// The share of lower priorities: while items of a lower priority than the
// highest waiting wait too, LowShare of the starts go to the oldest of
// them (whatever its priority below the highest). So urgent items go
// first at once, and a burst of urgent ones still leaves the rest a trickle
// that, oldest first, reaches every item. (Ageing, raising a priority with
// its wait, was tried first: a burst that waits longer than the steps to
// the top priority then goes before every new urgent item — in the
// simulator an urgent stream beside a burst of 10,000 waited 640 s at p95.)
package fairq

import (
	"math"
	"sync"
)

// Class of an item: the key it is shared by and its priority.
type Class struct {
	Key      string
	Priority int
}

// Config of a Queue. The zero Config is a plain FIFO.
type Config struct {
	// LowShare is the fraction of starts that go to the oldest item of a
	// lower priority than the highest waiting, while there is one (0: none;
	// strict priority, and the lowest may starve).
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

// fifo is a deque of entries; Pop from the front.
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
	levels   map[int]*fifo[T] // priority → its items, oldest first
	n        int              // items waiting
	inflight int              // popped, not released
	vtime    float64
}

// Queue is a fair, prioritised queue of items. Its methods are safe for
// concurrent use.
type Queue[T comparable] struct {
	cfg Config

	mu      sync.Mutex
	classes map[T]Class // the class of every item that has one
	keys    map[string]*key[T]
	held    map[T]string // items in flight → their key
	wakes   int          // zero items pushed as wake-ups (see Wake)
	vclock  float64      // the virtual time of the last item given
	seq     uint64
	credit  float64         // of LowShare: a start for a lower priority at ≥ 1
	pushed  map[T]*entry[T] // items waiting
}

// New returns an empty Queue.
func New[T comparable](cfg Config) *Queue[T] {
	return &Queue[T]{cfg: cfg, classes: map[T]Class{}, keys: map[string]*key[T]{},
		held: map[T]string{}, pushed: map[T]*entry[T]{}}
}

// SetClass records an item's class; an item without one has the zero
// Class. It applies from the item's next Push.
func (q *Queue[T]) SetClass(item T, c Class) {
	q.mu.Lock()
	q.classes[item] = c
	q.mu.Unlock()
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
		k = &key[T]{levels: map[int]*fifo[T]{}}
		q.keys[name] = k
	}
	return k
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
	k := q.keyLocked(c.Key)
	if k.n == 0 {
		// Back from idle: no credit for the time it sent nothing.
		k.vtime = math.Max(k.vtime, q.minBusyVtimeLocked())
	}
	f := k.levels[c.Priority]
	if f == nil {
		f = &fifo[T]{}
		k.levels[c.Priority] = f
	}
	f.push(e)
	k.n++
	q.pushed[item] = e
}

// minBusyVtimeLocked is the smallest virtual time of the keys with items
// waiting, or the virtual clock when none has.
func (q *Queue[T]) minBusyVtimeLocked() float64 {
	m, any := math.Inf(1), false
	for _, k := range q.keys {
		if k.n > 0 && k.vtime < m {
			m, any = k.vtime, true
		}
	}
	if !any {
		return q.vclock
	}
	return m
}

// Touch is called when a waiting item is added again (workqueue.Queue):
// its place is kept.
func (q *Queue[T]) Touch(T) {}

func (q *Queue[T]) cappedLocked(k *key[T]) bool {
	return q.cfg.KeyCap > 0 && k.inflight >= q.cfg.KeyCap
}

// Len is the number of items that Pop may give now: those of keys below
// their cap, and wake-ups (workqueue.Queue).
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.wakes
	for _, k := range q.keys {
		if !q.cappedLocked(k) {
			n += k.n
		}
	}
	return n
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
	type head struct {
		e *entry[T]
		k *key[T]
		f *fifo[T]
	}
	var best, low head // the highest priority's pick; the oldest below it
	top, anyLow := 0, false
	for _, k := range q.keys {
		if k.n == 0 || q.cappedLocked(k) {
			continue
		}
		for _, f := range k.levels {
			if f.len() == 0 {
				continue
			}
			h := head{f.front(), k, f}
			p := h.e.class.Priority
			switch {
			case best.e == nil || p > top:
				if best.e != nil {
					anyLow = true
					if low.e == nil || best.e.seq < low.e.seq {
						low = best
					}
				}
				best, top = h, p
			case p < top:
				anyLow = true
				if low.e == nil || h.e.seq < low.e.seq {
					low = h
				}
			case k != best.k && k.vtime != best.k.vtime:
				if k.vtime < best.k.vtime {
					best = h
				}
			case h.e.seq < best.e.seq: // the same key, or a tie of keys: the older first
				best = h
			}
		}
	}
	if best.e == nil {
		return zero // Len was 0: a caller's mistake; give a wake-up
	}
	if anyLow && q.cfg.LowShare > 0 {
		q.credit += q.cfg.LowShare
		if q.credit >= 1 {
			q.credit--
			best = low
		}
	}
	bestLvl, bestK := best.f, best.k
	e := best.e
	bestLvl.remove()
	bestK.n--
	bestK.inflight++
	delete(q.pushed, e.item)
	q.held[e.item] = e.class.Key
	q.vclock = bestK.vtime
	w := q.cfg.Weights[e.class.Key]
	if w <= 0 {
		w = 1
	}
	bestK.vtime += 1 / w
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
	q.keyLocked(c.Key).inflight++
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
	wasCapped := q.cappedLocked(k)
	k.inflight--
	if k.n == 0 && k.inflight == 0 {
		delete(q.keys, name) // when it comes back, it starts from the busy keys' time
	}
	return wasCapped && k.n > 0
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
