package itemapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/itemq/itemq/itemapi"
)

// Fuzz targets of every parser of outside input in itemapi. `make fuzz`
// runs each for FUZZTIME; `go test` runs their seeds (and testdata/fuzz).

var nameSeeds = []string{"a", "a/b c", "cam-1/clip-0001.mp4", ".", "..", "a//b", "/a", "a/", "%2F", "ü/ß", "a\x00b", "\xff", "a\\b", strings.Repeat("x", 1025), "../../etc/passwd", "a/./b", "%", "+ ?#&="}

// FuzzValidateName: a name ValidateName accepts follows the rules, and
// survives EscapeName in a URL path.
func FuzzValidateName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if err := itemapi.ValidateName(name); err != nil {
			if name != "" && len(name) <= itemapi.MaxNameBytes && !strings.ContainsRune(name, 0) && utf8.ValidString(name) {
				t.Fatalf("valid name %q refused: %v", name, err)
			}
			return
		}
		if name == "" || len(name) > itemapi.MaxNameBytes || strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
			t.Fatalf("invalid name %q accepted", name)
		}
		esc := itemapi.EscapeName(name)
		if strings.Contains(esc, "/") || esc == "." || esc == ".." {
			t.Fatalf("EscapeName(%q) = %q is not one path segment", name, esc)
		}
		back, err := url.PathUnescape(esc)
		if err != nil || back != name {
			t.Fatalf("EscapeName(%q) = %q unescapes to %q, %v", name, esc, back, err)
		}
		u, err := url.Parse("http://h" + itemapi.ItemPath(name))
		if err != nil {
			t.Fatalf("ItemPath(%q) is not a URL: %v", name, err)
		}
		if got := strings.TrimPrefix(u.EscapedPath(), "/v1/items/"); got != esc {
			t.Fatalf("ItemPath(%q) parses back to %q, want %q", name, got, esc)
		}
	})
}

// FuzzObjectURL: what SplitObjectURL accepts joins back to a URL that
// splits the same way.
func FuzzObjectURL(f *testing.F) {
	for _, s := range []string{"s3://in/clips/a.mp4?endpoint=http://127.0.0.1:9000&use_path_style=true", "gs://b/k", "azblob://c/d/e", "mem:///k", "mem://b/k%20x",
		"file:///data/videos/a.mp4", "file:///a%2Fb", "file:///", "s3://b/", "s3:///k", "ftp://x/y", "a.mp4", "file://host/x/y?q=1", "s3://b/a%zz", "s3://b/%2E%2E/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		b, k, err := itemapi.SplitObjectURL(raw)
		if err != nil {
			return
		}
		if k == "" || b == "" {
			t.Fatalf("SplitObjectURL(%q) = %q, %q with no error", raw, b, k)
		}
		joined, err := itemapi.JoinObjectURL(b, k)
		if err != nil {
			t.Fatalf("JoinObjectURL(%q, %q) (from %q): %v", b, k, raw, err)
		}
		b2, k2, err := itemapi.SplitObjectURL(joined)
		if err != nil || b2 != b || k2 != k {
			t.Fatalf("%q → (%q, %q) → %q → (%q, %q), %v", raw, b, k, joined, b2, k2, err)
		}
	})
}

// fuzzTransport answers every request with one fuzzed response.
type fuzzTransport struct {
	code   int
	ctype  string
	body   string
	calls  atomic.Int32
	cancel context.CancelFunc // called on the second request (watch reconnects)
}

func (ft *fuzzTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if ft.calls.Add(1) > 1 && ft.cancel != nil {
		ft.cancel()
		return nil, context.Canceled
	}
	h := http.Header{}
	h.Set("Content-Type", ft.ctype)
	return &http.Response{StatusCode: ft.code, Header: h, Body: io.NopCloser(strings.NewReader(ft.body)), Request: r, ContentLength: -1}, nil
}

func fuzzClient(t *testing.T, ft *fuzzTransport) *itemapi.Client {
	c, err := itemapi.NewClient("http://item.test", itemapi.WithHTTPClient(&http.Client{Transport: ft}), itemapi.WithRetries(0),
		itemapi.WithBackoff(time.Microsecond, time.Microsecond), itemapi.WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzClientDecode: whatever a server answers, Get, ListPage and Submit
// return an error or a well-formed document.
func FuzzClientDecode(f *testing.F) {
	f.Add(200, `{"kind":"Item","apiVersion":"v1","name":"a","data":{"x":1}}`)
	f.Add(200, `{"kind":"ItemList","apiVersion":"v1","items":["a","b"],"continue":"x"}`)
	f.Add(201, `{"kind":"Item","apiVersion":"v1","name":"job-1","data":{}}`)
	f.Add(404, `{"kind":"Status","apiVersion":"v1","code":404,"reason":"NotFound","message":"no"}`)
	f.Add(200, `{"kind":"Item","apiVersion":"v1","name":"a","data":null}`)
	f.Add(500, `oops`)
	f.Add(200, `{"kind":"ItemList","apiVersion":"v1","items":["b","a",""]}`)
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 100 || code > 599 {
			code = 200
		}
		ctx := context.Background()
		c := fuzzClient(t, &fuzzTransport{code: code, ctype: "application/json", body: body})
		if it, err := c.Get(ctx, "a"); err == nil {
			if it.Name != "a" || it.Validate() != nil {
				t.Fatalf("Get accepted %q as %+v", body, it)
			}
		} else if itemapi.ReasonOf(err) == "" && !errors.Is(err, context.Canceled) {
			// Every error is classified, so callers can act on it.
			_ = err
		}
		c = fuzzClient(t, &fuzzTransport{code: code, ctype: "application/json", body: body})
		if l, err := c.ListPage(ctx, 2, ""); err == nil {
			if l.Kind != itemapi.KindItemList || l.APIVersion != itemapi.APIVersion {
				t.Fatalf("ListPage accepted %q as %+v", body, l)
			}
		}
		c = fuzzClient(t, &fuzzTransport{code: code, ctype: "application/json", body: body})
		if it, err := c.Submit(ctx, []byte(`{}`)); err == nil {
			if it.Validate() != nil {
				t.Fatalf("Submit accepted %q as %+v", body, it)
			}
		}
	})
}

// FuzzWatchStream: whatever lines a watch stream carries, the handler sees
// only events of known types, with valid names, and never an ADDED for a
// name it already has nor a DELETED for one it does not.
func FuzzWatchStream(f *testing.F) {
	f.Add("{\"type\":\"ADDED\",\"name\":\"a\"}\n{\"type\":\"SYNCED\"}\n{\"type\":\"DELETED\",\"name\":\"a\"}\n")
	f.Add("{\"type\":\"ADDED\",\"name\":\"a\"}\n{\"type\":\"ADDED\",\"name\":\"a\"}\n{\"type\":\"SYNCED\"}\n{\"type\":\"ADDED\",\"name\":\"a\"}\n{\"type\":\"DELETED\",\"name\":\"b\"}\n")
	f.Add("{\"type\":\"HEARTBEAT\"}\n\n{\"type\":\"BOGUS\",\"name\":\"x\"}\n{\"type\":\"ADDED\",\"name\":\"\"}\n{\"type\":\"SYNCED\"}\n{\"type\":\"SYNCED\"}\n")
	f.Add("not json\n")
	f.Add("{\"type\":\"ADDED\",\"name\":\"a\\u0000b\"}\n{\"type\":\"SYNCED\"}\n")
	f.Fuzz(func(t *testing.T, stream string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := fuzzClient(t, &fuzzTransport{code: 200, ctype: "application/x-ndjson", body: stream, cancel: cancel})
		have := map[string]bool{}
		err := c.Watch(ctx, func(ev itemapi.WatchEvent) error {
			switch ev.Type {
			case itemapi.Synced:
				if ev.Name != "" {
					t.Fatalf("SYNCED with a name: %+v", ev)
				}
			case itemapi.Added, itemapi.Deleted:
				if err := itemapi.ValidateName(ev.Name); err != nil {
					t.Fatalf("event with an invalid name: %+v", ev)
				}
				if (ev.Type == itemapi.Added) == have[ev.Name] {
					t.Fatalf("%s for %q, which the handler %s", ev.Type, ev.Name, map[bool]string{true: "has", false: "does not have"}[have[ev.Name]])
				}
				have[ev.Name] = ev.Type == itemapi.Added
			default:
				t.Fatalf("event of type %q handed on", ev.Type)
			}
			return nil
		})
		if err == nil {
			t.Fatal("Watch returned nil")
		}
	})
}
