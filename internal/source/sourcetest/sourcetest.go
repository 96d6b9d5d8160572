// Package sourcetest is the conformance suite every source driver passes. A
// driver's own test supplies a Harness (how to make an empty backend and how
// to change it from outside, as a user would) and calls RunConformanceTests.
package sourcetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// MakeFunc returns a driver over a fresh, empty backend, and the Backend
// through which the suite changes that backend from outside. Anything it
// starts is stopped by t.Cleanup.
type MakeFunc func(ctx context.Context, t *testing.T) (source.Driver, Backend, error)

// Backend changes the backend under a driver the way a user would.
type Backend interface {
	// Put makes an item appear in the backend the way a user would (write a
	// file, upload an object, produce a message). name is a suggestion; Put
	// returns the name the driver will list the item under.
	Put(ctx context.Context, t *testing.T, name string, data []byte) (string, error)
	// Remove makes an item disappear from the backend the way a user would
	// (for Kafka, where messages cannot be removed, by acknowledging it).
	Remove(ctx context.Context, t *testing.T, name string) error
}

// Options describe the driver under test.
type Options struct {
	// Watch, Submit, Ack: whether the driver is configured to support each
	// capability. When false, the suite checks that the operation is refused
	// with MethodNotAllowed.
	Watch, Submit, Ack bool
	// AckRemoves: an acknowledged item leaves the listing (true for every
	// driver configured to archive, move or delete).
	AckRemoves bool
	// Visible is how long a change made through the harness may take to
	// show (polling drivers); default 10 s.
	Visible time.Duration
	// DataMatches checks the data Get returns for an item put with data.
	// Default: equal as JSON values.
	DataMatches func(put []byte, got json.RawMessage) error
	// Archived, when set, checks where an acknowledged item went.
	Archived func(ctx context.Context, t *testing.T, name string, outcome itemapi.Outcome) error
	// Names are the item names to use (default: a mix with "/", spaces,
	// dots and non-ASCII). Drivers that choose names themselves ignore them.
	Names []string
	// PagingItems is how many items the paging test uses (default 60).
	PagingItems int
	// Redrive: the driver is configured to put dead-lettered items back
	// (source.Redriver). When false, the suite checks that Redrive is
	// refused with MethodNotAllowed.
	Redrive bool
	// RedriveRenames: a redriven item comes back under a new name (a
	// log-like source appends it anew), so a queue can never already hold
	// it and the Conflict check is skipped.
	RedriveRenames bool
}

var defaultNames = []string{"a.json", "b.json", "dir/c.json", "dir/sub/d e.json", "é-ünicode.json", "z.json"}

func (o *Options) defaults() {
	if o.Visible == 0 {
		o.Visible = 10 * time.Second
	}
	if o.DataMatches == nil {
		o.DataMatches = jsonEqual
	}
	if o.Names == nil {
		o.Names = defaultNames
	}
	if o.PagingItems == 0 {
		o.PagingItems = 60
	}
}

// RunConformanceTests runs the suite against the harness's driver.
func RunConformanceTests(t *testing.T, mk MakeFunc, opts Options) {
	t.Helper()
	opts.defaults()
	s := &suite{mk: mk, o: opts}
	t.Run("Empty", s.testEmpty)
	t.Run("PutListGet", s.testPutListGet)
	t.Run("NotFound", s.testNotFound)
	t.Run("BadNames", s.testBadNames)
	t.Run("Sorted", s.testSorted)
	t.Run("PagingStable", s.testPagingStable)
	t.Run("BadContinue", s.testBadContinue)
	t.Run("ContextCancelled", s.testContextCancelled)
	t.Run("ConcurrentReaders", s.testConcurrentReaders)
	t.Run("CloseIdempotent", s.testClose)
	t.Run("Watch", s.testWatch)
	t.Run("Submit", s.testSubmit)
	t.Run("Ack", s.testAck)
	t.Run("Redrive", s.testRedrive)
}

type suite struct {
	mk MakeFunc
	o  Options
	b  Backend
}

func (s *suite) open(t *testing.T) (context.Context, *source.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	d, b, err := s.mk(ctx, t)
	if err != nil {
		t.Fatalf("make driver: %v", err)
	}
	s.b = b
	src := source.New(d)
	t.Cleanup(func() { _ = src.Close() })
	return ctx, src
}

func (s *suite) put(ctx context.Context, t *testing.T, name string, data []byte) string {
	t.Helper()
	got, err := s.b.Put(ctx, t, name, data)
	if err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
	return got
}

func (s *suite) remove(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	if err := s.b.Remove(ctx, t, name); err != nil {
		t.Fatalf("Remove(%q): %v", name, err)
	}
}

// eventually polls cond until it returns nil or the Visible time is over.
func (s *suite) eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(s.o.Visible)
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, s.o.Visible, err)
		}
		time.Sleep(delay)
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func listAll(ctx context.Context, src *source.Source, limit int) ([]string, error) {
	return src.ListAll(ctx, limit)
}

// waitListed waits until the listing is exactly want (order included).
func (s *suite) waitListed(ctx context.Context, t *testing.T, src *source.Source, want []string) {
	t.Helper()
	want = slices.Clone(want)
	sort.Strings(want)
	s.eventually(t, "listing", func() error {
		got, err := listAll(ctx, src, 0)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			return fmt.Errorf("listed %q, want %q", got, want)
		}
		return nil
	})
}

func data(i int, name string) []byte {
	return []byte(fmt.Sprintf(`{"n":%d,"name":%q,"nested":{"ok":true}}`, i, name))
}

func (s *suite) testEmpty(t *testing.T) {
	ctx, src := s.open(t)
	l, err := src.List(ctx, source.ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(l.Items) != 0 || l.Continue != "" {
		t.Fatalf("empty source listed %q (continue %q)", l.Items, l.Continue)
	}
	if l.Items == nil {
		t.Fatalf("empty list must be [] not null")
	}
	if l.Kind != itemapi.KindItemList || l.APIVersion != itemapi.APIVersion {
		t.Fatalf("list document: kind %q apiVersion %q", l.Kind, l.APIVersion)
	}
	if n, ok := src.Len(); ok && n != 0 {
		t.Fatalf("Len of empty source = %d", n)
	}
}

func (s *suite) testPutListGet(t *testing.T) {
	ctx, src := s.open(t)
	var names []string
	puts := map[string][]byte{}
	for i, n := range s.o.Names {
		d := data(i, n)
		got := s.put(ctx, t, n, d)
		names = append(names, got)
		puts[got] = d
	}
	s.waitListed(ctx, t, src, names)
	for _, n := range names {
		it, err := src.Get(ctx, n)
		if err != nil {
			t.Fatalf("Get(%q): %v", n, err)
		}
		if it.Name != n || it.Kind != itemapi.KindItem || it.APIVersion != itemapi.APIVersion {
			t.Fatalf("Get(%q) = name %q kind %q apiVersion %q", n, it.Name, it.Kind, it.APIVersion)
		}
		if err := it.Validate(); err != nil {
			t.Fatalf("Get(%q) returned an invalid item: %v", n, err)
		}
		if err := s.o.DataMatches(puts[n], it.Data); err != nil {
			t.Fatalf("Get(%q) data: %v", n, err)
		}
	}
	if n, ok := src.Len(); ok && n != len(names) {
		t.Fatalf("Len = %d, want %d", n, len(names))
	}
}

func (s *suite) testNotFound(t *testing.T) {
	ctx, src := s.open(t)
	present := s.put(ctx, t, s.o.Names[0], data(0, "x"))
	s.waitListed(ctx, t, src, []string{present})
	for _, n := range []string{"missing", present + ".nope", "dir/missing"} {
		_, err := src.Get(ctx, n)
		if !itemapi.IsNotFound(err) {
			t.Fatalf("Get(%q) of a missing item: got %v, want NotFound", n, err)
		}
	}
}

func (s *suite) testBadNames(t *testing.T) {
	ctx, src := s.open(t)
	for _, n := range []string{"", "a\x00b", strings.Repeat("x", itemapi.MaxNameBytes+1), "\xff\xfe"} {
		_, err := src.Get(ctx, n)
		if !itemapi.IsBadRequest(err) {
			t.Fatalf("Get(%q): got %v, want BadRequest", n, err)
		}
	}
}

func (s *suite) testSorted(t *testing.T) {
	ctx, src := s.open(t)
	var names []string
	// Put in reverse order so that insertion order is not sorted order.
	for i := len(s.o.Names) - 1; i >= 0; i-- {
		names = append(names, s.put(ctx, t, s.o.Names[i], data(i, s.o.Names[i])))
	}
	s.waitListed(ctx, t, src, names)
	for _, limit := range []int{1, 2, 3, 0} {
		got, err := listAll(ctx, src, limit)
		if err != nil {
			t.Fatalf("List(limit %d): %v", limit, err)
		}
		if !sort.StringsAreSorted(got) {
			t.Fatalf("List(limit %d) not sorted: %q", limit, got)
		}
		if len(got) != len(names) {
			t.Fatalf("List(limit %d) = %d names, want %d", limit, len(got), len(names))
		}
	}
	l, err := src.List(ctx, source.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 2 || l.Continue == "" {
		t.Fatalf("List(limit 2) of %d items = %q continue %q", len(names), l.Items, l.Continue)
	}
}

// testPagingStable lists in small pages while items before and after the
// cursor are added and removed: every item present throughout is listed
// exactly once, in order, and no name is listed twice.
func (s *suite) testPagingStable(t *testing.T) {
	ctx, src := s.open(t)
	n := s.o.PagingItems
	var stable []string
	var churn []string
	for i := 0; i < n; i++ {
		name := s.put(ctx, t, fmt.Sprintf("p/%04d.json", i), data(i, "p"))
		if i%3 == 0 {
			churn = append(churn, name)
		} else {
			stable = append(stable, name)
		}
	}
	all := append(slices.Clone(stable), churn...)
	s.waitListed(ctx, t, src, all)

	var listed []string
	opts := source.ListOptions{Limit: 7}
	added := 0
	for page := 0; ; page++ {
		l, err := src.List(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		listed = append(listed, l.Items...)
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
		// Between pages: remove a churn item, and add one new item.
		if len(churn) > 0 {
			victim := churn[len(churn)-1]
			churn = churn[:len(churn)-1]
			s.remove(ctx, t, victim)
			s.eventually(t, "removal visible", func() error {
				if _, err := src.Get(ctx, victim); !itemapi.IsNotFound(err) {
					return fmt.Errorf("Get(%q) after removal: %v", victim, err)
				}
				return nil
			})
		}
		newName := s.put(ctx, t, fmt.Sprintf("p/%04d.json", n+added), data(n+added, "new"))
		added++
		s.eventually(t, "addition visible", func() error {
			_, err := src.Get(ctx, newName)
			return err
		})
	}
	seen := map[string]int{}
	for _, name := range listed {
		seen[name]++
		if seen[name] > 1 {
			t.Fatalf("%q listed twice across pages", name)
		}
	}
	if !sort.StringsAreSorted(listed) {
		t.Fatalf("paged listing not sorted: %q", listed)
	}
	for _, name := range stable {
		if seen[name] != 1 {
			t.Fatalf("%q, present throughout, listed %d times", name, seen[name])
		}
	}
}

func (s *suite) testBadContinue(t *testing.T) {
	ctx, src := s.open(t)
	// Garbage of every shape is refused, including tokens that are valid
	// base64 (a corrupted or hand-made token must not read as "no more
	// items": a client would believe its listing complete).
	for _, tok := range []string{"%%%not a token%%%", "zzzz", "YQ", "bm90LWEtdG9rZW4", "AAAAAAAA", "////"} {
		_, err := src.List(ctx, source.ListOptions{Limit: 1, Continue: tok})
		if !itemapi.IsBadRequest(err) {
			t.Fatalf("List with the garbage continue token %q: got %v, want BadRequest", tok, err)
		}
	}
	_, err := src.List(ctx, source.ListOptions{Limit: 1, Continue: source.EncodeContinue("a")})
	if err != nil {
		t.Fatalf("List with a well-formed continue token: %v", err)
	}
	_, err = src.List(ctx, source.ListOptions{Limit: -1})
	if !itemapi.IsBadRequest(err) {
		t.Fatalf("List with limit -1: got %v, want BadRequest", err)
	}
}

func (s *suite) testContextCancelled(t *testing.T) {
	ctx, src := s.open(t)
	name := s.put(ctx, t, s.o.Names[0], data(0, "x"))
	s.waitListed(ctx, t, src, []string{name})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.List(cctx, source.ListOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a cancelled context: %v", err)
	}
	if _, err := src.Get(cctx, name); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if s.o.Watch {
		// A watch ends (its channel closes) when its context ends.
		wctx, wcancel := context.WithCancel(ctx)
		ch, err := src.Watch(wctx)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		wcancel()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("watch channel still open 5 s after its context was cancelled")
			}
		}
	}
}

func (s *suite) testConcurrentReaders(t *testing.T) {
	ctx, src := s.open(t)
	var names []string
	for i := 0; i < 20; i++ {
		names = append(names, s.put(ctx, t, fmt.Sprintf("c/%02d.json", i), data(i, "c")))
	}
	s.waitListed(ctx, t, src, names)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				got, err := listAll(ctx, src, 3)
				if err != nil {
					errs <- err
					return
				}
				if len(got) < len(names) {
					errs <- fmt.Errorf("reader %d listed %d names, want at least %d", g, len(got), len(names))
					return
				}
				if _, err := src.Get(ctx, names[(g+i)%len(names)]); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	// A writer adds items while the readers read.
	for i := 20; i < 30; i++ {
		s.put(ctx, t, fmt.Sprintf("c/%02d.json", i), data(i, "c"))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (s *suite) testClose(t *testing.T) {
	ctx, src := s.open(t)
	if err := src.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := src.List(ctx, source.ListOptions{}); err == nil {
		t.Fatal("List after Close succeeded")
	}
}

// collector reads a watch stream in the background.
type collector struct {
	mu     sync.Mutex
	events []itemapi.WatchEvent
	closed bool
}

func collect(ch <-chan itemapi.WatchEvent) *collector {
	c := &collector{}
	go func() {
		for ev := range ch {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
	}()
	return c
}

func (c *collector) snapshot() ([]itemapi.WatchEvent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events), c.closed
}

func (s *suite) testWatch(t *testing.T) {
	ctx, src := s.open(t)
	if !s.o.Watch {
		if _, err := src.Watch(ctx); !itemapi.IsMethodNotAllowed(err) {
			t.Fatalf("Watch on a source without watch: got %v, want MethodNotAllowed", err)
		}
		return
	}
	first := s.put(ctx, t, "w/0-existing.json", data(0, "w"))
	s.waitListed(ctx, t, src, []string{first})

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := src.Watch(wctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	c := collect(ch)
	s.eventually(t, "initial events", func() error {
		evs, _ := c.snapshot()
		want := []itemapi.WatchEvent{{Type: itemapi.Added, Name: first}, {Type: itemapi.Synced}}
		if !reflect.DeepEqual(evs, want) {
			return fmt.Errorf("events %v, want %v", evs, want)
		}
		return nil
	})
	a := s.put(ctx, t, "w/1-a.json", data(1, "a"))
	s.eventually(t, "ADDED a", func() error { return hasEvents(c, itemapi.WatchEvent{Type: itemapi.Added, Name: a}) })
	b := s.put(ctx, t, "w/2-b.json", data(2, "b"))
	s.eventually(t, "ADDED b", func() error { return hasEvents(c, itemapi.WatchEvent{Type: itemapi.Added, Name: b}) })
	s.remove(ctx, t, a)
	s.eventually(t, "DELETED a", func() error { return hasEvents(c, itemapi.WatchEvent{Type: itemapi.Deleted, Name: a}) })
	s.remove(ctx, t, first)
	s.eventually(t, "DELETED first", func() error { return hasEvents(c, itemapi.WatchEvent{Type: itemapi.Deleted, Name: first}) })

	evs, _ := c.snapshot()
	want := []itemapi.WatchEvent{
		{Type: itemapi.Added, Name: first}, {Type: itemapi.Synced},
		{Type: itemapi.Added, Name: a}, {Type: itemapi.Added, Name: b},
		{Type: itemapi.Deleted, Name: a}, {Type: itemapi.Deleted, Name: first},
	}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("watch events\n got %v\nwant %v", evs, want)
	}
	cancel()
	s.eventually(t, "watch closed after cancel", func() error {
		if _, closed := c.snapshot(); !closed {
			return errors.New("still open")
		}
		return nil
	})
}

func hasEvents(c *collector, want ...itemapi.WatchEvent) error {
	evs, _ := c.snapshot()
	for _, w := range want {
		if !slices.Contains(evs, w) {
			return fmt.Errorf("no %v in %v", w, evs)
		}
	}
	return nil
}

func (s *suite) testSubmit(t *testing.T) {
	ctx, src := s.open(t)
	body := json.RawMessage(`{"job":"render","frames":[1,2,3]}`)
	if !s.o.Submit {
		if _, err := src.Submit(ctx, body); !itemapi.IsMethodNotAllowed(err) {
			t.Fatalf("Submit on a source without submit: got %v, want MethodNotAllowed", err)
		}
		return
	}
	it, err := src.Submit(ctx, body)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if err := itemapi.ValidateName(it.Name); err != nil {
		t.Fatalf("Submit returned a bad name: %v", err)
	}
	s.eventually(t, "submitted item visible", func() error {
		got, err := src.Get(ctx, it.Name)
		if err != nil {
			return err
		}
		return s.o.DataMatches(body, got.Data)
	})
	it2, err := src.Submit(ctx, body)
	if err != nil {
		t.Fatalf("second Submit: %v", err)
	}
	if it2.Name == it.Name {
		t.Fatalf("two submissions got the same name %q", it.Name)
	}
	s.waitListed(ctx, t, src, []string{it.Name, it2.Name})
	for _, bad := range []string{`not json`, `[1,2]`, `"str"`, `null`, `{"a":`} {
		if _, err := src.Submit(ctx, json.RawMessage(bad)); !itemapi.IsBadRequest(err) {
			t.Fatalf("Submit(%s): got %v, want BadRequest", bad, err)
		}
	}
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), int(src.MaxSubmitBytes()))...)
	big = append(big, `"}`...)
	if _, err := src.Submit(ctx, big); !itemapi.IsTooLarge(err) {
		t.Fatalf("Submit of %d bytes: got %v, want TooLarge", len(big), err)
	}
}

func (s *suite) testAck(t *testing.T) {
	ctx, src := s.open(t)
	ok := s.put(ctx, t, "k/ok.json", data(1, "ok"))
	bad := s.put(ctx, t, "k/bad.json", data(2, "bad"))
	s.waitListed(ctx, t, src, []string{ok, bad})
	if !s.o.Ack {
		if err := src.Ack(ctx, ok, itemapi.Succeeded); !itemapi.IsMethodNotAllowed(err) {
			t.Fatalf("Ack on a source without ack: got %v, want MethodNotAllowed", err)
		}
		return
	}
	if err := src.Ack(ctx, ok, "maybe"); !itemapi.IsBadRequest(err) {
		t.Fatalf("Ack with outcome %q: got %v, want BadRequest", "maybe", err)
	}
	if err := src.Ack(ctx, ok, itemapi.Succeeded); err != nil {
		t.Fatalf("Ack(%q, succeeded): %v", ok, err)
	}
	if err := src.Ack(ctx, bad, itemapi.Failed); err != nil {
		t.Fatalf("Ack(%q, failed): %v", bad, err)
	}
	if s.o.AckRemoves {
		s.waitListed(ctx, t, src, nil)
		if _, err := src.Get(ctx, ok); !itemapi.IsNotFound(err) {
			t.Fatalf("Get after ack: got %v, want NotFound", err)
		}
		if err := src.Ack(ctx, ok, itemapi.Succeeded); !itemapi.IsNotFound(err) {
			t.Fatalf("second Ack of %q: got %v, want NotFound", ok, err)
		}
	}
	if err := src.Ack(ctx, "k/never-there.json", itemapi.Succeeded); !itemapi.IsNotFound(err) {
		t.Fatalf("Ack of a missing item: got %v, want NotFound", err)
	}
	if s.o.Archived != nil {
		if err := s.o.Archived(ctx, t, ok, itemapi.Succeeded); err != nil {
			t.Fatalf("archive of %q: %v", ok, err)
		}
		if err := s.o.Archived(ctx, t, bad, itemapi.Failed); err != nil {
			t.Fatalf("archive of %q: %v", bad, err)
		}
	}
}

func jsonEqual(put []byte, got json.RawMessage) error {
	var a, b any
	if err := json.Unmarshal(put, &a); err != nil {
		return fmt.Errorf("put data: %w", err)
	}
	if err := json.Unmarshal(got, &b); err != nil {
		return fmt.Errorf("got data %s: %w", got, err)
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("got %s, want %s", got, put)
	}
	return nil
}

// testRedrive: an item acknowledged as failed comes back with Redrive,
// listed under the name Redrive returns, with the same data and an ADDED
// event; the dead letter no longer holds it (a second Redrive is a
// NotFound); a name never dead-lettered is a NotFound; and, for drivers
// that keep the name, a queue that already holds the name is a Conflict.
func (s *suite) testRedrive(t *testing.T) {
	ctx, src := s.open(t)
	if !s.o.Redrive {
		if _, err := src.Redrive(ctx, s.o.Names[0]); !itemapi.IsMethodNotAllowed(err) {
			t.Fatalf("Redrive on a source without redrive: got %v, want MethodNotAllowed", err)
		}
		return
	}
	if !src.CanRedrive() {
		t.Fatal("Options.Redrive is set but the driver is no source.Redriver")
	}
	put := data(7, "redrive")
	name := s.put(ctx, t, "r/dead.json", put)
	s.waitListed(ctx, t, src, []string{name})

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := src.Watch(wctx)
	if err != nil && !itemapi.IsMethodNotAllowed(err) {
		t.Fatalf("Watch: %v", err)
	}
	var c *collector
	if err == nil {
		c = collect(ch)
		s.eventually(t, "initial events", func() error { return hasEvents(c, itemapi.WatchEvent{Type: itemapi.Synced}) })
	}

	if err := src.Ack(ctx, name, itemapi.Failed); err != nil {
		t.Fatalf("Ack(%q, failed): %v", name, err)
	}
	s.waitListed(ctx, t, src, nil)
	it, err := src.Redrive(ctx, name)
	if err != nil {
		t.Fatalf("Redrive(%q): %v", name, err)
	}
	if it.Kind != itemapi.KindItem || it.APIVersion != itemapi.APIVersion || itemapi.ValidateName(it.Name) != nil {
		t.Fatalf("Redrive(%q) answered %+v", name, it)
	}
	if !s.o.RedriveRenames && it.Name != name {
		t.Fatalf("Redrive(%q) renamed the item to %q", name, it.Name)
	}
	s.waitListed(ctx, t, src, []string{it.Name})
	got, err := src.Get(ctx, it.Name)
	if err != nil {
		t.Fatalf("Get(%q) after Redrive: %v", it.Name, err)
	}
	if err := s.o.DataMatches(put, got.Data); err != nil {
		t.Fatalf("Get(%q) after Redrive: data %v", it.Name, err)
	}
	if c != nil {
		s.eventually(t, "ADDED after redrive", func() error {
			evs, _ := c.snapshot()
			del := slices.Index(evs, itemapi.WatchEvent{Type: itemapi.Deleted, Name: name})
			if del < 0 {
				return fmt.Errorf("no DELETED %q in %v", name, evs)
			}
			if !slices.ContainsFunc(evs[del+1:], func(ev itemapi.WatchEvent) bool {
				return ev.Type == itemapi.Added && ev.Name == it.Name
			}) {
				return fmt.Errorf("no ADDED %q after DELETED %q in %v", it.Name, name, evs)
			}
			return nil
		})
	}
	// The dead letter no longer holds the item: it is in the queue again.
	if _, err := src.Redrive(ctx, name); !itemapi.IsNotFound(err) {
		t.Fatalf("second Redrive(%q): got %v, want NotFound", name, err)
	}
	if it.Name != name {
		if _, err := src.Redrive(ctx, it.Name); !itemapi.IsNotFound(err) {
			t.Fatalf("Redrive(%q) of an item in the queue: got %v, want NotFound", it.Name, err)
		}
	}
	if _, err := src.Redrive(ctx, "r/never-failed.json"); !itemapi.IsNotFound(err) {
		t.Fatalf("Redrive of a name never dead-lettered: got %v, want NotFound", err)
	}
	if err := src.Ack(ctx, it.Name, itemapi.Cancelled); err != nil {
		t.Fatalf("Ack(%q, cancelled): %v", it.Name, err)
	}
	s.waitListed(ctx, t, src, nil)
	if s.o.RedriveRenames {
		// A cancelled item is in the dead letter too.
		again, err := src.Redrive(ctx, it.Name)
		if err != nil {
			t.Fatalf("Redrive(%q) of a cancelled item: %v", it.Name, err)
		}
		s.waitListed(ctx, t, src, []string{again.Name})
		return
	}
	// The queue holds the name again (a user put a new item there): the
	// dead-lettered one cannot come back over it.
	same := s.put(ctx, t, it.Name, data(8, "newer"))
	s.waitListed(ctx, t, src, []string{same})
	if _, err := src.Redrive(ctx, it.Name); !itemapi.IsConflict(err) {
		t.Fatalf("Redrive(%q) while the queue holds that name: got %v, want Conflict", it.Name, err)
	}
	s.remove(ctx, t, same)
	s.waitListed(ctx, t, src, nil)
	back, err := src.Redrive(ctx, it.Name)
	if err != nil {
		t.Fatalf("Redrive(%q) of a cancelled item: %v", it.Name, err)
	}
	s.waitListed(ctx, t, src, []string{back.Name})
	got, err = src.Get(ctx, back.Name)
	if err != nil {
		t.Fatalf("Get(%q) after the second Redrive: %v", back.Name, err)
	}
	if err := s.o.DataMatches(put, got.Data); err != nil {
		t.Fatalf("Get(%q) after the second Redrive: data %v", back.Name, err)
	}
}
