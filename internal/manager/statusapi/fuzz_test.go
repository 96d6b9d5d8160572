package statusapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager/managertest"
	"github.com/itemq/itemq/internal/manager/statusapi"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// FuzzStatusAPI drives the manager's status API in process with requests
// that went through net/http's own parsing: any method, target (path
// escapes, query: state, limit, continue, prefix, wait, tail, follow, file,
// priority) and body (submissions, selectors). Every answer is a 2xx or a
// Status with the answer's code, never a 5xx; a submitted job can be read
// back.
func FuzzStatusAPI(f *testing.F) {
	for _, s := range []struct{ method, target, body string }{
		{"GET", "/v1/jobs", ""}, {"GET", "/v1/jobs?state=dead&limit=2", ""}, {"GET", "/v1/jobs?state=nope", ""},
		{"GET", "/v1/jobs?limit=-3", ""}, {"GET", "/v1/jobs?continue=zzz", ""}, {"GET", "/v1/jobs?prefix=a&continue=%zz", ""},
		{"GET", "/v1/jobs/a%2Fb", ""}, {"GET", "/v1/jobs/done?wait=1ms", ""}, {"GET", "/v1/jobs/done?wait=forever", ""},
		{"GET", "/v1/jobs/", ""}, {"GET", "/v1/summary", ""}, {"GET", "/v1/scaling", ""}, {"GET", "/v1/logs/done?tail=5", ""},
		{"GET", "/v1/logs/done?tail=-1&follow=maybe", ""}, {"GET", "/v1/outputs/done", ""}, {"GET", "/v1/outputs/done?file=../x", ""},
		{"POST", "/v1/jobs", `{"frames":[1,2]}`}, {"POST", "/v1/jobs", `not json`}, {"POST", "/v1/jobs", `[]`},
		{"POST", "/v1/cancel", `{"items":["a/b"]}`}, {"POST", "/v1/cancel", `{}`}, {"POST", "/v1/retry", `{"state":"dead","prefix":"x"}`},
		{"POST", "/v1/retry", `{"state":"running"}`}, {"POST", "/v1/cancel", `{"items":[""]}`}, {"DELETE", "/v1/jobs/a", ""},
		{"GET", "/healthz", ""}, {"GET", "/readyz", ""}, {"GET", "/v1/jobs/%00", ""},
		{"POST", "/v1/jobs?priority=3", `{"x":1,"tenant":"t1"}`}, {"POST", "/v1/jobs?priority=99999999999", `{}`},
		{"POST", "/v1/jobs?priority=1", `{"meta":5}`}, {"POST", "/v1/jobs?priority=-2", `{"meta":{"prio":"x"}}`},
	} {
		f.Add(s.method, s.target, s.body)
	}
	mem := memsource.New()
	_ = mem.Put("a/b", json.RawMessage(`{"x":1}`))
	m := managertest.FuzzManager(f, mem)
	h := statusapi.NewAPI(m, statusapi.APIOptions{MaxWait: 20 * time.Millisecond, MaxSubmitBytes: 4096})
	f.Fuzz(func(t *testing.T, method, target, body string) {
		req, ok := testutil.RawRequest(method, target, body)
		if !ok {
			return // net/http refuses it before any handler
		}
		// Streams (a followed log) end with the request.
		rctx, rcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer rcancel()
		req = req.WithContext(rctx)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if testutil.CheckAnswer(t, req, rec) || rec.Code != http.StatusAccepted {
			return
		}
		var st itemapi.JobStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Item == "" {
			t.Fatalf("POST %q: %d %s", body, rec.Code, rec.Body)
		}
		if _, err := mem.Get(context.Background(), st.Item); err != nil {
			t.Fatalf("submitted %q, not in the source: %v", st.Item, err)
		}
		mem.Remove(st.Item) // keep the source small
	})
}
