package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager/dashboard"
	"github.com/itemq/itemq/internal/manager/managertest"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
)

// FuzzDashboard drives the dashboard's pages and forms in process with
// requests that went through net/http's own parsing: any method, target
// (job names, filters, search, paging, bulk selectors) and form body
// (actions, submissions, login). Never a 5xx (but 503 for too many live
// pages); what the request carried is shown escaped (the only script is
// the dashboard's own); a job submitted from the form is in the source.
func FuzzDashboard(f *testing.F) {
	for _, s := range []struct{ method, target, body string }{
		{"GET", "/ui/", ""}, {"GET", "/ui/jobs?state=dead&q=a&sort=oldest&page=2", ""}, {"GET", "/ui/jobs?state=nope&page=-1", ""},
		{"GET", "/ui/jobs?q=%3Cscript%3E", ""}, {"GET", "/ui/job/a%2Fb", ""}, {"GET", "/ui/job/done", ""}, {"GET", "/ui/job/%00", ""},
		{"GET", "/ui/job/", ""}, {"GET", "/ui/bulk?action=retry&state=dead", ""}, {"GET", "/ui/bulk?action=nuke", ""},
		{"GET", "/ui/submit", ""}, {"GET", "/ui/series", ""}, {"GET", "/ui/events?job=done", ""}, {"GET", "/ui/events?job=%00", ""},
		{"GET", "/ui/login?next=//evil.example", ""}, {"GET", "/ui/assets/app.js", ""}, {"GET", "/", ""},
		{"POST", "/ui/action", "action=cancel&item=a%2Fb"}, {"POST", "/ui/action", "action=retry&state=dead&prefix=d"},
		{"POST", "/ui/action", "action=retry"}, {"POST", "/ui/action", "action=zap&item=x"}, {"POST", "/ui/action", "%zz"},
		{"POST", "/ui/submit", `data=%7B%22frames%22%3A%5B1%2C2%5D%7D`}, {"POST", "/ui/submit", "data=not+json"},
		{"POST", "/ui/submit", "data=%5B%5D"}, {"POST", "/ui/login", "token=x&next=/ui/jobs"},
		// Larger than the source takes: a refusal (413), not a failed gateway.
		{"POST", "/ui/submit", "data=%7B%22pad%22%3A%22" + strings.Repeat("x", 5000) + "%22%7D"},
	} {
		f.Add(s.method, s.target, s.body)
	}
	mem := memsource.New()
	_ = mem.Put("a/b", json.RawMessage(`{"x":"<script>alert(1)</script>"}`))
	m := managertest.FuzzManager(f, mem)
	d := dashboard.New(m, dashboard.Options{})
	f.Fuzz(func(t *testing.T, method, target, body string) {
		req, ok := testutil.RawRequest(method, target, body)
		if !ok {
			return // net/http refuses it before any handler
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		// Live streams end with the request (soon: they are streams);
		// anything else has time to answer.
		timeout := 10 * time.Second
		if req.URL.Path == "/ui/events" {
			timeout = 5 * time.Millisecond
		}
		rctx, rcancel := context.WithTimeout(context.Background(), timeout)
		defer rcancel()
		req = req.WithContext(rctx)
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s", method, target, body, rec.Code, rec.Body)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
			if n := strings.Count(strings.ToLower(rec.Body.String()), "<script"); n > 1 {
				t.Fatalf("%s %s %q: %d script tags in the page:\n%s", method, target, body, n, rec.Body)
			}
		}
		if method == http.MethodPost && req.URL.Path == "/ui/submit" && rec.Code == http.StatusSeeOther {
			loc := rec.Header().Get("Location")
			name, ok := strings.CutPrefix(loc, "/ui/job/")
			if !ok {
				t.Fatalf("submit answered 303 to %q", loc)
			}
			item, err := url.PathUnescape(name)
			if err != nil {
				t.Fatalf("submit answered 303 to %q: %v", loc, err)
			}
			if _, err := mem.Get(context.Background(), item); err != nil {
				t.Fatalf("submitted %q as %q, not in the source: %v", body, item, err)
			}
			mem.Remove(item) // keep the source small
		}
	})
}
