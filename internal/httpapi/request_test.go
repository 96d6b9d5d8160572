package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/itemapi"
)

func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	for _, h := range []string{"Bearer s3cret", "bearer s3cret", "BEARER s3cret", "  bEaReR   s3cret  "} {
		r := httptest.NewRequest("POST", "/v1/jobs", nil)
		r.Header.Set("Authorization", h)
		if tok, ok := httpapi.BearerToken(r); !ok || tok != "s3cret" {
			t.Errorf("%q: token %q %v", h, tok, ok)
		}
		if err := httpapi.RequireBearer(r, "s3cret"); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic s3cret", "Bearers3cret", "Bearer wrong"} {
		r := httptest.NewRequest("POST", "/v1/jobs", nil)
		r.Header.Set("Authorization", h)
		if err := httpapi.RequireBearer(r, "s3cret"); !itemapi.IsUnauthorized(err) {
			t.Errorf("%q: %v, want Unauthorized", h, err)
		}
	}
	if err := httpapi.RequireBearer(httptest.NewRequest("GET", "/", nil), ""); err != nil {
		t.Errorf("no token configured: %v", err)
	}
}

func TestQueryAndPathEscapes(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/items?continue=%zz", nil)
	if _, err := httpapi.Query(r); !itemapi.IsBadRequest(err) {
		t.Fatalf("?continue=%%zz: %v, want BadRequest", err)
	}
	r = httptest.NewRequest("GET", "/v1/items?limit=2&watch=false", nil)
	if q, err := httpapi.Query(r); err != nil || q.Get("limit") != "2" {
		t.Fatalf("good query: %v %v", q, err)
	}
	r = httptest.NewRequest("GET", "/v1/items/a%2Fb%20c", nil)
	if n, err := httpapi.PathName(r, "/v1/items/"); err != nil || n != "a/b c" {
		t.Fatalf("PathName: %q %v", n, err)
	}
	r = httptest.NewRequest("GET", "/v1/items/a%00b", nil)
	if _, err := httpapi.PathName(r, "/v1/items/"); !itemapi.IsBadRequest(err) {
		t.Fatalf("PathName a%%00b: %v", err)
	}
}

func TestReadBody(t *testing.T) {
	for _, c := range []struct {
		body   string
		length int64 // -1: unknown (chunked)
		want   itemapi.Reason
	}{
		{"12345", 5, ""},
		{"123456", 6, itemapi.ReasonTooLarge},
		{"123456", -1, itemapi.ReasonTooLarge},
		{"12345", -1, ""},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.body))
		r.ContentLength = c.length
		b, err := httpapi.ReadBody(httptest.NewRecorder(), r, 5)
		if itemapi.ReasonOf(err) != c.want || (err == nil && string(b) != c.body) {
			t.Errorf("%q (length %d): %q %v, want %q", c.body, c.length, b, err, c.want)
		}
	}
}

func TestWriteStatus(t *testing.T) {
	w := httptest.NewRecorder()
	httpapi.WriteStatus(w, httptest.NewRequest("GET", "/", nil), itemapi.NewStatus(itemapi.ReasonUnavailable, "busy"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"reason":"Unavailable"`) {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}
