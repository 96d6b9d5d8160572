package itemapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	w := &watcher{c: c, handle: handle, known: make(map[string]struct{})}
	return w.run(ctx)
}

// watcher is the state of one Watch call.
type watcher struct {
	c      *Client
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
	log := w.c.log
	failures := 0
	for {
		synced, err := w.stream(ctx)
		var he *handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ns *notStreamingError
		if errors.As(err, &ns) {
			log.Info("item API server does not stream changes; polling the item list instead",
				"url", w.c.base, "why", ns.why, "interval", w.c.pollInterval)
			return w.poll(ctx)
		}
		if synced {
			failures = 0 // the stream worked: start the backoff afresh
		}
		wait := w.c.backoff(failures)
		var se *streamError
		if errors.As(err, &se) && se.retryAfter > wait {
			wait = se.retryAfter
		}
		failures++
		if synced && failures == 1 {
			log.Info("watch stream broke; reconnecting", "err", err, "wait", wait)
		} else {
			log.Warn("watch failed; reconnecting", "err", err, "wait", wait, "failures", failures)
		}
		if sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
}

// stream runs one watch connection until it breaks. synced says whether it
// got as far as the end of its snapshot.
func (w *watcher) stream(ctx context.Context) (synced bool, err error) {
	c := w.c
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hreq, err := http.NewRequestWithContext(sctx, http.MethodGet, c.base+watchPath, nil)
	if err != nil {
		return false, fmt.Errorf("GET %s: build request: %w", watchPath, err)
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
			return false, ctx.Err()
		}
		if context.Cause(sctx) == errHeaderTimeout {
			return false, &streamError{err: fmt.Errorf("GET %s: no answer within the request timeout of %v", watchPath, c.requestTimeout)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, &streamError{err: fmt.Errorf("GET %s: %w", watchPath, err)}
	}
	defer resp.Body.Close()

	switch code := resp.StatusCode; {
	case code == http.StatusOK && isNDJSON(resp.Header.Get("Content-Type")):
	case code >= 200 && code < 300:
		return false, &notStreamingError{why: fmt.Sprintf("the watch request got HTTP %d with Content-Type %q", code, resp.Header.Get("Content-Type"))}
	case code == http.StatusBadRequest || code == http.StatusNotFound || code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented:
		body, _ := readBody(resp.Body, maxErrorBodyBytes)
		return false, &notStreamingError{why: statusError(http.MethodGet, watchPath, resp, body).Error()}
	default:
		body, _ := readBody(resp.Body, maxErrorBodyBytes)
		return false, &streamError{
			err:        statusError(http.MethodGet, watchPath, resp, body),
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		}
	}

	idle := time.AfterFunc(c.idleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), MaxWatchLineBytes)

	// Until SYNCED, the stream's ADDED events are the server's snapshot:
	// collected here, then compared with what the caller knows.
	var snapOrder []string
	snap := make(map[string]struct{})
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
			return synced, &streamError{err: fmt.Errorf("GET %s: bad line %q: %w", watchPath, snippet(line), err)}
		}
		switch ev.Type {
		case Heartbeat:
		case Added, Deleted:
			if err := ValidateName(ev.Name); err != nil {
				c.log.Warn("watch: ignoring an event with an invalid name", "type", ev.Type, "name", ev.Name, "err", err)
				continue
			}
			if !synced {
				if ev.Type == Added {
					if _, ok := snap[ev.Name]; !ok {
						snap[ev.Name] = struct{}{}
						snapOrder = append(snapOrder, ev.Name)
					}
				} else {
					delete(snap, ev.Name)
				}
				continue
			}
			if err := w.change(ev); err != nil {
				return synced, err
			}
		case Synced:
			if synced {
				continue
			}
			synced = true
			err := w.resync(snapOrder, snap)
			snapOrder, snap = nil, nil
			if err != nil {
				return synced, err
			}
		default:
			c.log.Debug("watch: ignoring an event of an unknown type", "type", ev.Type)
		}
	}
	err = sc.Err()
	switch {
	case ctx.Err() != nil:
		return synced, ctx.Err()
	case context.Cause(sctx) == errIdle:
		return synced, &streamError{err: fmt.Errorf("GET %s: no line for %v (the server sends heartbeats); reconnecting", watchPath, c.idleTimeout)}
	case err == nil || errors.Is(err, io.ErrUnexpectedEOF):
		return synced, &streamError{err: fmt.Errorf("GET %s: the server ended the stream", watchPath)}
	}
	return synced, &streamError{err: fmt.Errorf("GET %s: read stream: %w", watchPath, err)}
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

// resync tells the caller how the server's current set (names, in order;
// set, its members — names may hold more) differs from what it knows, then
// SYNCED.
func (w *watcher) resync(names []string, set map[string]struct{}) error {
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
		if _, ok := set[n]; !ok {
			continue
		}
		if _, ok := w.known[n]; ok {
			continue
		}
		w.known[n] = struct{}{}
		if err := w.emit(WatchEvent{Type: Added, Name: n}); err != nil {
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

// poll is Watch for servers that do not stream: list, report the
// differences, wait, again.
func (w *watcher) poll(ctx context.Context) error {
	for {
		names, err := w.c.List(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			w.c.log.Warn("watch: listing the items failed; trying again at the next poll", "err", err, "interval", w.c.pollInterval)
		default:
			set := make(map[string]struct{}, len(names))
			for _, n := range names {
				set[n] = struct{}{}
			}
			if err := w.resync(names, set); err != nil {
				var he *handlerError
				if errors.As(err, &he) {
					return he.err
				}
				return err
			}
		}
		if sleep(ctx, w.c.pollInterval) != nil {
			return ctx.Err()
		}
	}
}
