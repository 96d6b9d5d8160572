package itemapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Watch tells handle which items exist and, from then on, which come and
// go. It returns only when ctx ends (with ctx.Err()) or when handle returns
// an error (that error, as is).
//
// handle sees ADDED and DELETED events and a SYNCED event after each
// (re)synchronisation, never a HEARTBEAT. The first events are one ADDED
// per existing item, then SYNCED; then changes as they happen.
//
// Watch resumes without losing or repeating events: it keeps the set of
// names it told handle exist. When the stream breaks (the connection drops,
// the stream ends, the server overflows, no line arrives within the watch
// idle timeout, a 5xx), it reconnects with jittered backoff, reads the new
// stream's snapshot up to its SYNCED, and tells handle only the differences
// (DELETED for names that vanished meanwhile, ADDED for new ones), then
// SYNCED. An item deleted and re-created while disconnected is not
// reported. Changes after that pass through, with an ADDED for a known name
// and a DELETED for an unknown one suppressed.
//
// Against a server that does not stream (it answers the watch request with
// a JSON document, or with 400, 404, 405 or 501), Watch lists the items
// every poll interval instead and reports the same differences, each poll
// followed by SYNCED.
//
// handle is called from one goroutine, one event at a time; while it runs,
// the stream is not read.
func (c *Client) Watch(ctx context.Context, handle func(WatchEvent) error) error {
	if handle == nil {
		return NewStatus(ReasonBadRequest, "watch items: nil handler")
	}
	return Follow(ctx, clientStreamer{c}, Follower{
		PollInterval: c.pollInterval,
		Backoff:      Backoff{Min: c.minBackoff, Max: c.maxBackoff},
		Log:          c.log,
		Where:        c.base,
	}, handle)
}

// clientStreamer is a Streamer over an ambassador's HTTP watch.
type clientStreamer struct{ c *Client }

func (s clientStreamer) Stream(ctx context.Context, yield func(WatchEvent) error) error {
	return s.c.stream(ctx, yield)
}

func (s clientStreamer) List(ctx context.Context) ([]string, error) { return s.c.List(ctx) }

// Streamer is what Follow needs of a source of items: one watch stream at
// a time, and a full listing.
type Streamer interface {
	// Stream runs one watch stream, passing its events to yield in order
	// (ADDED per existing item, SYNCED, then changes), until the stream
	// breaks or yield fails; it returns why. An error wrapping
	// ErrNotStreaming says the source cannot stream at all: Follow then
	// polls List instead.
	Stream(ctx context.Context, yield func(WatchEvent) error) error
	List(ctx context.Context) ([]string, error)
}

// ErrNotStreaming is wrapped by Streamer.Stream's error when the source
// cannot stream changes.
var ErrNotStreaming = errors.New("the source does not stream changes")

// Follower configures Follow.
type Follower struct {
	// PollInterval between listings of a source that cannot stream
	// (default DefaultPollInterval).
	PollInterval time.Duration
	// Backoff between reconnections after a stream broke.
	Backoff Backoff
	Log     *slog.Logger
	// Where names the source in logs.
	Where string
}

// Follow is Watch over any Streamer: the one watch-and-resume of itemq,
// used for ambassadors over HTTP and for sources in the manager's own
// process alike. See Client.Watch for what handle sees.
func Follow(ctx context.Context, s Streamer, f Follower, handle func(WatchEvent) error) error {
	if f.PollInterval <= 0 {
		f.PollInterval = DefaultPollInterval
	}
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
	w := &watcher{s: s, f: f, handle: handle, known: make(map[string]struct{})}
	return w.run(ctx)
}

// watcher is the state of one Follow call.
type watcher struct {
	s      Streamer
	f      Follower
	handle func(WatchEvent) error
	// known is the set of names handle was told exist.
	known map[string]struct{}
}

// handlerError carries an error of the caller's handler out of the loop.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// notStreamingError says the server answered the watch request in a way
// that shows it does not stream changes.
type notStreamingError struct{ why string }

func (e *notStreamingError) Error() string { return e.why }
func (e *notStreamingError) Unwrap() error { return ErrNotStreaming }

// streamError is a broken stream; retryAfter is the server's wish, if any.
type streamError struct {
	err        error
	retryAfter time.Duration
}

func (e *streamError) Error() string { return e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

var (
	errIdle          = errors.New("watch stream idle")
	errHeaderTimeout = errors.New("watch request timed out")
)

const watchPath = "/v1/items?watch=true"

func (w *watcher) run(ctx context.Context) error {
	log := w.f.Log
	failures := 0
	for {
		synced, err := w.streamOnce(ctx)
		var he *handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrNotStreaming) {
			log.Info("the source does not stream changes; polling the item list instead",
				"source", w.f.Where, "why", err, "interval", w.f.PollInterval)
			return w.poll(ctx)
		}
		if synced {
			failures = 0 // the stream worked: start the backoff afresh
		}
		wait := w.f.Backoff.Delay(failures)
		var se *streamError
		if errors.As(err, &se) && se.retryAfter > wait {
			wait = se.retryAfter
		}
		failures++
		if synced && failures == 1 {
			log.Info("watch stream broke; reconnecting", "source", w.f.Where, "err", err, "wait", wait)
		} else {
			log.Warn("watch failed; reconnecting", "source", w.f.Where, "err", err, "wait", wait, "failures", failures)
		}
		if sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
}

// streamOnce follows one stream until it breaks. synced says whether it got
// as far as the end of its snapshot. Until SYNCED, the stream's ADDED
// events are the source's snapshot: collected, then compared with what the
// caller knows.
func (w *watcher) streamOnce(ctx context.Context) (synced bool, err error) {
	var snapOrder []string
	snap := make(map[string]*Item)
	err = w.s.Stream(ctx, func(ev WatchEvent) error {
		switch ev.Type {
		case Added, Deleted:
			if err := ValidateName(ev.Name); err != nil {
				w.f.Log.Warn("watch: ignoring an event with an invalid name", "type", ev.Type, "name", ev.Name, "err", err)
				return nil
			}
			if ev.Item != nil && (ev.Type != Added || ev.Item.Name != ev.Name || ev.Item.Validate() != nil) {
				ev.Item = nil // not a document to trust: the reader will GET it
			}
			if !synced {
				if ev.Type == Added {
					if _, ok := snap[ev.Name]; !ok {
						snapOrder = append(snapOrder, ev.Name)
					}
					snap[ev.Name] = ev.Item
				} else {
					delete(snap, ev.Name)
				}
				return nil
			}
			return w.change(ev)
		case Synced:
			if synced {
				return nil
			}
			synced = true
			err := w.resync(snapOrder, snap)
			snapOrder, snap = nil, nil
			return err
		case Heartbeat:
		default:
			w.f.Log.Debug("watch: ignoring an event of an unknown type", "type", ev.Type)
		}
		return nil
	})
	return synced, err
}

// stream runs one HTTP watch connection until it breaks, passing each event
// to yield.
func (c *Client) stream(ctx context.Context, yield func(WatchEvent) error) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hreq, err := http.NewRequestWithContext(sctx, http.MethodGet, c.base+watchPath, nil)
	if err != nil {
		return fmt.Errorf("GET %s: build request: %w", watchPath, err)
	}
	hreq.Header.Set("Accept", "application/x-ndjson, application/json;q=0.5")
	c.setHeaders(hreq)

	// The request timeout bounds the wait for the headers; the idle timeout
	// the silence between lines after that.
	headerTimer := time.AfterFunc(c.requestTimeout, func() { cancel(errHeaderTimeout) })
	hc := *c.hc
	hc.Timeout = 0 // a stream is long-lived; the timers above bound it
	resp, err := hc.Do(hreq)
	headerTimer.Stop()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if context.Cause(sctx) == errHeaderTimeout {
			return &streamError{err: fmt.Errorf("GET %s: no answer within the request timeout of %v", watchPath, c.requestTimeout)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &streamError{err: fmt.Errorf("GET %s: %w", watchPath, err)}
	}
	defer resp.Body.Close()

	switch code := resp.StatusCode; {
	case code == http.StatusOK && isNDJSON(resp.Header.Get("Content-Type")):
	case code >= 200 && code < 300:
		return &notStreamingError{why: fmt.Sprintf("the watch request got HTTP %d with Content-Type %q", code, resp.Header.Get("Content-Type"))}
	case code == http.StatusBadRequest || code == http.StatusNotFound || code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented:
		body, _ := readBody(resp.Body, maxErrorBodyBytes)
		return &notStreamingError{why: statusError(http.MethodGet, watchPath, resp, body).Error()}
	default:
		body, _ := readBody(resp.Body, maxErrorBodyBytes)
		return &streamError{
			err:        statusError(http.MethodGet, watchPath, resp, body),
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}

	idle := time.AfterFunc(c.idleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), MaxWatchLineBytes)
	for {
		// The idle clock runs only while waiting for a line, not while the
		// handler works.
		idle.Reset(c.idleTimeout)
		if !sc.Scan() {
			break
		}
		idle.Stop()
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var ev WatchEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return &streamError{err: fmt.Errorf("GET %s: bad line %q: %w", watchPath, snippet(line), err)}
		}
		if ev.Item != nil {
			ev.Item.Kind, ev.Item.APIVersion = KindItem, APIVersion
			if ev.Item.Name == "" {
				ev.Item.Name = ev.Name
			}
		}
		if err := yield(ev); err != nil {
			return err
		}
	}
	err = sc.Err()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case context.Cause(sctx) == errIdle:
		return &streamError{err: fmt.Errorf("GET %s: no line for %v (the server sends heartbeats); reconnecting", watchPath, c.idleTimeout)}
	case err == nil || errors.Is(err, io.ErrUnexpectedEOF):
		return &streamError{err: fmt.Errorf("GET %s: the server ended the stream", watchPath)}
	}
	return &streamError{err: fmt.Errorf("GET %s: read stream: %w", watchPath, err)}
}

// change passes on one change after the snapshot, keeping known current.
func (w *watcher) change(ev WatchEvent) error {
	_, ok := w.known[ev.Name]
	switch {
	case ev.Type == Added && !ok:
		w.known[ev.Name] = struct{}{}
	case ev.Type == Deleted && ok:
		delete(w.known, ev.Name)
	default:
		return nil // nothing new to the caller
	}
	return w.emit(ev)
}

// resync tells the caller how the source's current set (names, in order;
// set, its members with their documents where known — names may hold
// more) differs from what it knows, then SYNCED.
func (w *watcher) resync(names []string, set map[string]*Item) error {
	var gone []string
	for n := range w.known {
		if _, ok := set[n]; !ok {
			gone = append(gone, n)
		}
	}
	slices.Sort(gone)
	for _, n := range gone {
		delete(w.known, n)
		if err := w.emit(WatchEvent{Type: Deleted, Name: n}); err != nil {
			return err
		}
	}
	for _, n := range names {
		it, ok := set[n]
		if !ok {
			continue
		}
		if _, ok := w.known[n]; ok {
			continue
		}
		w.known[n] = struct{}{}
		if err := w.emit(WatchEvent{Type: Added, Name: n, Item: it}); err != nil {
			return err
		}
	}
	return w.emit(WatchEvent{Type: Synced})
}

func (w *watcher) emit(ev WatchEvent) error {
	if err := w.handle(ev); err != nil {
		return &handlerError{err: err}
	}
	return nil
}

// poll is Follow for sources that do not stream: list, report the
// differences, wait the poll interval (the same every time), again.
func (w *watcher) poll(ctx context.Context) error {
	for {
		names, err := w.s.List(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			w.f.Log.Warn("watch: listing the items failed; trying again at the next poll", "source", w.f.Where, "err", err, "interval", w.f.PollInterval)
		default:
			set := make(map[string]*Item, len(names))
			for _, n := range names {
				set[n] = nil
			}
			if err := w.resync(names, set); err != nil {
				var he *handlerError
				if errors.As(err, &he) {
					return he.err
				}
				return err
			}
		}
		if sleep(ctx, w.f.PollInterval) != nil {
			return ctx.Err()
		}
	}
}
