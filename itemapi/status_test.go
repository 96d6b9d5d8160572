package itemapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/itemq/itemq/itemapi"
)

func TestStatusJSONRoundTrip(t *testing.T) {
	st := itemapi.NewStatus(itemapi.ReasonNotFound, "item %q not found", "a/b")
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"Status","apiVersion":"v1","code":404,"reason":"NotFound","message":"item \"a/b\" not found"}`
	if string(b) != want {
		t.Fatalf("marshal:\n got %s\nwant %s", b, want)
	}
	var back itemapi.Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != *st {
		t.Fatalf("round trip: %+v != %+v", back, *st)
	}
	if back.Error() != `NotFound: item "a/b" not found` {
		t.Fatalf("Error() = %q", back.Error())
	}
	if (&itemapi.Status{Reason: itemapi.ReasonConflict}).Error() != "Conflict" {
		t.Fatal("Error() without a message")
	}
}

func TestReasonCodes(t *testing.T) {
	for _, r := range []itemapi.Reason{
		itemapi.ReasonBadRequest, itemapi.ReasonNotFound, itemapi.ReasonMethodNotAllowed, itemapi.ReasonConflict,
		itemapi.ReasonTooLarge, itemapi.ReasonUnavailable, itemapi.ReasonInternal, itemapi.ReasonUnauthorized, itemapi.ReasonForbidden,
	} {
		if got := itemapi.ReasonForCode(r.HTTPCode()); got != r {
			t.Errorf("ReasonForCode(%d) = %s, want %s", r.HTTPCode(), got, r)
		}
	}
	for code, want := range map[int]itemapi.Reason{
		http.StatusUnprocessableEntity: itemapi.ReasonBadRequest,
		http.StatusGone:                itemapi.ReasonNotFound,
		http.StatusNotImplemented:      itemapi.ReasonMethodNotAllowed,
		http.StatusTooManyRequests:     itemapi.ReasonUnavailable,
		http.StatusBadGateway:          itemapi.ReasonUnavailable,
		http.StatusGatewayTimeout:      itemapi.ReasonUnavailable,
		http.StatusTeapot:              itemapi.ReasonInternal,
	} {
		if got := itemapi.ReasonForCode(code); got != want {
			t.Errorf("ReasonForCode(%d) = %s, want %s", code, got, want)
		}
	}
}

type reasoned struct{ r itemapi.Reason }

func (e reasoned) Error() string               { return string(e.r) }
func (e reasoned) ErrorReason() itemapi.Reason { return e.r }

func TestReasonOf(t *testing.T) {
	nf := itemapi.NewStatus(itemapi.ReasonNotFound, "x")
	wrapped := fmt.Errorf("get: %w", nf)
	if !itemapi.IsNotFound(nf) || !itemapi.IsNotFound(wrapped) || itemapi.IsBadRequest(wrapped) {
		t.Fatal("IsNotFound through wrapping")
	}
	if !itemapi.IsConflict(fmt.Errorf("x: %w", reasoned{itemapi.ReasonConflict})) {
		t.Fatal("a Reasoner in the chain")
	}
	joined := errors.Join(errors.New("plain"), fmt.Errorf("w: %w", itemapi.NewStatus(itemapi.ReasonTooLarge, "big")))
	if !itemapi.IsTooLarge(joined) {
		t.Fatal("a Status inside errors.Join")
	}
	if itemapi.ReasonOf(errors.New("plain")) != "" || itemapi.ReasonOf(nil) != "" {
		t.Fatal("no reason")
	}
	if !itemapi.IsUnauthorized(itemapi.NewStatus(itemapi.ReasonForbidden, "")) || !itemapi.IsUnauthorized(itemapi.NewStatus(itemapi.ReasonUnauthorized, "")) {
		t.Fatal("IsUnauthorized")
	}
	if !itemapi.IsMethodNotAllowed(itemapi.NewStatus(itemapi.ReasonMethodNotAllowed, "")) || !itemapi.IsUnavailable(itemapi.NewStatus(itemapi.ReasonUnavailable, "")) {
		t.Fatal("IsMethodNotAllowed / IsUnavailable")
	}
}
