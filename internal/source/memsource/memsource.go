// Package memsource is the in-memory reference driver of internal/source: a
// set of items held in memory, with watch, submit and ack. Tests use it as a
// source they can change directly.
package memsource

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Driver is the in-memory driver. The zero value is not usable; use New.
type Driver struct {
	idx *source.Index[json.RawMessage]

	mu       sync.Mutex
	outcomes map[string]itemapi.Outcome
	dead     map[string]json.RawMessage // the dead letter: items acknowledged as failed
	ready    error
}

var (
	_ source.Driver       = (*Driver)(nil)
	_ source.Watcher      = (*Driver)(nil)
	_ source.Submitter    = (*Driver)(nil)
	_ source.Acker        = (*Driver)(nil)
	_ source.ReadyChecker = (*Driver)(nil)
	_ source.Counter      = (*Driver)(nil)
	_ source.Redriver     = (*Driver)(nil)
)

// New returns an empty in-memory driver.
func New() *Driver {
	return &Driver{idx: source.NewIndex[json.RawMessage](), outcomes: make(map[string]itemapi.Outcome), dead: make(map[string]json.RawMessage)}
}

// Put adds or replaces an item directly. Data must be valid JSON.
func (d *Driver) Put(name string, data json.RawMessage) error {
	if err := itemapi.ValidateName(name); err != nil {
		return err
	}
	if !json.Valid(data) {
		return fmt.Errorf("put %q: data is not valid JSON", name)
	}
	d.idx.Put(name, append(json.RawMessage(nil), data...))
	return nil
}

// Remove deletes an item directly; it reports whether it was there.
func (d *Driver) Remove(name string) bool {
	_, ok := d.idx.Delete(name)
	return ok
}

// Outcome returns how an item was acknowledged, if it was.
func (d *Driver) Outcome(name string) (itemapi.Outcome, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.outcomes[name]
	return o, ok
}

// SetReady makes Ready return err (nil: ready), to simulate an outage.
func (d *Driver) SetReady(err error) {
	d.mu.Lock()
	d.ready = err
	d.mu.Unlock()
}

// Index exposes the underlying index (e.g. to bound watch queues in tests).
func (d *Driver) Index() *source.Index[json.RawMessage] { return d.idx }

func (d *Driver) List(_ context.Context, opts source.ListOptions) ([]string, string, error) {
	return d.idx.List(opts)
}

func (d *Driver) Get(_ context.Context, name string) (json.RawMessage, error) {
	v, ok := d.idx.Get(name)
	if !ok {
		return nil, source.NotFound(name)
	}
	return v, nil
}

func (d *Driver) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	return d.idx.Watch(ctx)
}

// Submit stores data under a new time-sortable name, "submit-<time>-<random>".
func (d *Driver) Submit(_ context.Context, data json.RawMessage) (string, error) {
	name := source.NewName("submit-", "")
	d.idx.Put(name, append(json.RawMessage(nil), data...))
	return name, nil
}

func (d *Driver) Ack(_ context.Context, name string, outcome itemapi.Outcome) error {
	data, ok := d.idx.Delete(name)
	if !ok {
		return source.NotFound(name)
	}
	d.mu.Lock()
	d.outcomes[name] = outcome
	if outcome != itemapi.Succeeded {
		d.dead[name] = data
	}
	d.mu.Unlock()
	return nil
}

// Redrive puts a failed item back under its old name.
func (d *Driver) Redrive(_ context.Context, name string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, ok := d.dead[name]
	if !ok {
		return "", source.Errorf(itemapi.ReasonNotFound, "redrive: no dead-lettered item %q", name)
	}
	if _, there := d.idx.Get(name); there {
		return "", source.Errorf(itemapi.ReasonConflict, "redrive: the queue already holds an item %q", name)
	}
	delete(d.dead, name)
	delete(d.outcomes, name)
	d.idx.Put(name, data)
	return name, nil
}

func (d *Driver) Ready(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready != nil {
		return source.Errorf(itemapi.ReasonUnavailable, "%v", d.ready)
	}
	return nil
}

func (d *Driver) Len() int { return d.idx.Len() }

func (d *Driver) ErrorReason(error) itemapi.Reason { return itemapi.ReasonInternal }

func (d *Driver) Close() error {
	d.idx.Close()
	return nil
}
