package dirsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/itemq/itemq/itemapi"
)

// TestRedriveNoArchive: with DIR_ON_DONE=delete or keep there is no failed
// archive, so redrive is refused with MethodNotAllowed.
func TestRedriveNoArchive(t *testing.T) {
	for _, mode := range []string{OnDoneDelete, OnDoneKeep} {
		t.Run(mode, func(t *testing.T) {
			d, _ := newDriver(t, "", "DIR_ON_DONE="+mode)
			_, err := d.Redrive(context.Background(), "a.json")
			if reasonOf(err) != itemapi.ReasonMethodNotAllowed {
				t.Fatalf("Redrive with DIR_ON_DONE=%s: got %v, want MethodNotAllowed", mode, err)
			}
		})
	}
}

// TestRedriveArchiveOutsideRoot: an absolute DIR_FAILED_DIR outside the
// root; the parent directories of the item are made again.
func TestRedriveArchiveOutsideRoot(t *testing.T) {
	failed := filepath.Join(t.TempDir(), "failed")
	d, root := newDriver(t, "", "DIR_FAILED_DIR="+failed, "DIR_SETTLE=0")
	ctx := context.Background()
	write(t, root, "deep/er/x.json", `{}`)
	waitListed(t, d, "deep/er/x.json")
	if err := d.Ack(ctx, "deep/er/x.json", itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "deep")); err != nil {
		t.Fatal(err)
	}
	name, err := d.Redrive(ctx, "deep/er/x.json")
	if err != nil || name != "deep/er/x.json" {
		t.Fatalf("Redrive: %q, %v", name, err)
	}
	if got := listed(t, d); len(got) != 1 || got[0] != name {
		t.Fatalf("listed %q right after Redrive", got)
	}
	if _, err := os.Stat(filepath.Join(failed, "deep/er/x.json")); !os.IsNotExist(err) {
		t.Fatalf("still in the archive: %v", err)
	}
	if _, err := d.Redrive(ctx, name); reasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("second Redrive: got %v, want NotFound", err)
	}
	if _, err := d.Redrive(ctx, ".hidden.json"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("Redrive of a hidden name: got %v, want NotFound", err)
	}
	if _, err := d.Redrive(ctx, "../x.json"); reasonOf(err) != itemapi.ReasonBadRequest {
		t.Fatalf("Redrive of ../x.json: got %v, want BadRequest", err)
	}
}

// BenchmarkRedrive: bulk redrive of 10,000 dead-lettered files (one op),
// in 100 directories. The target is at most 10 s for the 10,000:
//
//	go test -run '^$' -bench BenchmarkRedrive -benchtime 3x ./internal/source/dirsource/
func BenchmarkRedrive(b *testing.B) {
	const n = 10000
	root := b.TempDir()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%02d/item-%05d.json", i%100, i)
		p := filepath.Join(root, filepath.FromSlash(names[i]))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(`{"n":1}`), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	d, _ := newDriver(b, root, "DIR_SETTLE=0", "DIR_POLL_INTERVAL=1h")
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for d.Len() < n {
		if time.Now().After(deadline) {
			b.Fatalf("listed %d of %d files", d.Len(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for _, name := range names {
			if err := d.Ack(ctx, name, itemapi.Failed); err != nil {
				b.Fatalf("Ack(%s): %v", name, err)
			}
		}
		b.StartTimer()
		for _, name := range names {
			if _, err := d.Redrive(ctx, name); err != nil {
				b.Fatalf("Redrive(%s): %v", name, err)
			}
		}
	}
	b.StopTimer()
	if d.Len() != n {
		b.Fatalf("listed %d after the redrive, want %d", d.Len(), n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n/1e3, "µs/item")
}
