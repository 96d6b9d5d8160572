package bucket_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/bucket/buckettest"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// Every operation on every backend, with the error kinds the executor
// relies on.
func TestStore(t *testing.T) {
	ctx := context.Background()
	for _, be := range buckettest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			bu, _ := be.New(t)
			s := bucket.NewStore()
			defer s.Close()
			dir := t.TempDir()
			buckettest.Put(t, bu, "in/a b.txt", []byte("hello"))
			objURL, err := itemapi.JoinObjectURL(bu, "in/a b.txt")
			if err != nil {
				t.Fatal(err)
			}

			file := filepath.Join(dir, "a.txt")
			if n, err := s.Download(ctx, objURL, file, 5); err != nil || n != 5 || testutil.ReadFile(t, file) != "hello" {
				t.Fatalf("Download = %d, %v", n, err)
			}
			if _, err := s.Download(ctx, objURL, file, 4); bucket.KindOf(err) != bucket.TooLarge {
				t.Fatalf("Download over the cap = %v", err)
			}
			missing, _ := itemapi.JoinObjectURL(bu, "in/none.txt")
			if _, err := s.Download(ctx, missing, file, 5); bucket.KindOf(err) != bucket.NotFound {
				t.Fatalf("Download of a missing object = %v (kind %s)", err, bucket.KindOf(err))
			}

			if ok, err := s.Exists(ctx, bu, "out/x.png"); ok || err != nil {
				t.Fatalf("Exists = %v, %v", ok, err)
			}
			up := filepath.Join(dir, "up")
			os.WriteFile(up, []byte("hello"), 0o600)
			o, err := s.Upload(ctx, bu, "out/x.png", up, "")
			sum := sha256.Sum256([]byte("hello"))
			if err != nil || o.Size != 5 || o.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("Upload = %+v, %v", o, err)
			}
			if got := string(buckettest.Get(t, bu, "out/x.png")); got != "hello" {
				t.Fatalf("uploaded %q", got)
			}
			if ok, err := s.Exists(ctx, bu, "out/x.png"); !ok || err != nil {
				t.Fatalf("Exists after the upload = %v, %v", ok, err)
			}
			if err := s.Delete(ctx, bu, "out/x.png"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, bu, "out/x.png"); bucket.KindOf(err) != bucket.NotFound {
				t.Fatalf("Delete of a missing object = %v (kind %s)", err, bucket.KindOf(err))
			}
			if _, err := s.Upload(ctx, bu, "out/y", filepath.Join(dir, "none"), ""); err == nil || bucket.KindOf(err) != bucket.Transient {
				t.Fatalf("Upload of a missing file = %v", err)
			}
		})
	}
}

// The content type follows the key's extension unless given.
func TestContentType(t *testing.T) {
	ctx := context.Background()
	name := "blobstore-test-content-type"
	t.Cleanup(func() { bucket.DropMem(name) })
	s := bucket.NewStore()
	defer s.Close()
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("{}"), 0o600)
	for key, ct := range map[string]string{"a.png": "", "b.json": "application/json", "c": "text/x-mine"} {
		if _, err := s.Upload(ctx, "mem://"+name, key, file, ct); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := bucket.Open(ctx, "mem://"+name)
	defer b.Close()
	for key, want := range map[string]string{"a.png": "image/png", "b.json": "application/json", "c": "text/x-mine"} {
		a, err := b.Attributes(ctx, key)
		if err != nil || a.ContentType != want {
			t.Errorf("%s: content type %q, %v; want %s", key, a.ContentType, err, want)
		}
	}
}

// URLs that no driver serves, or refused by one, are Permanent; on a
// file:// bucket a file in the way of a key's directory means "does not
// exist" to Exists and is Permanent to Upload.
func TestPermanent(t *testing.T) {
	ctx := context.Background()
	s := bucket.NewStore()
	defer s.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o600)
	for _, u := range []string{"ftp://h/x", "mem://x/y?bogus=1", "s3:///nobucket"} {
		if _, err := s.Download(ctx, u, file, 10); bucket.KindOf(err) != bucket.Permanent {
			t.Errorf("Download(%s) = %v (kind %s)", u, err, bucket.KindOf(err))
		}
	}
	if _, err := s.Exists(ctx, "mem://x?bogus=1", "k"); bucket.KindOf(err) != bucket.Permanent {
		t.Errorf("Exists on a bad bucket URL = %v", err)
	}
	bu := "file://" + dir
	if ok, err := s.Exists(ctx, bu, "f/_SUCCESS.json"); ok || err != nil {
		t.Errorf("Exists under a file = %v, %v", ok, err)
	}
	if _, err := s.Upload(ctx, bu, "f/x", file, ""); bucket.KindOf(err) != bucket.Permanent || !strings.Contains(err.Error(), "in the way") {
		t.Errorf("Upload under a file = %v (kind %s)", err, bucket.KindOf(err))
	}
}

// A download that stops receiving data fails (Transient) after
// StallTimeout; a server error is Transient too.
func TestStallAndServerError(t *testing.T) {
	ctx := context.Background()
	bu, _ := buckettest.FakeS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/stall"):
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, "a little")
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			case strings.HasSuffix(r.URL.Path, "/fail"):
				http.Error(w, "down", http.StatusServiceUnavailable)
			default:
				h.ServeHTTP(w, r)
			}
		})
	})
	s := bucket.NewStore()
	defer s.Close()
	file := filepath.Join(t.TempDir(), "f")
	u, _ := itemapi.JoinObjectURL(bu, "fail")
	if _, err := s.Download(ctx, u, file, 1<<20); bucket.KindOf(err) != bucket.Transient || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Download from a failing server = %v (kind %s)", err, bucket.KindOf(err))
	}
	s.StallTimeout = 300 * time.Millisecond
	u, _ = itemapi.JoinObjectURL(bu, "stall")
	start := time.Now()
	_, err := s.Download(ctx, u, file, 1<<20)
	if bucket.KindOf(err) != bucket.Transient || !strings.Contains(err.Error(), "no data for 300ms") {
		t.Fatalf("stalled Download = %v (kind %s)", err, bucket.KindOf(err))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the stall took %v to notice", d)
	}
}

// An OUTPUT_URL of file:///… need not exist beforehand, and writes work
// when TMPDIR is another filesystem (temporary files go next to the object).
func TestFileOutputDirIsMade(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "results", "run-7")
	src := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(src, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", "/nonexistent-tmpdir") // would fail the write if it were used
	s := bucket.NewStore()
	defer s.Close()
	obj, err := s.Upload(ctx, "file://"+dir, "item/x.txt", src, "")
	if err != nil {
		t.Fatalf("upload into a missing directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "item", "x.txt")); err != nil || string(b) != "hello" || obj.Size != 5 {
		t.Fatalf("uploaded %q (%v), %+v", b, err, obj)
	}
}
