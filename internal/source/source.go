// Package source is the portable Source type over a small driver interface,
// in the style of gocloud.dev/blob: each backend (memory, directory, bucket,
// Kafka) implements Driver and, optionally, the Watcher, Submitter, Acker,
// ReadyChecker and Counter capabilities; the checks every caller needs
// (names, outcomes, sizes, closed sources, context cancellation, error
// classification) live once in Source.
package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/itemq/itemq/itemapi"
)

// ListOptions select one page of a listing.
type ListOptions struct {
	// Limit is the most names to return; 0 means all.
	Limit int
	// Continue is the token of the previous page's answer, or "" for the
	// first page.
	Continue string
}

// Driver is what each backend implements. Implementations must be safe for
// concurrent use. Errors should be classified by ErrorReason, or carry a
// reason themselves (Errorf, *itemapi.Status).
type Driver interface {
	// List returns up to opts.Limit names in byte order, starting after the
	// position opts.Continue encodes, and the token of the next page ("" on
	// the last page). A page boundary must stay correct while items come and
	// go: names present throughout a paged listing are returned exactly once.
	List(ctx context.Context, opts ListOptions) (names []string, next string, err error)
	// Get returns the data of one item, a JSON value.
	Get(ctx context.Context, name string) (json.RawMessage, error)
	// ErrorReason classifies an error this driver returned.
	ErrorReason(err error) itemapi.Reason
	// Close releases the driver's resources.
	Close() error
}

// Watcher is a driver that streams changes. The channel first carries one
// Added event per existing item, then one Synced event, then changes in the
// order they happened. It is closed when ctx ends, when the driver closes,
// or when the watcher fell too far behind (the caller then watches again and
// reconciles; itemapi.Client does this).
type Watcher interface {
	Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error)
}

// Submitter is a driver that accepts new items. It returns the new item's
// name. Drivers may return a MethodNotAllowed error when submissions are
// disabled by configuration.
type Submitter interface {
	Submit(ctx context.Context, data json.RawMessage) (name string, err error)
}

// Acker is a driver that archives finished items. Acking an item that is
// not (or no longer) there is a NotFound error.
type Acker interface {
	Ack(ctx context.Context, name string, outcome itemapi.Outcome) error
}

// Redriver is a driver that can put a dead-lettered item back in the
// queue: an item acknowledged as failed (or cancelled) returns as new work.
// It returns the item's name in the queue, which may differ from name (a
// log-like source appends it anew). An item the dead letter does not hold
// is a NotFound error; a queue that already holds an item of that name is
// a Conflict error.
type Redriver interface {
	Redrive(ctx context.Context, name string) (newName string, err error)
}

// ReadyChecker is a driver that can tell whether its backend is reachable.
type ReadyChecker interface {
	Ready(ctx context.Context) error
}

// Counter is a driver that knows how many items it holds, cheaply.
type Counter interface {
	Len() int
}

// MetricsProvider is a driver with Prometheus metrics of its own; the
// ambassador registers them beside its own.
type MetricsProvider interface {
	Collectors() []prometheus.Collector
}

// Collectors returns the driver's metrics (none when it has no
// MetricsProvider).
func (s *Source) Collectors() []prometheus.Collector {
	if m, ok := s.d.(MetricsProvider); ok {
		return m.Collectors()
	}
	return nil
}

// Source is the portable type callers use. Create one with New.
type Source struct {
	d         Driver
	maxSubmit int64
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// DefaultMaxSubmitBytes bounds a submitted item's data unless an option says
// otherwise: itemapi.MaxDataBytes, which no option can raise.
const DefaultMaxSubmitBytes = itemapi.MaxDataBytes

// Option configures a Source.
type Option func(*Source)

// WithMaxSubmitBytes bounds the size of submitted data below
// itemapi.MaxDataBytes.
func WithMaxSubmitBytes(n int64) Option { return func(s *Source) { s.maxSubmit = n } }

// New returns a Source over the driver.
func New(d Driver, opts ...Option) *Source {
	s := &Source{d: d, maxSubmit: DefaultMaxSubmitBytes}
	for _, o := range opts {
		o(s)
	}
	if s.maxSubmit <= 0 || s.maxSubmit > itemapi.MaxDataBytes {
		s.maxSubmit = itemapi.MaxDataBytes
	}
	return s
}

// Driver returns the underlying driver (for tests and driver-specific use).
func (s *Source) Driver() Driver { return s.d }

// MaxSubmitBytes is the size limit of submitted data.
func (s *Source) MaxSubmitBytes() int64 { return s.maxSubmit }

// List returns one page of item names.
func (s *Source) List(ctx context.Context, opts ListOptions) (*itemapi.ItemList, error) {
	if err := s.check(ctx, "list"); err != nil {
		return nil, err
	}
	if opts.Limit < 0 {
		return nil, Errorf(itemapi.ReasonBadRequest, "list: limit %d is negative", opts.Limit)
	}
	names, next, err := s.d.List(ctx, opts)
	if err != nil {
		return nil, s.wrap(ctx, "list", "", err)
	}
	return itemapi.NewItemList(names, next), nil
}

// ListAll follows the pages of a listing to its end.
func (s *Source) ListAll(ctx context.Context, pageSize int) ([]string, error) {
	var all []string
	opts := ListOptions{Limit: pageSize}
	for {
		l, err := s.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, l.Items...)
		if l.Continue == "" {
			return all, nil
		}
		opts.Continue = l.Continue
	}
}

// Get returns one item.
func (s *Source) Get(ctx context.Context, name string) (*itemapi.Item, error) {
	if err := s.check(ctx, "get"); err != nil {
		return nil, err
	}
	if err := itemapi.ValidateName(name); err != nil {
		return nil, &Error{Op: "get", Name: name, Reason: itemapi.ReasonBadRequest, Err: err}
	}
	data, err := s.d.Get(ctx, name)
	if err != nil {
		return nil, s.wrap(ctx, "get", name, err)
	}
	// The last net under every driver: an item an executor would refuse
	// is refused here, with the reason.
	if err := itemapi.CheckDataSize(data); err != nil {
		return nil, &Error{Op: "get", Name: name, Reason: itemapi.ReasonOf(err), Err: err}
	}
	return itemapi.NewItem(name, data), nil
}

// CanWatch reports whether the driver streams changes.
func (s *Source) CanWatch() bool { _, ok := s.d.(Watcher); return ok }

// Watch streams the items and their changes; see Watcher.
func (s *Source) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	if err := s.check(ctx, "watch"); err != nil {
		return nil, err
	}
	w, ok := s.d.(Watcher)
	if !ok {
		return nil, Errorf(itemapi.ReasonMethodNotAllowed, "watch: this source does not stream changes")
	}
	ch, err := w.Watch(ctx)
	if err != nil {
		return nil, s.wrap(ctx, "watch", "", err)
	}
	return ch, nil
}

// Submit adds an item with the given data (a JSON object) and returns it.
func (s *Source) Submit(ctx context.Context, data json.RawMessage) (*itemapi.Item, error) {
	if err := s.check(ctx, "submit"); err != nil {
		return nil, err
	}
	sub, ok := s.d.(Submitter)
	if !ok {
		return nil, Errorf(itemapi.ReasonMethodNotAllowed, "submit: this source does not accept submissions")
	}
	if int64(len(data)) > s.maxSubmit {
		return nil, Errorf(itemapi.ReasonTooLarge, "submit: body is %d bytes, more than the limit of %d", len(data), s.maxSubmit)
	}
	if err := itemapi.CheckDataSize(data); err != nil {
		return nil, &Error{Op: "submit", Reason: itemapi.ReasonOf(err), Err: err}
	}
	if err := checkObject(data); err != nil {
		return nil, &Error{Op: "submit", Reason: itemapi.ReasonBadRequest, Err: err}
	}
	name, err := sub.Submit(ctx, data)
	if err != nil {
		return nil, s.wrap(ctx, "submit", "", err)
	}
	// Answer with the item as the source serves it (a driver may serve
	// file attributes rather than the body); the body if it cannot be read
	// back yet.
	if got, err := s.d.Get(ctx, name); err == nil {
		data = got
	}
	return itemapi.NewItem(name, data), nil
}

// Ack tells the source that an item is finished.
func (s *Source) Ack(ctx context.Context, name string, outcome itemapi.Outcome) error {
	if err := s.check(ctx, "ack"); err != nil {
		return err
	}
	a, ok := s.d.(Acker)
	if !ok {
		return Errorf(itemapi.ReasonMethodNotAllowed, "ack: this source does not archive items")
	}
	if err := itemapi.ValidateName(name); err != nil {
		return &Error{Op: "ack", Name: name, Reason: itemapi.ReasonBadRequest, Err: err}
	}
	if _, err := itemapi.ParseOutcome(string(outcome)); err != nil {
		return &Error{Op: "ack", Name: name, Reason: itemapi.ReasonBadRequest, Err: err}
	}
	if outcome == itemapi.Cancelled {
		// Drivers keep cancelled items with the failed ones: in the dead
		// letter, where Redrive finds them.
		outcome = itemapi.Failed
	}
	if err := a.Ack(ctx, name, outcome); err != nil {
		return s.wrap(ctx, "ack", name, err)
	}
	return nil
}

// CanRedrive reports whether the driver can put dead-lettered items back.
func (s *Source) CanRedrive() bool { _, ok := s.d.(Redriver); return ok }

// Redrive puts a dead-lettered item back in the queue and returns it; see
// Redriver.
func (s *Source) Redrive(ctx context.Context, name string) (*itemapi.Item, error) {
	if err := s.check(ctx, "redrive"); err != nil {
		return nil, err
	}
	r, ok := s.d.(Redriver)
	if !ok {
		return nil, Errorf(itemapi.ReasonMethodNotAllowed, "redrive: this source cannot put dead-lettered items back")
	}
	if err := itemapi.ValidateName(name); err != nil {
		return nil, &Error{Op: "redrive", Name: name, Reason: itemapi.ReasonBadRequest, Err: err}
	}
	newName, err := r.Redrive(ctx, name)
	if err != nil {
		return nil, s.wrap(ctx, "redrive", name, err)
	}
	data, err := s.d.Get(ctx, newName)
	if err != nil {
		// Redriven, but already gone again (taken by a fast consumer):
		// answer with the name alone.
		data = json.RawMessage("{}")
	}
	return itemapi.NewItem(newName, data), nil
}

// Ready returns nil when the backend is reachable.
func (s *Source) Ready(ctx context.Context) error {
	if err := s.check(ctx, "ready"); err != nil {
		return err
	}
	if r, ok := s.d.(ReadyChecker); ok {
		if err := r.Ready(ctx); err != nil {
			return s.wrap(ctx, "ready", "", err)
		}
	}
	return nil
}

// Len returns the number of items the driver holds, when it knows cheaply.
func (s *Source) Len() (int, bool) {
	if c, ok := s.d.(Counter); ok && !s.closed.Load() {
		return c.Len(), true
	}
	return 0, false
}

// Close closes the driver once; later calls return the same result.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.d.Close()
	})
	return s.closeErr
}

func (s *Source) check(ctx context.Context, op string) error {
	if s.closed.Load() {
		return Errorf(itemapi.ReasonUnavailable, "%s: source is closed", op)
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Reason: itemapi.ReasonUnavailable, Err: err}
	}
	return nil
}

// wrap classifies a driver error once.
func (s *Source) wrap(ctx context.Context, op, name string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		if e.Op != "" {
			return err // already classified by this package
		}
		if e == err { // a driver's Errorf/NotFound: add what was being done
			if e.Name != "" {
				name = e.Name
			}
			return &Error{Op: op, Name: name, Reason: e.Reason, Err: e.Err}
		}
	}
	reason := itemapi.ReasonOf(err)
	switch {
	case reason != "":
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		reason = itemapi.ReasonUnavailable
	default:
		reason = s.d.ErrorReason(err)
		if reason == "" {
			reason = itemapi.ReasonInternal
		}
	}
	return &Error{Op: op, Name: name, Reason: reason, Err: err}
}

func checkObject(data json.RawMessage) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("body is not a JSON object: %w", err)
	}
	if obj == nil {
		return errors.New("body is not a JSON object: null")
	}
	return nil
}
