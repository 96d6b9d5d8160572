package itemapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/itemq/itemq/internal/version"
)

// Client defaults; each has an option that changes it.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultRetries          = 4
	DefaultMinBackoff       = 100 * time.Millisecond
	DefaultMaxBackoff       = 5 * time.Second
	DefaultPageSize         = 1000
	DefaultPollInterval     = 30 * time.Second
	DefaultWatchIdleTimeout = 45 * time.Second
)

// Bounds of the response bodies the client reads. A larger answer is an
// error, never an unbounded allocation.
const (
	MaxListResponseBytes = 64 << 20
	MaxResponseBytes     = 4 << 20
	// MaxWatchLineBytes bounds one line of a watch stream (a name is at most
	// MaxNameBytes, so a valid event is far smaller).
	MaxWatchLineBytes = 64 << 10
)

// maxRetryAfter caps how long a server's Retry-After can make one wait.
const maxRetryAfter = 10 * time.Minute

// Client talks to an ambassador's v1 item API. It is safe for concurrent
// use; create one with NewClient.
//
// Every call takes a context and has a per-request timeout. Idempotent
// calls (GET, DELETE) are retried on 5xx, 429 and connection errors with
// jittered exponential backoff, honouring Retry-After; 4xx answers are
// never retried. Errors are typed: a *Status decoded from the answer (or
// built from its HTTP code) for errors of the server, so IsNotFound and its
// siblings work, and connection errors satisfy IsUnavailable.
type Client struct {
	base           string // scheme://host[/prefix], no trailing slash
	hc             *http.Client
	requestTimeout time.Duration
	retries        int
	minBackoff     time.Duration
	maxBackoff     time.Duration
	log            *slog.Logger
	token          string
	pageSize       int
	pollInterval   time.Duration
	idleTimeout    time.Duration
	userAgent      string
}

// ClientOption configures a Client.
type ClientOption func(*Client) error

// WithHTTPClient makes the client send its requests with hc (for a custom
// transport, TLS settings or a proxy). The client sets its own per-request
// timeouts; hc.Timeout, if set, is ignored for watch streams.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil *http.Client")
		}
		c.hc = hc
		return nil
	}
}

// WithRequestTimeout bounds each request, from sending it to reading the
// whole answer (for a watch stream: until its headers arrive). Default 30s.
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("WithRequestTimeout(%v): must be positive", d)
		}
		c.requestTimeout = d
		return nil
	}
}

// WithRetries sets how many times an idempotent call is retried after its
// first attempt (0: never). Default 4.
func WithRetries(n int) ClientOption {
	return func(c *Client) error {
		if n < 0 {
			return fmt.Errorf("WithRetries(%d): must not be negative", n)
		}
		c.retries = n
		return nil
	}
}

// WithBackoff sets the bounds of the exponential backoff between retries and
// watch reconnections: min·2^attempt capped at max, each wait drawn from
// the upper half of that bound (Backoff). Default 100ms..5s.
func WithBackoff(min, max time.Duration) ClientOption {
	return func(c *Client) error {
		if min <= 0 || max < min {
			return fmt.Errorf("WithBackoff(%v, %v): want 0 < min ≤ max", min, max)
		}
		c.minBackoff, c.maxBackoff = min, max
		return nil
	}
}

// WithLogger makes the client log retries, reconnections and fallbacks to
// log. By default it logs nothing.
func WithLogger(log *slog.Logger) ClientOption {
	return func(c *Client) error {
		if log == nil {
			return errors.New("WithLogger: nil *slog.Logger")
		}
		c.log = log
		return nil
	}
}

// WithBearerToken sends "Authorization: Bearer <tok>" with every request.
func WithBearerToken(tok string) ClientOption {
	return func(c *Client) error {
		if strings.ContainsAny(tok, "\r\n") {
			return errors.New("WithBearerToken: token contains a line break")
		}
		c.token = tok
		return nil
	}
}

// WithPageSize sets the page size List asks for. Default 1000.
func WithPageSize(n int) ClientOption {
	return func(c *Client) error {
		if n <= 0 {
			return fmt.Errorf("WithPageSize(%d): must be positive", n)
		}
		c.pageSize = n
		return nil
	}
}

// WithPollInterval sets how often Watch lists the items when the server
// does not stream changes. Default 30s.
func WithPollInterval(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("WithPollInterval(%v): must be positive", d)
		}
		c.pollInterval = d
		return nil
	}
}

// WithWatchIdleTimeout sets how long a watch stream may stay silent (no
// line, heartbeats included) before the client gives up on it and
// reconnects. Default 45s, three heartbeat periods of the contract.
func WithWatchIdleTimeout(d time.Duration) ClientOption {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("WithWatchIdleTimeout(%v): must be positive", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// NewClient returns a client of the ambassador at baseURL (http or https,
// e.g. "http://127.0.0.1:8080"; a path prefix is kept).
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("item API URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("item API URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("item API URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("item API URL %q: must not have a query or fragment", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	c := &Client{
		base:           u.String(),
		requestTimeout: DefaultRequestTimeout,
		retries:        DefaultRetries,
		minBackoff:     DefaultMinBackoff,
		maxBackoff:     DefaultMaxBackoff,
		log:            slog.New(slog.DiscardHandler),
		pageSize:       DefaultPageSize,
		pollInterval:   DefaultPollInterval,
		idleTimeout:    DefaultWatchIdleTimeout,
		userAgent:      "itemq-client/" + version.Version,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		c.hc = &http.Client{Transport: t}
	}
	return c, nil
}

// ListPage returns one page of item names: at most limit (0: as many as the
// server likes), starting after the page continueToken ends ("" for the
// first page). The page's Continue fetches the next one.
func (c *Client) ListPage(ctx context.Context, limit int, continueToken string) (*ItemList, error) {
	if limit < 0 {
		return nil, NewStatus(ReasonBadRequest, "list items: limit %d is negative", limit)
	}
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if continueToken != "" {
		q.Set("continue", continueToken)
	}
	var l ItemList
	if err := c.call(ctx, request{method: http.MethodGet, path: "/v1/items", query: q, idempotent: true, maxBody: MaxListResponseBytes}, &l); err != nil {
		return nil, err
	}
	if err := checkKind(l.Kind, l.APIVersion, KindItemList); err != nil {
		return nil, fmt.Errorf("GET /v1/items: %w", err)
	}
	if l.Items == nil {
		l.Items = []string{}
	}
	l.Kind, l.APIVersion = KindItemList, APIVersion
	return &l, nil
}

// List returns every item name, following continue pages to the end. It
// also works against servers that ignore limit and continue: a server that
// answers everything at once ends the listing after one page, and one that
// ignores continue (it answers the first page again) is asked once more for
// everything without a limit.
func (c *Client) List(ctx context.Context) ([]string, error) {
	var all []string
	token := ""
	seen := map[string]bool{}
	for {
		page, err := c.ListPage(ctx, c.pageSize, token)
		if err != nil {
			return nil, err
		}
		if token != "" && len(page.Items) > 0 && len(all) > 0 && page.Items[0] <= all[len(all)-1] {
			// The names should carry on after the last one: the server
			// ignored the token (or does not sort). Ask for all at once.
			c.log.Warn("item API server does not page; listing without a limit", "url", c.base)
			page, err = c.ListPage(ctx, 0, "")
			if err != nil {
				return nil, err
			}
			if page.Continue != "" {
				return nil, fmt.Errorf("list items: the server at %s ignores continue tokens but pages its answer", c.base)
			}
			return page.Items, nil
		}
		all = append(all, page.Items...)
		if page.Continue == "" {
			return all, nil
		}
		if seen[page.Continue] {
			return nil, fmt.Errorf("list items: the server at %s sent continue token %q twice", c.base, page.Continue)
		}
		seen[page.Continue] = true
		token = page.Continue
	}
}

// Get returns one item. A missing item is an error for which IsNotFound is
// true.
func (c *Client) Get(ctx context.Context, name string) (*Item, error) {
	if err := ValidateName(name); err != nil {
		return nil, NewStatus(ReasonBadRequest, "get item %q: %v", name, err)
	}
	path := ItemPath(name)
	var it Item
	if err := c.call(ctx, request{method: http.MethodGet, path: path, idempotent: true, maxBody: MaxResponseBytes}, &it); err != nil {
		return nil, err
	}
	if err := c.checkItem(&it, name); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return &it, nil
}

// Submit adds an item with the given data (a JSON object) to a source that
// accepts submissions and returns it; its Name is the new item's name.
//
// Submit is not idempotent, so it is retried only when the request cannot
// have reached the server (the connection could not be made). Any other
// failure is returned: the item may or may not have been created.
func (c *Client) Submit(ctx context.Context, data json.RawMessage) (*Item, error) {
	if !json.Valid(data) {
		return nil, NewStatus(ReasonBadRequest, "submit item: data is not valid JSON")
	}
	var it Item
	if err := c.call(ctx, request{method: http.MethodPost, path: "/v1/items", body: data, maxBody: MaxResponseBytes}, &it); err != nil {
		return nil, err
	}
	if err := c.checkItem(&it, ""); err != nil {
		return nil, fmt.Errorf("POST /v1/items: %w", err)
	}
	return &it, nil
}

// Ack tells the source that an item is finished with the given outcome (the
// source archives it). Ack is retried; when a retry follows a failure after
// which the item may already have been archived (a broken connection, a
// timeout, a 5xx), a NotFound answer counts as success.
func (c *Client) Ack(ctx context.Context, name string, outcome Outcome) error {
	if err := ValidateName(name); err != nil {
		return NewStatus(ReasonBadRequest, "ack item %q: %v", name, err)
	}
	if _, err := ParseOutcome(string(outcome)); err != nil {
		return NewStatus(ReasonBadRequest, "ack item %q: %v", name, err)
	}
	q := url.Values{"outcome": {string(outcome)}}
	return c.call(ctx, request{method: http.MethodDelete, path: ItemPath(name), query: q, idempotent: true, notFoundOKOnRetry: true, maxBody: MaxResponseBytes}, nil)
}

// RedrivePath is the v1 item API's path that puts a dead-lettered item back
// in the queue.
func RedrivePath(name string) string { return "/v1/redrive/" + EscapeName(name) }

// Redrive puts an item the source dead-lettered (acknowledged as failed or
// cancelled) back in the queue (POST /v1/redrive/{name}) and returns it as
// the source now serves it: its name may differ from the old one (a Kafka
// or Redis source appends it anew). IsNotFound is true of the error when
// the dead letter holds no such item, IsMethodNotAllowed when the source
// cannot redrive (an ambassador older than this call answers 405 too), and
// IsAlreadyExists when the queue already holds an item of that name.
//
// Redrive is not idempotent (a second call finds nothing to redrive, or
// appends a second copy), so it is retried only when the request cannot
// have reached the server.
func (c *Client) Redrive(ctx context.Context, name string) (*Item, error) {
	if err := ValidateName(name); err != nil {
		return nil, NewStatus(ReasonBadRequest, "redrive item %q: %v", name, err)
	}
	path := RedrivePath(name)
	var it Item
	if err := c.call(ctx, request{method: http.MethodPost, path: path, maxBody: MaxResponseBytes}, &it); err != nil {
		return nil, err
	}
	if err := c.checkItem(&it, ""); err != nil {
		return nil, fmt.Errorf("POST %s: %w", path, err)
	}
	return &it, nil
}

// Ready returns nil when the ambassador says its source is reachable
// (GET /readyz). A "not ready" answer is returned at once, not retried;
// connection errors are retried like any other call's.
func (c *Client) Ready(ctx context.Context) error {
	return c.call(ctx, request{method: http.MethodGet, path: "/readyz", idempotent: true, noStatusRetry: true, maxBody: MaxResponseBytes}, nil)
}

// checkItem checks an Item answer: the right kind, a valid name (the one
// asked for, when want is set) and data.
func (c *Client) checkItem(it *Item, want string) error {
	if err := checkKind(it.Kind, it.APIVersion, KindItem); err != nil {
		return err
	}
	it.Kind, it.APIVersion = KindItem, APIVersion
	if it.Name == "" && want != "" {
		// The book's format: the name is known from the URL.
		it.Name = want
	}
	if want != "" && it.Name != want {
		return fmt.Errorf("answer is item %q, not %q", it.Name, want)
	}
	return it.Validate()
}

// checkKind accepts a document of the expected kind, or one that does not
// say (minimal servers may leave kind and apiVersion out).
func checkKind(kind, apiVersion, want string) error {
	if kind != "" && kind != want {
		return fmt.Errorf("answer is a %q document, want %q", kind, want)
	}
	if apiVersion != "" && apiVersion != APIVersion {
		return fmt.Errorf("answer has apiVersion %q, want %q", apiVersion, APIVersion)
	}
	return nil
}

// request is one call of the API.
type request struct {
	method string
	path   string // escaped, from the API root, e.g. /v1/items/a%2Fb
	query  url.Values
	body   []byte
	// idempotent calls are retried after any failure that may be
	// temporary; others only when the request cannot have been sent.
	idempotent bool
	// noStatusRetry: an HTTP answer is final (Ready); only connection
	// errors are retried.
	noStatusRetry bool
	// notFoundOKOnRetry: a 404 after an ambiguous failure is success (Ack).
	notFoundOKOnRetry bool
	maxBody           int64
	// header: more request headers.
	header http.Header
	// wait: how long the server may take beyond the request timeout (a
	// long poll).
	wait time.Duration
}

// attemptResult is what one attempt of a request gave.
type attemptResult struct {
	err        error
	retryable  bool
	ambiguous  bool // the request may have had its effect
	notFound   bool
	retryAfter time.Duration
}

// call performs the request with retries and decodes a 2xx answer's body
// into out (when out is not nil).
func (c *Client) call(ctx context.Context, req request, out any) error {
	ambiguous := false
	for attempt := 0; ; attempt++ {
		res := c.attempt(ctx, req, out)
		if res.err == nil {
			return nil
		}
		if res.notFound && ambiguous && req.notFoundOKOnRetry {
			c.log.Info("item already gone after an interrupted request; taking it as done",
				"method", req.method, "path", req.path)
			return nil
		}
		ambiguous = ambiguous || res.ambiguous
		if ctx.Err() != nil {
			return res.err
		}
		if !res.retryable || attempt >= c.retries {
			if res.retryable && attempt > 0 {
				return fmt.Errorf("%w (gave up after %d attempts)", res.err, attempt+1)
			}
			return res.err
		}
		wait := c.backoff(attempt)
		if res.retryAfter > wait {
			wait = res.retryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// The retry could not happen in time: the last error says more
			// than a deadline would.
			return fmt.Errorf("%w (no time left to retry)", res.err)
		}
		c.log.Debug("retrying item API request", "method", req.method, "path", req.path,
			"attempt", attempt+1, "wait", wait, "err", res.err)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w (gave up waiting to retry: %w)", res.err, err)
		}
	}
}

// attempt sends the request once.
func (c *Client) attempt(ctx context.Context, req request, out any) attemptResult {
	actx, cancel := context.WithTimeout(ctx, c.requestTimeout+req.wait)
	defer cancel()
	hreq, err := c.newRequest(actx, req)
	if err != nil {
		return attemptResult{err: err}
	}
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return c.transportFailure(ctx, actx, req, err, false)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := req.maxBody
	if !ok {
		limit = maxErrorBodyBytes
	}
	body, err := readBody(resp.Body, limit)
	switch {
	case errors.Is(err, errBodyTooLarge) && ok:
		return attemptResult{err: NewStatus(ReasonTooLarge, "%s %s: answer (HTTP %d) is larger than %d bytes", req.method, req.path, resp.StatusCode, limit)}
	case errors.Is(err, errBodyTooLarge):
		// An error answer that big is no Status document: judge it by its
		// code.
	case err != nil:
		return c.transportFailure(ctx, actx, req, fmt.Errorf("read answer: %w", err), true)
	}
	if ok {
		if out != nil {
			if err := json.Unmarshal(body, out); err != nil {
				return attemptResult{err: fmt.Errorf("%s %s: decode answer (HTTP %d): %w (body: %s)", req.method, req.path, resp.StatusCode, err, snippet(body))}
			}
		}
		return attemptResult{}
	}
	res := attemptResult{err: statusError(req.method, req.path, resp, body), notFound: resp.StatusCode == http.StatusNotFound}
	code := resp.StatusCode
	if req.noStatusRetry {
		return res
	}
	switch {
	case code == http.StatusTooManyRequests:
		res.retryable = req.idempotent
	case code >= 500 && code != http.StatusNotImplemented:
		res.retryable = req.idempotent
		res.ambiguous = true
	}
	if res.retryable {
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res
}

// transportFailure classifies an error of sending a request or reading its
// answer. ctx is the caller's context, actx the attempt's.
func (c *Client) transportFailure(ctx, actx context.Context, req request, err error, sent bool) attemptResult {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil {
		// The caller gave up: say so, with the context's error in the chain.
		return attemptResult{err: fmt.Errorf("%s %s: %w", req.method, req.path, ctx.Err())}
	}
	res := attemptResult{}
	if actx.Err() != nil {
		res.err = &connError{msg: fmt.Sprintf("%s %s: no complete answer within the request timeout of %v", req.method, req.path, c.requestTimeout), err: context.DeadlineExceeded}
	} else {
		res.err = &connError{msg: fmt.Sprintf("%s %s: %v", req.method, req.path, err), err: err}
	}
	dial := !sent && isDialError(err)
	res.retryable = req.idempotent || dial
	res.ambiguous = !dial
	return res
}

// newRequest builds the HTTP request of one attempt.
func (c *Client) newRequest(ctx context.Context, req request) (*http.Request, error) {
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: build request: %w", req.method, req.path, err)
	}
	if req.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Accept", "application/json")
	for k, v := range req.header {
		hreq.Header[k] = v
	}
	c.setHeaders(hreq)
	return hreq, nil
}

// open sends a GET once and returns the answer's body, to be streamed (a
// log, an output file): the request timeout bounds the wait for the
// headers only. An error answer is returned as its Status.
func (c *Client) open(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	sctx, cancel := context.WithCancel(ctx)
	hreq, err := c.newRequest(sctx, request{method: http.MethodGet, path: path, query: query})
	if err != nil {
		cancel()
		return nil, err
	}
	hreq.Header.Set("Accept", "*/*")
	hc := *c.hc
	hc.Timeout = 0
	headerTimer := time.AfterFunc(c.requestTimeout, cancel)
	resp, err := hc.Do(hreq)
	if !headerTimer.Stop() && err != nil && ctx.Err() == nil {
		err = fmt.Errorf("no answer within the request timeout of %v", c.requestTimeout)
	}
	if err != nil {
		cancel()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &connError{msg: fmt.Sprintf("GET %s: %v", path, err), err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel()
		defer resp.Body.Close()
		body, _ := readBody(resp.Body, maxErrorBodyBytes)
		return nil, statusError(http.MethodGet, path, resp, body)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func (c *Client) setHeaders(hreq *http.Request) {
	hreq.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// backoff is the jittered wait before retry number attempt+1.
func (c *Client) backoff(attempt int) time.Duration {
	return Backoff{Min: c.minBackoff, Max: c.maxBackoff}.Delay(attempt)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connError is a failure to talk to the server at all (no connection, a
// broken one, a timeout). It counts as Unavailable.
type connError struct {
	msg string
	err error
}

func (e *connError) Error() string       { return e.msg }
func (e *connError) Unwrap() error       { return e.err }
func (e *connError) ErrorReason() Reason { return ReasonUnavailable }

// isDialError reports whether err happened while connecting, so the request
// cannot have reached the server.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

var errBodyTooLarge = errors.New("body too large")

// maxErrorBodyBytes bounds what is read of an error answer.
const maxErrorBodyBytes = 64 << 10

// readBody reads at most limit bytes of r. When r holds more, it returns
// the first limit bytes and errBodyTooLarge.
func readBody(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return b[:limit], errBodyTooLarge
	}
	return b, nil
}

// statusError is the error of a non-2xx answer: the Status document the
// server sent, or one built from the HTTP code.
func statusError(method, path string, resp *http.Response, body []byte) error {
	var st Status
	if json.Unmarshal(body, &st) == nil && st.Kind == KindStatus && st.Reason != "" {
		if st.Code == 0 {
			st.Code = resp.StatusCode
		}
		return fmt.Errorf("%s %s: %w", method, path, &st)
	}
	r := ReasonForCode(resp.StatusCode)
	msg := fmt.Sprintf("%s %s: HTTP %s", method, path, resp.Status)
	if s := snippet(body); s != "" {
		msg += ": " + s
	}
	return &Status{Kind: KindStatus, APIVersion: APIVersion, Code: resp.StatusCode, Reason: r, Message: msg}
}

// snippet is the start of a body, for error messages: one line, printable,
// at most 200 bytes.
func snippet(body []byte) string {
	const limit = 200
	s := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	cut := len(s) > limit
	if cut {
		s = s[:limit]
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == utf8.RuneError || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// isNDJSON reports whether a Content-Type names a newline-delimited JSON
// stream.
func isNDJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
		return true
	}
	return false
}
