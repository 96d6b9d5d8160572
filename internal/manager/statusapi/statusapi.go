package statusapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/dashboard"
	"github.com/itemq/itemq/internal/manager/idempotency"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// APIOptions configure the status API.
type APIOptions struct {
	// Token, when set, is the bearer token every call that changes
	// something requires (POST /v1/jobs, /v1/cancel, /v1/retry); it also
	// reads.
	Token string
	// ReadToken, when set, is required (or Token) by every read of /v1/
	// (jobs, logs, outputs): a token for viewers. /healthz, /readyz and
	// /metrics stay open.
	ReadToken string
	// Idempotency, when set, makes POST /v1/jobs honour Idempotency-Key.
	Idempotency *idempotency.Store
	// MaxWait bounds the long poll GET /v1/jobs/{item}?wait= (default 5m).
	MaxWait time.Duration
	// Dashboard, when set, is served at / and /ui/.
	Dashboard http.Handler
	// MaxSubmitBytes bounds a submitted job's body (default and at most
	// itemapi.MaxDataBytes, the one item size limit).
	MaxSubmitBytes int64
	Log            *slog.Logger
}

type api struct {
	m    *manager.Manager
	opts APIOptions
}

// NewAPI returns the status API's handler:
//
//	GET  /v1/jobs?state=&prefix=&limit=&continue=   JobStatusList
//	GET  /v1/jobs/{item}[?wait=30s]         JobStatus (long poll: answers when the job ends)
//	POST /v1/jobs[?priority=N]              submit through the source → 202, Location: /v1/jobs/{item}
//	                                        (priority: set into the data's priority field)
//	                                        (Idempotency-Key: the same key answers the same job, 200)
//	GET  /v1/summary                        Summary (jobs by state, λ, S, c)
//	POST /v1/cancel, /v1/retry              JobSelector → ActionResult
//	GET  /v1/logs/{item}[?tail=N&follow=true]  the job's log (text)
//	GET  /v1/outputs/{item}[?file=NAME]     the job's _SUCCESS.json manifest, or one output file
//	GET  /healthz, /readyz, /metrics
func NewAPI(m *manager.Manager, opts APIOptions) http.Handler {
	if opts.MaxSubmitBytes <= 0 || opts.MaxSubmitBytes > itemapi.MaxDataBytes {
		opts.MaxSubmitBytes = itemapi.MaxDataBytes
	}
	if opts.Log == nil {
		opts.Log = m.Logger()
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 5 * time.Minute
	}
	a := &api{m: m, opts: opts}
	e := httpapi.New(opts.Log)
	read := a.requireRead
	e.GET("/v1/jobs", read(a.list))
	e.POST("/v1/jobs", a.submit)
	e.GET("/v1/jobs/*", read(a.get))
	e.GET("/v1/summary", read(func(c echo.Context) error { return c.JSON(http.StatusOK, a.m.Summary()) }))
	e.GET("/v1/scaling", read(func(c echo.Context) error { return c.JSON(http.StatusOK, a.m.Scaling()) }))
	e.POST("/v1/cancel", a.cancel)
	e.POST("/v1/retry", a.retry)
	e.GET("/v1/logs/*", read(a.logs))
	e.GET("/v1/outputs/*", read(a.outputs))
	if opts.Dashboard != nil {
		ui := echo.WrapHandler(opts.Dashboard)
		e.GET("/", ui)
		e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/") })
		e.Any("/ui/*", ui)
	}
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", a.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{})))
	return e
}

func (a *api) list(c echo.Context) error {
	q, err := httpapi.Query(c.Request())
	if err != nil {
		return err
	}
	var state itemapi.State
	if s := q.Get("state"); s != "" {
		st, err := itemapi.ParseState(s)
		if err != nil {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "%v", err)
		}
		state = st
	}
	limit := 500
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "limit=%q: want a whole number ≥ 0", l)
		}
		limit = n
	}
	after, err := source.DecodeContinue(q.Get("continue"))
	if err != nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "continue token is not valid")
	}
	prefix := q.Get("prefix")
	if prefix != "" {
		if err := itemapi.ValidateName(prefix); err != nil {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "prefix=%q: %v", prefix, err)
		}
	}
	items, last := a.m.StatusList(state, prefix, after, limit)
	doc := itemapi.JobStatusList{Kind: "JobList", APIVersion: itemapi.APIVersion, Items: items}
	if last != "" {
		doc.Continue = source.EncodeContinue(last)
	}
	return c.JSON(http.StatusOK, doc)
}

// requireRead wraps a read: it needs ReadToken or Token when ReadToken is
// set.
func (a *api) requireRead(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.opts.ReadToken != "" {
			// A bearer token, or else the dashboard's cookie (for its
			// pages' reads); a stale cookie never hides a valid bearer.
			if _, ok := httpapi.BearerToken(c.Request()); !ok {
				if cookie := dashboard.TokenFromCookie(c.Request()); cookie != "" {
					c.Request().Header.Set("Authorization", "Bearer "+cookie)
				}
			}
			if httpapi.RequireBearer(c.Request(), a.opts.ReadToken) != nil && httpapi.RequireBearer(c.Request(), a.opts.Token) != nil {
				return itemapi.NewStatus(itemapi.ReasonUnauthorized, "a valid bearer token is required to read (Authorization: Bearer <token>)")
			}
		}
		return h(c)
	}
}

func (a *api) get(c echo.Context) error {
	name, q, err := nameAndQuery(c, "/v1/jobs/")
	if err != nil {
		return err
	}
	if w := q.Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "wait=%q: want a duration such as 30s", w)
		}
		if d > a.opts.MaxWait {
			d = a.opts.MaxWait
		}
		httpapi.LongLived(c.Response())
		st, ok := a.m.WaitStatus(c.Request().Context(), name, d)
		if !ok {
			return itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", name)
		}
		return a.withHistory(c, st)
	}
	st, ok := a.m.Status(name)
	if !ok {
		return itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", name)
	}
	return a.withHistory(c, st)
}

// withHistory answers one job's status with its attempts.
func (a *api) withHistory(c echo.Context, st itemapi.JobStatus) error {
	h, err := a.m.History(c.Request().Context(), st.Item)
	if err != nil {
		a.opts.Log.Warn("cannot read a job's attempts", "item", st.Item, "err", err)
	}
	st.History = h
	return c.JSON(http.StatusOK, st)
}

func (a *api) submit(c echo.Context) error {
	if err := httpapi.RequireBearer(c.Request(), a.opts.Token); err != nil {
		return err
	}
	body, err := httpapi.ReadBody(c.Response(), c.Request(), a.opts.MaxSubmitBytes)
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "body is not valid JSON")
	}
	if err := itemapi.CheckDataSize(body); err != nil {
		return err
	}
	if ps := c.QueryParam("priority"); ps != "" {
		p, err := strconv.Atoi(ps)
		if err != nil {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "priority %q: not an integer", ps)
		}
		if body, err = a.m.WithPriority(body, p); err != nil {
			return err
		}
	}
	key := c.Request().Header.Get(itemapi.IdempotencyKeyHeader)
	if key == "" {
		it, err := a.m.Submit(c.Request().Context(), body)
		if err != nil {
			return err
		}
		return a.submitted(c, http.StatusAccepted, it.Name)
	}
	store := a.opts.Idempotency
	if store == nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "this manager does not keep Idempotency-Key records")
	}
	if err := idempotency.CheckKey(key); err != nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "%v", err)
	}
	store.Lock()
	defer store.Unlock()
	if r, ok := store.Lookup(key); ok {
		if r.Body != idempotency.Hash(body) {
			return itemapi.NewStatus(itemapi.ReasonConflict, "Idempotency-Key was used with a different body (for item %q)", r.Item)
		}
		c.Response().Header().Set(itemapi.IdempotentReplayedHeader, "true")
		return a.submitted(c, http.StatusOK, r.Item)
	}
	it, err := a.m.Submit(c.Request().Context(), body)
	if err != nil {
		return err
	}
	if err := store.Put(key, body, it.Name); err != nil {
		// The item exists; a retry with this key would make a second one.
		a.opts.Log.Error("cannot record an Idempotency-Key", "item", it.Name, "err", err)
		return itemapi.NewStatus(itemapi.ReasonInternal, "item %q was submitted, but its Idempotency-Key could not be recorded: do not retry with it", it.Name)
	}
	return a.submitted(c, http.StatusAccepted, it.Name)
}

// submitted answers a submission with the job's status.
func (a *api) submitted(c echo.Context, code int, item string) error {
	st, ok := a.m.Status(item)
	if !ok {
		// Finished and forgotten since (a replayed key of long ago).
		st = itemapi.JobStatus{Kind: "Job", APIVersion: itemapi.APIVersion, Item: item}
	}
	c.Response().Header().Set("Location", itemapi.JobsPath(item))
	return c.JSON(code, st)
}

func (a *api) cancel(c echo.Context) error {
	sel, err := a.selector(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.m.CancelJobs(c.Request().Context(), sel))
}

func (a *api) retry(c echo.Context) error {
	sel, err := a.selector(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.m.RetryJobs(c.Request().Context(), sel))
}

// selector authorises a bulk action and reads its JobSelector.
func (a *api) selector(c echo.Context) (itemapi.JobSelector, error) {
	var sel itemapi.JobSelector
	if err := httpapi.RequireBearer(c.Request(), a.opts.Token); err != nil {
		return sel, err
	}
	body, err := httpapi.ReadBody(c.Response(), c.Request(), maxSelectorBytes)
	if err != nil {
		return sel, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sel); err != nil {
		return sel, itemapi.NewStatus(itemapi.ReasonBadRequest, "body: want a JobSelector ({\"items\": [...]} or {\"state\": ..., \"prefix\": ...}): %v", err)
	}
	if err := sel.Validate(); err != nil {
		return sel, itemapi.NewStatus(itemapi.ReasonBadRequest, "%v", err)
	}
	return sel, nil
}

// maxSelectorBytes bounds a JobSelector (10,000 names of up to 1 KiB).
const maxSelectorBytes = 16 << 20

func (a *api) ready(c echo.Context) error {
	if err := a.m.Ready(); err != nil {
		return itemapi.NewStatus(itemapi.ReasonUnavailable, "%v", err)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
