package ambassador_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// FuzzHandler drives the real handler in process with requests that went
// through net/http's own request parsing: any method, target (path escapes,
// query) and body. Every answer is a 2xx document or a Status with the
// answer's code, never a 5xx; a created item can be read back.
func FuzzHandler(f *testing.F) {
	for _, s := range []struct{ method, target, body string }{
		{"GET", "/v1/items", ""}, {"GET", "/v1/items?limit=1", ""}, {"GET", "/v1/items?limit=1&continue=" + source.EncodeContinue("a"), ""},
		{"GET", "/v1/items?continue=zzzz", ""}, {"GET", "/v1/items?continue=%zz", ""}, {"GET", "/v1/items?limit=-1", ""},
		{"GET", "/v1/items/a%2Fb%20c", ""}, {"GET", "/v1/items/%2E%2E", ""}, {"GET", "/v1/items/a%00b", ""}, {"GET", "/v1/items/", ""},
		{"POST", "/v1/items", `{"job":1}`}, {"POST", "/v1/items", `[1]`}, {"POST", "/v1/items", `{"a":"<>&"}`}, {"POST", "/v1/items", "not json"},
		{"DELETE", "/v1/items/z?outcome=failed", ""}, {"DELETE", "/v1/items/z?outcome=%zz", ""}, {"PUT", "/v1/items/z", ""},
		{"GET", "/v1/items?watch=maybe", ""}, {"GET", "/healthz", ""}, {"HEAD", "/v1/items/z", ""}, {"GET", "//v1/items", ""},
	} {
		f.Add(s.method, s.target, s.body)
	}
	d := memsource.New()
	src := source.New(d, source.WithMaxSubmitBytes(4096))
	h, stop := ambassador.NewHandler(src, slog.New(slog.DiscardHandler), "fuzz", time.Hour)
	f.Cleanup(func() { stop(); src.Close() })
	f.Fuzz(func(t *testing.T, method, target, body string) {
		_ = d.Put("a/b c", json.RawMessage(`{"x":1}`))
		_ = d.Put("z", json.RawMessage(`{"x":2}`))
		req, ok := testutil.RawRequest(method, target, body)
		if !ok {
			return // net/http refuses it before any handler
		}
		if q, err := req.URL.Parse(req.RequestURI); err == nil {
			if w, err := strconv.ParseBool(q.Query().Get("watch")); err == nil && w && req.Method == "GET" {
				return // a stream: not a request/answer
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if req.Method == http.MethodHead || rec.Code == http.StatusNoContent {
			if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s %s: %d", method, target, rec.Code)
			}
			return // no body
		}
		if testutil.CheckAnswer(t, req, rec) {
			return
		}
		var doc struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		}
		if strings.HasPrefix(req.URL.Path, "/v1/") {
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("%s %s: %d answer is not JSON: %q", method, target, rec.Code, rec.Body)
			}
		}
		if rec.Code == http.StatusCreated {
			if doc.Kind != itemapi.KindItem || rec.Header().Get("Location") != itemapi.ItemPath(doc.Name) {
				t.Fatalf("POST: %s, Location %q", rec.Body, rec.Header().Get("Location"))
			}
			if _, err := d.Get(t.Context(), doc.Name); err != nil {
				t.Fatalf("created %q, not there: %v", doc.Name, err)
			}
			d.Remove(doc.Name) // keep the source small
		}
	})
}
