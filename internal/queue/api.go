package queue

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// APIOptions configure the status API.
type APIOptions struct {
	// Token, when set, is the bearer token POST /v1/jobs requires.
	Token string
	// MaxSubmitBytes bounds a submitted job's body (default 1 MiB).
	MaxSubmitBytes int64
	Log            *slog.Logger
}

type api struct {
	m    *Manager
	opts APIOptions
}

// NewAPI returns the status API's handler:
//
//	GET  /v1/jobs?state=&limit=&continue=   JobStatusList
//	GET  /v1/jobs/{item}                    JobStatus
//	POST /v1/jobs                           submit through the source → 202, Location: /v1/jobs/{item}
//	GET  /healthz, /readyz, /metrics
func NewAPI(m *Manager, opts APIOptions) http.Handler {
	if opts.MaxSubmitBytes <= 0 {
		opts.MaxSubmitBytes = 1 << 20
	}
	if opts.Log == nil {
		opts.Log = m.log
	}
	a := &api{m: m, opts: opts}
	e := httpapi.New(opts.Log)
	e.GET("/v1/jobs", a.list)
	e.POST("/v1/jobs", a.submit)
	e.GET("/v1/jobs/*", a.get)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", a.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{})))
	return e
}

func (a *api) list(c echo.Context) error {
	q := c.QueryParams()
	var state State
	if s := q.Get("state"); s != "" {
		st, err := ParseState(s)
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
	items, last := a.m.StatusList(state, after, limit)
	doc := JobStatusList{Kind: "JobList", APIVersion: itemapi.APIVersion, Items: items}
	if last != "" {
		doc.Continue = source.EncodeContinue(last)
	}
	return c.JSON(http.StatusOK, doc)
}

func (a *api) get(c echo.Context) error {
	raw := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/v1/jobs/")
	name, err := url.PathUnescape(raw)
	if err != nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "item name %q: bad escaping", raw)
	}
	if err := itemapi.ValidateName(name); err != nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "%v", err)
	}
	st, ok := a.m.Status(name)
	if !ok {
		return itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", name)
	}
	return c.JSON(http.StatusOK, st)
}

func (a *api) submit(c echo.Context) error {
	if a.opts.Token != "" {
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.opts.Token)) != 1 {
			return itemapi.NewStatus(itemapi.ReasonUnauthorized, "a valid bearer token is required to submit jobs")
		}
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, a.opts.MaxSubmitBytes+1))
	if err != nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "read body: %v", err)
	}
	if int64(len(body)) > a.opts.MaxSubmitBytes {
		return itemapi.NewStatus(itemapi.ReasonTooLarge, "body is more than the limit of %d bytes", a.opts.MaxSubmitBytes)
	}
	if !json.Valid(body) {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "body is not valid JSON")
	}
	it, err := a.m.Submit(c.Request().Context(), body)
	if err != nil {
		return err
	}
	st, _ := a.m.Status(it.Name)
	c.Response().Header().Set("Location", "/v1/jobs/"+itemapi.EscapeName(it.Name))
	return c.JSON(http.StatusAccepted, st)
}

func (a *api) ready(c echo.Context) error {
	if err := a.m.Ready(); err != nil {
		return itemapi.NewStatus(itemapi.ReasonUnavailable, "%v", err)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// readHeaderTimeout of the status API server.
const readHeaderTimeout = 10 * time.Second
