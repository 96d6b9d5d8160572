package ambassador_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// noRedrive is a driver without the Redriver capability (only Driver's
// methods are promoted), over a memsource.
type noRedrive struct{ source.Driver }

func serve(t *testing.T, d source.Driver) *itemapi.Client {
	t.Helper()
	src := source.New(d)
	h, stop := ambassador.NewHandler(src, slog.New(slog.DiscardHandler), "test", 50*time.Millisecond)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { stop(); srv.Close(); src.Close() })
	c, err := itemapi.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRedrive: POST /v1/redrive/{name} over HTTP with itemapi.Client:
// 200 with the item, 404 for a name not dead-lettered, 409 when the queue
// holds the name, 405 from a source without the capability.
func TestRedrive(t *testing.T) {
	ctx := context.Background()
	d := memsource.New()
	c := serve(t, d)
	const name = "clips/a b.json"
	if err := d.Put(name, json.RawMessage(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, name, itemapi.Cancelled); err != nil {
		t.Fatalf("Ack(cancelled): %v", err)
	}
	it, err := c.Redrive(ctx, name)
	if err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	if it.Name != name || string(it.Data) != `{"x":1}` || it.Kind != itemapi.KindItem {
		t.Fatalf("Redrive answered %+v", it)
	}
	if got, err := c.Get(ctx, name); err != nil || string(got.Data) != `{"x":1}` {
		t.Fatalf("Get after Redrive: %+v, %v", got, err)
	}
	if _, err := c.Redrive(ctx, name); !itemapi.IsNotFound(err) || httpCode(err) != 404 {
		t.Fatalf("second Redrive: got %v, want 404 NotFound", err)
	}

	// 409: the dead letter holds the name, and so does the queue.
	if err := c.Ack(ctx, name, itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(name, json.RawMessage(`{"x":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redrive(ctx, name); !itemapi.IsConflict(err) || httpCode(err) != 409 {
		t.Fatalf("Redrive while the queue holds the name: got %v, want 409 Conflict", err)
	}

	// 405: a source without the capability.
	other := serve(t, noRedrive{memsource.New()})
	if _, err := other.Redrive(ctx, name); !itemapi.IsMethodNotAllowed(err) || httpCode(err) != 405 {
		t.Fatalf("Redrive on a source without redrive: got %v, want 405 MethodNotAllowed", err)
	}
}

// httpCode is the HTTP status of the Status document in err, or 0.
func httpCode(err error) int {
	var st *itemapi.Status
	if errors.As(err, &st) {
		return st.Code
	}
	return 0
}
