package ambassador_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

func newServer(t *testing.T) (*httptest.Server, *memsource.Driver) {
	t.Helper()
	d := memsource.New()
	src := source.New(d, source.WithMaxSubmitBytes(1024))
	h, stop := ambassador.NewHandler(src, slog.New(slog.DiscardHandler), "test", 50*time.Millisecond)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { stop(); srv.Close(); src.Close() })
	return srv, d
}

func do(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func status(t *testing.T, body string) itemapi.Status {
	t.Helper()
	var st itemapi.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("not a Status: %s", body)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" {
		t.Fatalf("bad Status document: %s", body)
	}
	return st
}

func TestRoutesAndErrors(t *testing.T) {
	srv, d := newServer(t)
	_ = d.Put("a/b c", json.RawMessage(`{"x":1}`))
	_ = d.Put("z", json.RawMessage(`{"x":2}`))

	resp, body := do(t, "GET", srv.URL+"/v1/items", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"items":["a/b c","z"]`) || !strings.Contains(body, `"kind":"ItemList"`) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", srv.URL+"/v1/items?limit=1", "")
	var l itemapi.ItemList
	_ = json.Unmarshal([]byte(body), &l)
	if len(l.Items) != 1 || l.Continue == "" {
		t.Fatalf("page 1: %s", body)
	}
	resp, body = do(t, "GET", srv.URL+"/v1/items?limit=1&continue="+l.Continue, "")
	if !strings.Contains(body, `"items":["z"]`) || strings.Contains(body, "continue") {
		t.Fatalf("page 2: %s", body)
	}
	resp, body = do(t, "GET", srv.URL+"/v1/items/"+itemapi.EscapeName("a/b c"), "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"name":"a/b c"`) || !strings.Contains(body, `"data":{"x":1}`) {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	cases := []struct {
		method, path, body string
		code               int
		reason             itemapi.Reason
	}{
		{"GET", "/v1/items/missing", "", 404, itemapi.ReasonNotFound},
		{"GET", "/v1/items?limit=x", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items?watch=maybe", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items?continue=***", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items?continue=zzzz", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items?continue=%zz", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items?limit=%zz", "", 400, itemapi.ReasonBadRequest},
		{"DELETE", "/v1/items/z?outcome=%zz", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items?limit=1&continue=YQ", "", 400, itemapi.ReasonBadRequest},
		{"GET", "/v1/items/a%00b", "", 400, itemapi.ReasonBadRequest},
		{"PUT", "/v1/items/z", "", 405, itemapi.ReasonMethodNotAllowed},
		{"POST", "/v1/items", "not json", 400, itemapi.ReasonBadRequest},
		{"POST", "/v1/items", `{"p":"` + strings.Repeat("x", 2000) + `"}`, 413, itemapi.ReasonTooLarge},
		{"DELETE", "/v1/items/z?outcome=meh", "", 400, itemapi.ReasonBadRequest},
		{"DELETE", "/v1/items/missing?outcome=failed", "", 404, itemapi.ReasonNotFound},
		{"GET", "/nope", "", 404, itemapi.ReasonNotFound},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, srv.URL+c.path, c.body)
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.code)
			continue
		}
		if st := status(t, body); st.Reason != c.reason || st.Code != c.code {
			t.Errorf("%s %s: %+v, want reason %s", c.method, c.path, st, c.reason)
		}
	}
	resp, body = do(t, "POST", srv.URL+"/v1/items", `{"job":1}`)
	if resp.StatusCode != 201 || !strings.HasPrefix(resp.Header.Get("Location"), "/v1/items/submit-") {
		t.Fatalf("submit: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = do(t, "DELETE", srv.URL+"/v1/items/z?outcome=failed", "")
	if resp.StatusCode != 204 {
		t.Fatalf("ack: %d", resp.StatusCode)
	}
	if o, _ := d.Outcome("z"); o != itemapi.Failed {
		t.Fatalf("outcome of z = %q", o)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, body := do(t, "GET", srv.URL+p, ""); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	_, body = do(t, "GET", srv.URL+"/metrics", "")
	for _, m := range []string{"itemq_ambassador_requests_total", "itemq_ambassador_items 2", "itemq_build_info", "itemq_ambassador_watch_clients 0"} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %q", m)
		}
	}
	d.SetReady(io.ErrUnexpectedEOF)
	if resp, body := do(t, "GET", srv.URL+"/readyz", ""); resp.StatusCode != 503 || status(t, body).Reason != itemapi.ReasonUnavailable {
		t.Fatalf("readyz when not ready: %d %s", resp.StatusCode, body)
	}
}

func TestWatchStream(t *testing.T) {
	srv, d := newServer(t)
	_ = d.Put("first", json.RawMessage(`{}`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/items?watch=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != ambassador.NDJSONContentType {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() itemapi.WatchEvent {
		if !sc.Scan() {
			t.Fatalf("stream ended: %v", sc.Err())
		}
		var ev itemapi.WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		return ev
	}
	if ev := next(); ev != (itemapi.WatchEvent{Type: itemapi.Added, Name: "first"}) {
		t.Fatalf("first event %v", ev)
	}
	if ev := next(); ev.Type != itemapi.Synced {
		t.Fatalf("second event %v", ev)
	}
	start := time.Now()
	_ = d.Put("second", json.RawMessage(`{"n":2}`))
	// After the snapshot, ADDED carries the item's document (no GET needed).
	if ev := next(); ev.Type != itemapi.Added || ev.Name != "second" || ev.Item == nil ||
		ev.Item.Name != "second" || string(ev.Item.Data) != `{"n":2}` {
		t.Fatalf("third event %+v (item %+v)", ev, ev.Item)
	}
	if time.Since(start) > 5*time.Second { // not held until the next heartbeat (15 s)
		t.Fatalf("event took %v", time.Since(start))
	}
	d.Remove("first")
	if ev := next(); ev != (itemapi.WatchEvent{Type: itemapi.Deleted, Name: "first"}) {
		t.Fatalf("fourth event %v", ev)
	}
	// Idle: heartbeats arrive (50 ms in this test).
	if ev := next(); ev.Type != itemapi.Heartbeat {
		t.Fatalf("idle event %v", ev)
	}
}
