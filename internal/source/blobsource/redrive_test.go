package blobsource_test

import (
	"context"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/blobsource"
	"github.com/itemq/itemq/itemapi"
)

// TestRedriveNoArchive: with BUCKET_ON_FAILED=delete or keep no failed
// archive is kept, so redrive is refused with MethodNotAllowed.
func TestRedriveNoArchive(t *testing.T) {
	for _, action := range []string{blobsource.ActionDelete, blobsource.ActionKeep} {
		t.Run(action, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			t.Cleanup(func() { b.Close() })
			cfg := testConfig("mem://")
			cfg.OnFailed = action
			d := newDriver(t, b, cfg)
			if _, err := d.Redrive(context.Background(), "a.json"); !itemapi.IsMethodNotAllowed(err) {
				t.Fatalf("Redrive with BUCKET_ON_FAILED=%s: got %v, want MethodNotAllowed", action, err)
			}
		})
	}
}

// TestRedriveKeepsAttributes: the object comes back with its content type
// and metadata, and is listed before Redrive returns.
func TestRedriveKeepsAttributes(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	t.Cleanup(func() { b.Close() })
	d := newDriver(t, b, urlConfig("mem://"))
	write(t, b, "in/.failed/clips/a.mp4", "AAAA", "video/mp4")
	name, err := d.Redrive(ctx, "clips/a.mp4")
	if err != nil || name != "clips/a.mp4" {
		t.Fatalf("Redrive: %q, %v", name, err)
	}
	if names, _, err := d.List(ctx, source.ListOptions{}); err != nil || len(names) != 1 || names[0] != name {
		t.Fatalf("listed %q (%v) right after Redrive", names, err)
	}
	a, err := b.Attributes(ctx, "in/clips/a.mp4")
	if err != nil || a.ContentType != "video/mp4" || a.Size != 4 {
		t.Fatalf("redriven object: %+v, %v", a, err)
	}
	if exists(t, b, "in/.failed/clips/a.mp4") {
		t.Fatal("the archived copy is still there")
	}
	if _, err := d.Redrive(ctx, "clips/a.mp4"); !itemapi.IsNotFound(err) {
		t.Fatalf("second Redrive: got %v, want NotFound", err)
	}
	if _, err := d.Redrive(ctx, ".failed/x.mp4"); !itemapi.IsNotFound(err) {
		t.Fatalf("Redrive of an archived key as a name: got %v, want NotFound", err)
	}
}
