package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// Redrive puts a dead-lettered item back in the queue (an optional
	// part of v1: a source without it answers MethodNotAllowed).
	Redrive(ctx context.Context, name string) (*itemapi.Item, error)
}

var _ Source = (*itemapi.Client)(nil)

// InProcess adapts a source.Source to Source.
type InProcess struct {
	Src *source.Source
	// PageSize of List (default 5000).
	PageSize int
	// PollInterval between listings of a source that cannot watch
	// (default itemapi.DefaultPollInterval).
	PollInterval time.Duration
	Log          *slog.Logger
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

func (p *InProcess) Redrive(ctx context.Context, name string) (*itemapi.Item, error) {
	return p.Src.Redrive(ctx, name)
}

// Watch follows the source's watch streams with itemapi.Follow (the same
// watch-and-resume as for an ambassador over HTTP): when a stream ends (a
// slow reader overflowed), it watches again and reports only what changed
// meanwhile. A source that cannot watch is listed every PollInterval.
func (p *InProcess) Watch(ctx context.Context, handle func(itemapi.WatchEvent) error) error {
	return itemapi.Follow(ctx, inProcessStreamer{p}, itemapi.Follower{
		PollInterval: p.PollInterval,
		Backoff:      itemapi.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		Log:          p.Log,
		Where:        "in-process source",
	}, handle)
}

type inProcessStreamer struct{ p *InProcess }

func (s inProcessStreamer) List(ctx context.Context) ([]string, error) { return s.p.List(ctx) }

func (s inProcessStreamer) Stream(ctx context.Context, yield func(itemapi.WatchEvent) error) error {
	if !s.p.Src.CanWatch() {
		return fmt.Errorf("in-process source: %w", itemapi.ErrNotStreaming)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.p.Src.Watch(wctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	for ev := range ch {
		if err := yield(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("the watch stream ended (the reader fell behind)")
}
