package source_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// plain is a driver with no optional capability: only source.Driver's
// methods are promoted.
type plain struct{ source.Driver }

func TestRedriveWithoutCapability(t *testing.T) {
	m := memsource.New()
	if err := m.Put("a", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	src := source.New(plain{m})
	t.Cleanup(func() { _ = src.Close() })
	if src.CanRedrive() {
		t.Fatal("CanRedrive of a driver without Redrive")
	}
	_, err := src.Redrive(context.Background(), "a")
	if !itemapi.IsMethodNotAllowed(err) {
		t.Fatalf("Redrive on a driver without the capability: got %v, want MethodNotAllowed", err)
	}
}

func TestRedriveChecks(t *testing.T) {
	ctx := context.Background()
	m := memsource.New()
	src := source.New(m)
	if !src.CanRedrive() {
		t.Fatal("memsource cannot redrive")
	}
	if _, err := src.Redrive(ctx, ""); !itemapi.IsBadRequest(err) {
		t.Fatalf("Redrive of an empty name: got %v, want BadRequest", err)
	}
	if _, err := src.Redrive(ctx, "missing"); !itemapi.IsNotFound(err) {
		t.Fatalf("Redrive of a name never dead-lettered: got %v, want NotFound", err)
	}
	_ = src.Close()
	if _, err := src.Redrive(ctx, "a"); !itemapi.IsUnavailable(err) {
		t.Fatalf("Redrive on a closed source: got %v, want Unavailable", err)
	}
}
