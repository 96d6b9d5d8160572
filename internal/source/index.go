package source

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/google/btree"

	"github.com/itemq/itemq/itemapi"
)

// Index is an ordered, concurrent set of item names, each with a value of
// the driver's choosing (file attributes, object attributes, a message). It
// gives drivers that keep their items in memory the parts of the contract
// that are the same everywhere: sorted listing with continue tokens that stay
// correct while items come and go, and watch streams.
//
// Memory per item is the name, V and about 16 bytes of tree overhead.
type Index[V any] struct {
	mu     sync.RWMutex
	tree   *btree.BTreeG[entry[V]]
	subs   map[*subscriber]struct{}
	closed bool
	// MaxQueue bounds the events waiting for one slow watcher; past it the
	// watcher's stream is closed (it will watch again and reconcile).
	maxQueue int
}

type entry[V any] struct {
	name string
	val  V
}

func lessEntry[V any](a, b entry[V]) bool { return a.name < b.name }

// DefaultMaxQueue is the default bound of one watcher's queue.
const DefaultMaxQueue = 1 << 16

// NewIndex returns an empty index.
func NewIndex[V any]() *Index[V] {
	return &Index[V]{
		tree:     btree.NewG(32, lessEntry[V]),
		subs:     make(map[*subscriber]struct{}),
		maxQueue: DefaultMaxQueue,
	}
}

// SetMaxQueue changes the bound of each watcher's queue.
func (x *Index[V]) SetMaxQueue(n int) {
	x.mu.Lock()
	x.maxQueue = n
	x.mu.Unlock()
}

// Put adds or replaces an item. It reports whether the item is new; a new
// item is announced to watchers.
func (x *Index[V]) Put(name string, v V) (added bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, replaced := x.tree.ReplaceOrInsert(entry[V]{name: name, val: v})
	if !replaced {
		x.publish(itemapi.WatchEvent{Type: itemapi.Added, Name: name})
	}
	return !replaced
}

// Delete removes an item and returns its value; removal is announced.
func (x *Index[V]) Delete(name string) (V, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.tree.Delete(entry[V]{name: name})
	if ok {
		x.publish(itemapi.WatchEvent{Type: itemapi.Deleted, Name: name})
	}
	return e.val, ok
}

// Get returns an item's value.
func (x *Index[V]) Get(name string) (V, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.tree.Get(entry[V]{name: name})
	return e.val, ok
}

// Len is the number of items.
func (x *Index[V]) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.tree.Len()
}

// Ascend calls fn for each item in order until fn returns false. fn must not
// call back into the index.
func (x *Index[V]) Ascend(fn func(name string, v V) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.tree.Ascend(func(e entry[V]) bool { return fn(e.name, e.val) })
}

// List returns one page of names; see Driver.List. The continue token is the
// last name returned, so the next page starts right after it whatever
// happened in between.
func (x *Index[V]) List(opts ListOptions) ([]string, string, error) {
	after, err := DecodeContinue(opts.Continue)
	if err != nil {
		return nil, "", err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := x.tree.Len()
	if opts.Limit > 0 && opts.Limit < n {
		n = opts.Limit
	}
	names := make([]string, 0, n)
	more := false
	visit := func(e entry[V]) bool {
		if opts.Continue != "" && e.name == after {
			return true
		}
		if opts.Limit > 0 && len(names) == opts.Limit {
			more = true
			return false
		}
		names = append(names, e.name)
		return true
	}
	if opts.Continue == "" {
		x.tree.Ascend(visit)
	} else {
		x.tree.AscendGreaterOrEqual(entry[V]{name: after}, visit)
	}
	if !more || len(names) == 0 {
		return names, "", nil
	}
	return names, EncodeContinue(names[len(names)-1]), nil
}

// A continue token is base64url(name ‖ CRC-32C of tokenSalt ‖ name): the
// checksum makes a corrupted, truncated or hand-made token a BadRequest
// instead of a position past the end (an empty page that a client would
// take for the end of the listing). It is not a secret: a token only says
// where a listing resumes.
const tokenSalt = "itemq/continue/v1\x00"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func tokenSum(name string) uint32 {
	h := crc32.New(castagnoli)
	_, _ = h.Write([]byte(tokenSalt))
	_, _ = h.Write([]byte(name))
	return h.Sum32()
}

// EncodeContinue makes the continue token that resumes a listing after name.
func EncodeContinue(after string) string {
	b := make([]byte, len(after), len(after)+4)
	copy(b, after)
	b = binary.BigEndian.AppendUint32(b, tokenSum(after))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeContinue reads a token made by EncodeContinue ("" gives ""). Any
// other token is a BadRequest error.
func DecodeContinue(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	bad := func(why string) error {
		shown := token
		if len(shown) > 64 {
			shown = shown[:64] + "…"
		}
		return Errorf(itemapi.ReasonBadRequest, "continue token %q is not valid (%s); start the listing again without one", shown, why)
	}
	if len(token) > base64.RawURLEncoding.EncodedLen(itemapi.MaxNameBytes+4) {
		return "", bad("too long")
	}
	// The decoder skips \r and \n: refuse every byte outside the alphabet
	// first, so that one name has exactly one token (found by fuzzing).
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", bad("not base64url")
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil {
		return "", bad("not base64url")
	}
	if len(b) < 5 {
		return "", bad("too short")
	}
	name := string(b[:len(b)-4])
	if binary.BigEndian.Uint32(b[len(b)-4:]) != tokenSum(name) {
		return "", bad("checksum mismatch")
	}
	if err := itemapi.ValidateName(name); err != nil {
		return "", bad(err.Error())
	}
	return name, nil
}

// Watch implements Watcher over the index.
func (x *Index[V]) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil, Errorf(itemapi.ReasonUnavailable, "source is closed")
	}
	names := make([]string, 0, x.tree.Len())
	x.tree.Ascend(func(e entry[V]) bool { names = append(names, e.name); return true })
	sub := &subscriber{wake: make(chan struct{}, 1), done: make(chan struct{}), max: x.maxQueue}
	x.subs[sub] = struct{}{}
	x.mu.Unlock()

	out := make(chan itemapi.WatchEvent, 256)
	go func() {
		defer close(out)
		defer x.unsubscribe(sub)
		send := func(ev itemapi.WatchEvent) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			case <-sub.done:
				return false
			}
		}
		for _, n := range names {
			if !send(itemapi.WatchEvent{Type: itemapi.Added, Name: n}) {
				return
			}
		}
		names = nil
		if !send(itemapi.WatchEvent{Type: itemapi.Synced}) {
			return
		}
		for {
			q, overflow := sub.take()
			for _, ev := range q {
				if !send(ev) {
					return
				}
			}
			if overflow {
				return
			}
			select {
			case <-sub.wake:
			case <-ctx.Done():
				return
			case <-sub.done:
				// Deliver what was queued before the close.
				q, _ := sub.take()
				for _, ev := range q {
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
				}
				return
			}
		}
	}()
	return out, nil
}

// Watchers is the number of open watch streams.
func (x *Index[V]) Watchers() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.subs)
}

// Close ends every watch stream; the index stays readable.
func (x *Index[V]) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	x.closed = true
	for s := range x.subs {
		close(s.done)
		delete(x.subs, s)
	}
}

func (x *Index[V]) unsubscribe(s *subscriber) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.subs[s]; ok {
		delete(x.subs, s)
		close(s.done)
	}
}

// publish is called with x.mu held for writing.
func (x *Index[V]) publish(ev itemapi.WatchEvent) {
	for s := range x.subs {
		s.push(ev)
	}
}

type subscriber struct {
	mu       sync.Mutex
	queue    []itemapi.WatchEvent
	overflow bool
	max      int
	wake     chan struct{}
	done     chan struct{}
}

func (s *subscriber) push(ev itemapi.WatchEvent) {
	s.mu.Lock()
	if len(s.queue) >= s.max {
		s.overflow = true
	} else if !s.overflow {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) take() ([]itemapi.WatchEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q, s.overflow
}
