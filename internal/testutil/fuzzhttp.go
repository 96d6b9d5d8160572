package testutil

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

// RawRequest is the request net/http's server parses from the wire for
// method, target (escapes and query as they are) and body; ok is false when
// net/http refuses it before any handler would see it. For the fuzz
// targets of HTTP handlers.
func RawRequest(method, target, body string) (*http.Request, bool) {
	raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", method, target, len(body), body)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	return req, err == nil
}

// CheckAnswer fails the test when a v1 handler answered with a 5xx (503
// aside) or with an error that is not a Status document carrying the
// answer's code and a reason of that code. It reports whether the answer
// was an error.
func CheckAnswer(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder) (isError bool) {
	t.Helper()
	code := rec.Code
	if code >= 500 && code != http.StatusServiceUnavailable {
		t.Fatalf("%s %s: %d %s", req.Method, req.RequestURI, code, rec.Body)
	}
	if code < 400 {
		return false
	}
	var doc struct {
		Kind       string         `json:"kind"`
		APIVersion string         `json:"apiVersion"`
		Code       int            `json:"code"`
		Reason     itemapi.Reason `json:"reason"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%s %s: %d answer is not JSON: %q", req.Method, req.RequestURI, code, rec.Body)
	}
	if doc.Kind != itemapi.KindStatus || doc.APIVersion != itemapi.APIVersion || doc.Code != code || doc.Reason.HTTPCode() != code {
		t.Fatalf("%s %s: %d with %s", req.Method, req.RequestURI, code, rec.Body)
	}
	return true
}
