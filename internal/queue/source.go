package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Source is what the manager needs of an item source. *itemapi.Client (an
// ambassador over HTTP) implements it, and InProcess adapts a source.Source
// opened in the manager's own process.
type Source interface {
	List(ctx context.Context) ([]string, error)
	Get(ctx context.Context, name string) (*itemapi.Item, error)
	// Watch calls handle with ADDED/DELETED events and SYNCED after each
	// (re)synchronisation, resuming without losing or repeating changes,
	// until ctx ends or handle fails.
	Watch(ctx context.Context, handle func(itemapi.WatchEvent) error) error
	Submit(ctx context.Context, data json.RawMessage) (*itemapi.Item, error)
	Ack(ctx context.Context, name string, outcome itemapi.Outcome) error
}

var _ Source = (*itemapi.Client)(nil)

// InProcess adapts a source.Source to Source.
type InProcess struct {
	Src *source.Source
	// PageSize of List (default 5000).
	PageSize int
	// Retry is the delay before watching again after a watch ended
	// (default 1s).
	Retry time.Duration
}

var _ Source = (*InProcess)(nil)

func (p *InProcess) List(ctx context.Context) ([]string, error) {
	n := p.PageSize
	if n == 0 {
		n = 5000
	}
	return p.Src.ListAll(ctx, n)
}

func (p *InProcess) Get(ctx context.Context, name string) (*itemapi.Item, error) {
	return p.Src.Get(ctx, name)
}

func (p *InProcess) Submit(ctx context.Context, data json.RawMessage) (*itemapi.Item, error) {
	return p.Src.Submit(ctx, data)
}

func (p *InProcess) Ack(ctx context.Context, name string, outcome itemapi.Outcome) error {
	return p.Src.Ack(ctx, name, outcome)
}

// Watch follows the source's watch streams; when one ends (a slow reader
// overflowed), it watches again and reports only what changed meanwhile.
// Sources that cannot watch are polled with List every Retry·30.
func (p *InProcess) Watch(ctx context.Context, handle func(itemapi.WatchEvent) error) error {
	retry := p.Retry
	if retry == 0 {
		retry = time.Second
	}
	known := map[string]struct{}{}
	for {
		var err error
		if p.Src.CanWatch() {
			err = p.watchOnce(ctx, known, handle)
		} else {
			err = p.pollOnce(ctx, known, handle)
			if err == nil {
				err = errRetry
				retry = 30 * retry
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var herr handlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
}

var errRetry = errors.New("retry")

type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

func (p *InProcess) watchOnce(ctx context.Context, known map[string]struct{}, handle func(itemapi.WatchEvent) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := p.Src.Watch(wctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	snapshot := map[string]struct{}{}
	synced := false
	for ev := range ch {
		switch {
		case !synced && ev.Type == itemapi.Added:
			snapshot[ev.Name] = struct{}{}
		case !synced && ev.Type == itemapi.Synced:
			synced = true
			if err := diff(known, snapshot, handle); err != nil {
				return handlerError{err}
			}
			snapshot = nil
		case synced && (ev.Type == itemapi.Added || ev.Type == itemapi.Deleted):
			if err := apply(known, ev, handle); err != nil {
				return handlerError{err}
			}
		}
	}
	return errRetry
}

func (p *InProcess) pollOnce(ctx context.Context, known map[string]struct{}, handle func(itemapi.WatchEvent) error) error {
	names, err := p.List(ctx)
	if err != nil {
		return err
	}
	now := make(map[string]struct{}, len(names))
	for _, n := range names {
		now[n] = struct{}{}
	}
	if err := diff(known, now, handle); err != nil {
		return handlerError{err}
	}
	return nil
}

// diff reports how known must change to become now, then SYNCED, and
// updates known.
func diff(known, now map[string]struct{}, handle func(itemapi.WatchEvent) error) error {
	for n := range known {
		if _, ok := now[n]; !ok {
			if err := apply(known, itemapi.WatchEvent{Type: itemapi.Deleted, Name: n}, handle); err != nil {
				return err
			}
		}
	}
	for n := range now {
		if err := apply(known, itemapi.WatchEvent{Type: itemapi.Added, Name: n}, handle); err != nil {
			return err
		}
	}
	return handle(itemapi.WatchEvent{Type: itemapi.Synced})
}

// apply passes a change on unless it repeats what known already says.
func apply(known map[string]struct{}, ev itemapi.WatchEvent, handle func(itemapi.WatchEvent) error) error {
	_, have := known[ev.Name]
	switch ev.Type {
	case itemapi.Added:
		if have {
			return nil
		}
		known[ev.Name] = struct{}{}
	case itemapi.Deleted:
		if !have {
			return nil
		}
		delete(known, ev.Name)
	}
	return handle(ev)
}
