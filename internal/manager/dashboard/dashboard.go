// Package dashboard is the manager's web UI at /ui/: an overview that moves
// live, the jobs table, a job's page (its data, attempts, log, outputs with
// image previews), and the actions (cancel, retry, bulk redrive, submit).
//
// Why this stack: server-rendered html/template pages with one small
// script, both embedded in the binary. The pages work without JavaScript
// (tables, forms and actions are plain HTML); the script only adds what
// must move (the live counts and charts, over server-sent events; the
// followed log) — no build step, no npm, no CDN, and a strict
// Content-Security-Policy (no inline script or style).
package dashboard

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/results"
	"github.com/itemq/itemq/internal/manager/webhook"
	"github.com/itemq/itemq/itemapi"
)

//go:embed assets templates
var files embed.FS

// Options configure the dashboard.
type Options struct {
	// Token guards the actions; ReadToken (or Token), when set, the pages.
	// A browser gives them once on /ui/login and keeps them in a cookie
	// (HttpOnly, SameSite=Strict).
	Token, ReadToken string
	// Source describes the source (its URL without secrets).
	Source string
	// Interval between samples of the charts (default 5s); they keep the
	// last hour.
	Interval time.Duration
	// Deliveries, when set, lists what became of an item's webhook events.
	Deliveries func(item string) []webhook.Delivery
	Log        *slog.Logger
}

// CookieName holds the token a browser logged in with.
const CookieName = "itemq_token"

// Dashboard serves the UI.
type Dashboard struct {
	m    *manager.Manager
	opts Options
	tmpl *template.Template
	mux  *http.ServeMux

	mu      sync.Mutex
	sum     itemapi.Summary // the last summary, and when it was taken
	sumAt   time.Time
	samples []sample // the last hour, oldest first
	subs    map[chan []byte]struct{}
	csrf    *http.CrossOriginProtection
}

// sample is one point of the charts.
type sample struct {
	T          int64   `json:"t"` // Unix seconds
	Done       int     `json:"done"`
	Throughput float64 `json:"throughput"` // jobs finished per second since the previous sample
	Lambda     float64 `json:"lambda"`
	Backlog    int     `json:"backlog"`
	Active     int     `json:"active"`
	C          int     `json:"c"`
}

// New returns the dashboard; Run samples the charts and feeds live pages.
func New(m *manager.Manager, opts Options) *Dashboard {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{m: m, opts: opts, subs: map[chan []byte]struct{}{}, csrf: http.NewCrossOriginProtection()}
	d.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"since":    since,
		"dur":      durOf,
		"stamp":    stamp,
		"jobURL":   func(item string) string { return "/ui/job/" + itemapi.EscapeName(item) },
		"esc":      itemapi.EscapeName,
		"isImage":  isImage,
		"states":   func() []itemapi.State { return states },
		"exitCode": exitCode,
		"seconds":  seconds,
	}).ParseFS(files, "templates/*.html"))
	assets, _ := fs.Sub(files, "assets")
	d.mux = http.NewServeMux()
	d.mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", assetServer(assets)))
	d.mux.HandleFunc("GET /ui/{$}", d.read(d.overview))
	d.mux.HandleFunc("GET /ui/jobs", d.read(d.jobs))
	d.mux.HandleFunc("GET /ui/job/", d.read(d.job))
	d.mux.HandleFunc("GET /ui/submit", d.read(d.submitForm))
	d.mux.HandleFunc("POST /ui/submit", d.act(d.submit))
	d.mux.HandleFunc("GET /ui/bulk", d.read(d.bulkConfirm))
	d.mux.HandleFunc("POST /ui/action", d.act(d.action))
	d.mux.HandleFunc("GET /ui/events", d.read(d.events))
	d.mux.HandleFunc("GET /ui/series", d.read(d.series))
	d.mux.HandleFunc("GET /ui/login", d.loginForm)
	d.mux.HandleFunc("POST /ui/login", d.login)
	d.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
	return d
}

// assetServer serves the embedded assets; a name an fs.FS cannot hold
// (invalid UTF-8, say) is not found, where http.FileServerFS answers 500.
func assetServer(assets fs.FS) http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

var states = []itemapi.State{itemapi.StatePending, itemapi.StateRunning, itemapi.StateSucceeded,
	itemapi.StateFailed, itemapi.StateDead, itemapi.StateCancelled}

// csp forbids everything the pages do not use: no inline script or style,
// nothing from elsewhere, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves /, /ui/ and below, with the security headers on every
// answer and cross-origin writes refused.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if err := d.csrf.Check(r); err != nil {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	d.mux.ServeHTTP(w, r)
}

// TokenFromCookie returns the token a browser logged in with.
func TokenFromCookie(r *http.Request) string {
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

func equal(a, b string) bool { return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (d *Dashboard) canRead(r *http.Request) bool {
	if d.opts.ReadToken == "" {
		return true
	}
	t := TokenFromCookie(r)
	return equal(t, d.opts.ReadToken) || equal(t, d.opts.Token)
}

func (d *Dashboard) canAct(r *http.Request) bool {
	if d.opts.Token == "" {
		return true
	}
	return equal(TokenFromCookie(r), d.opts.Token) || equal(r.PostFormValue("token"), d.opts.Token)
}

func (d *Dashboard) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !d.canRead(r) {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r)
	}
}

func (d *Dashboard) act(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, itemapi.MaxDataBytes+64<<10)
		if err := r.ParseForm(); err != nil {
			d.fail(w, r, http.StatusBadRequest, "the form could not be read: "+err.Error())
			return
		}
		if !d.canAct(r) {
			d.fail(w, r, http.StatusUnauthorized, "this action needs the manager's token (MANAGER_TOKEN): log in with it, or give it in the form")
			return
		}
		h(w, r)
	}
}

// page is what every template gets.
type page struct {
	Title     string
	Nav       string
	NeedToken bool // actions ask for the token
	LoggedIn  bool
	Summary   itemapi.Summary
	Source    string
	Data      any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name, title, nav string, data any) {
	p := page{Title: title, Nav: nav, NeedToken: d.opts.Token != "" && !equal(TokenFromCookie(r), d.opts.Token),
		LoggedIn: TokenFromCookie(r) != "", Summary: d.summary(), Source: d.opts.Source, Data: data}
	var buf bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		d.opts.Log.Error("dashboard template", "page", name, "err", err)
		http.Error(w, "the page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	d.render(w, r, code, "error.html", "Error", "", msg)
}

// summary is the manager's summary, taken at most once a second however
// many pages are drawn (it walks every job).
func (d *Dashboard) summary() itemapi.Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.sumAt) < pushInterval {
		return d.sum
	}
	d.sum, d.sumAt = d.m.Summary(), time.Now()
	return d.sum
}

// ---- pages ----

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	running, _ := d.m.StatusList(itemapi.StateRunning, "", "", 20)
	d.render(w, r, http.StatusOK, "overview.html", "Overview", "overview", running)
}

// pageSize is the jobs table's page.
const pageSize = 100

type jobsPage struct {
	State         itemapi.State
	Q, Sort       string
	Jobs          []itemapi.JobStatus
	Total         int
	Next, Prev    string // query strings of the neighbour pages
	From, To      int
	StateCounts   map[itemapi.State]int
	SelectedCount int
}

func (d *Dashboard) jobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var state itemapi.State
	if s := q.Get("state"); s != "" {
		st, err := itemapi.ParseState(s)
		if err != nil {
			d.fail(w, r, http.StatusBadRequest, err.Error())
			return
		}
		state = st
	}
	search := strings.TrimSpace(q.Get("q"))
	if len(search) > 1024 {
		d.fail(w, r, http.StatusBadRequest, "the search is longer than 1024 characters")
		return
	}
	sortBy := q.Get("sort")
	if sortBy != "" && sortBy != "name" && sortBy != "recent" {
		d.fail(w, r, http.StatusBadRequest, "sort: want name or recent")
		return
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	offset = max(offset, 0)
	jobs, total := d.m.JobsPage(state, search, sortBy == "recent", offset, pageSize)
	jp := jobsPage{State: state, Q: search, Sort: sortBy, Total: total, Jobs: jobs}
	end := min(offset+pageSize, total)
	jp.From, jp.To = min(offset+1, total), end
	link := func(off int) string {
		v := url.Values{}
		if state != "" {
			v.Set("state", string(state))
		}
		if search != "" {
			v.Set("q", search)
		}
		if sortBy != "" {
			v.Set("sort", sortBy)
		}
		v.Set("offset", strconv.Itoa(off))
		return "/ui/jobs?" + v.Encode()
	}
	if end < total {
		jp.Next = link(end)
	}
	if offset > 0 {
		jp.Prev = link(max(offset-pageSize, 0))
	}
	d.render(w, r, http.StatusOK, "jobs.html", "Jobs", "jobs", jp)
}

type jobPage struct {
	Job      itemapi.JobStatus
	Data     string // the item's data, indented JSON
	DataNote string
	Outputs  *itemapi.Manifest
	OutNote  string
	Retry    bool
	Cancel   bool
	Hooks    bool // webhooks are configured
	Delivery []webhook.Delivery
}

func (d *Dashboard) job(w http.ResponseWriter, r *http.Request) {
	item, err := httpapi.PathName(r, "/ui/job/")
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, "not an item name: "+err.Error())
		return
	}
	st, ok := d.m.Status(item)
	if !ok {
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("no job for item %q", item))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	st.History, _ = d.m.History(ctx, item)
	jp := jobPage{Job: st, Cancel: !st.State.Finished(),
		Retry: st.State == itemapi.StateFailed || st.State == itemapi.StateDead || st.State == itemapi.StateCancelled}
	if it, err := d.m.Item(ctx, item); err == nil {
		var b bytes.Buffer
		if json.Indent(&b, it.Data, "", "  ") == nil {
			jp.Data = b.String()
		} else {
			jp.Data = string(it.Data)
		}
	} else {
		jp.DataNote = "The source does not hold the item any more (it was archived): " + err.Error()
	}
	if d.opts.Deliveries != nil {
		jp.Hooks, jp.Delivery = true, d.opts.Deliveries(item)
	}
	if d.m.OutputURL() != "" {
		if man, err := results.Manifest(ctx, d.m.OutputURL(), item); err == nil {
			jp.Outputs = man
		} else {
			jp.OutNote = err.Error()
		}
	}
	d.render(w, r, http.StatusOK, "job.html", item, "jobs", jp)
}

func (d *Dashboard) submitForm(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "submit.html", "Submit a job", "submit", map[string]string{"Data": "{\n  \n}"})
}

func (d *Dashboard) submit(w http.ResponseWriter, r *http.Request) {
	data := strings.TrimSpace(r.PostFormValue("data"))
	if !json.Valid([]byte(data)) || !strings.HasPrefix(data, "{") {
		d.render(w, r, http.StatusBadRequest, "submit.html", "Submit a job", "submit",
			map[string]string{"Data": data, "Error": "The job's data must be a JSON object, e.g. {\"url\": \"s3://…\"}."})
		return
	}
	it, err := d.m.Submit(r.Context(), json.RawMessage(data))
	if err != nil {
		// The source's refusal keeps its code (too large, bad request,
		// not allowed); only a source that failed is a bad gateway.
		code := http.StatusBadGateway
		if c := itemapi.ReasonOf(err).HTTPCode(); c >= 400 && c < 500 {
			code = c
		}
		d.render(w, r, code, "submit.html", "Submit a job", "submit",
			map[string]string{"Data": data, "Error": "The source refused the job: " + err.Error()})
		return
	}
	http.Redirect(w, r, "/ui/job/"+itemapi.EscapeName(it.Name), http.StatusSeeOther)
}

// selector reads a bulk action's selector from a query or a form.
func selector(v url.Values) (itemapi.JobSelector, error) {
	sel := itemapi.JobSelector{Items: v["item"], State: itemapi.State(v.Get("state")), Prefix: v.Get("prefix")}
	return sel, sel.Validate()
}

type confirmPage struct {
	Action string
	Sel    itemapi.JobSelector
	Count  int
	Sample []string
}

func (d *Dashboard) bulkConfirm(w http.ResponseWriter, r *http.Request) {
	action := r.URL.Query().Get("action")
	if action != "cancel" && action != "retry" {
		d.fail(w, r, http.StatusBadRequest, "action: want cancel or retry")
		return
	}
	sel, err := selector(r.URL.Query())
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	items := d.m.Select(sel)
	d.render(w, r, http.StatusOK, "confirm.html", "Confirm", "jobs", confirmPage{Action: action, Sel: sel, Count: len(items), Sample: items[:min(len(items), 10)]})
}

func (d *Dashboard) action(w http.ResponseWriter, r *http.Request) {
	sel, err := selector(r.PostForm)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var res itemapi.ActionResult
	switch r.PostFormValue("action") {
	case "cancel":
		res = d.m.CancelJobs(r.Context(), sel)
	case "retry":
		res = d.m.RetryJobs(r.Context(), sel)
	default:
		d.fail(w, r, http.StatusBadRequest, "action: want cancel or retry")
		return
	}
	if len(sel.Items) == 1 && res.Errors == 0 {
		item := sel.Items[0]
		if len(res.Items) == 1 && res.Items[0].NewItem != "" {
			item = res.Items[0].NewItem
		}
		http.Redirect(w, r, "/ui/job/"+itemapi.EscapeName(item), http.StatusSeeOther)
		return
	}
	d.render(w, r, http.StatusOK, "result.html", "Result", "jobs", res)
}

func (d *Dashboard) loginForm(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login.html", "Log in", "", map[string]string{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	tok := r.PostFormValue("token")
	if !equal(tok, d.opts.Token) && !equal(tok, d.opts.ReadToken) {
		d.render(w, r, http.StatusUnauthorized, "login.html", "Log in", "", map[string]string{"Next": safeNext(r.PostFormValue("next")), "Error": "That is not a token of this manager."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// safeNext keeps a redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

// ---- helpers for the templates ----

func since(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return durOf(time.Since(t)) + " ago"
}

func durOf(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func seconds(s float64) string { return durOf(time.Duration(s * float64(time.Second))) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func exitCode(p *int) string {
	if p == nil {
		return "–"
	}
	return strconv.Itoa(*p)
}

func isImage(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".webp":
		return true
	}
	return false
}
