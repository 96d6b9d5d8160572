package bucket

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/drivertest"
	"gocloud.dev/blob/memblob"
)

// The shared mem driver passes gocloud's own conformance suite.
func TestSharedDriverConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, func(ctx context.Context, t *testing.T) (drivertest.Harness, error) {
		return &harness{shared: memblob.OpenBucket(nil)}, nil
	}, nil)
}

type harness struct{ shared *blob.Bucket }

func (h *harness) MakeDriver(context.Context) (driver.Bucket, error) {
	return &sharedDriver{b: h.shared}, nil
}
func (h *harness) MakeDriverForNonexistentBucket(context.Context) (driver.Bucket, error) {
	return nil, nil
}
func (h *harness) HTTPClient() *http.Client         { return nil }
func (h *harness) SupportsCopy() bool               { return true }
func (h *harness) SupportsNonSlashDelimiters() bool { return true }
func (h *harness) Close()                           {}

func TestMemIsSharedPerName(t *testing.T) {
	ctx := context.Background()
	name := "blobs-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	t.Cleanup(func() { DropMem(name) })
	a, err := Open(ctx, "mem://"+name)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.WriteAll(ctx, "k/x.txt", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, key, err := OpenObject(ctx, "mem://"+name+"/k/x.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.ReadAll(ctx, key)
	if err != nil || string(got) != "hello" {
		t.Fatalf("ReadAll after reopen = %q, %v; want hello", got, err)
	}
	other, err := Open(ctx, "mem://"+name+"-other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ok, _ := other.Exists(ctx, key); ok {
		t.Fatal("another name sees the object")
	}
	if _, err := Open(ctx, "mem://"+name+"?nomd5=1"); err == nil {
		t.Fatal("want an error for an unknown parameter")
	}
}

func TestFileWritesNoSidecars(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "a/b.png", []byte("x"), &blob.WriterOptions{ContentType: "image/png"}); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	if len(files) != 1 || files[0] != filepath.Join("a", "b.png") {
		t.Fatalf("files in the bucket directory = %v, want just a/b.png", files)
	}
}

func TestRedact(t *testing.T) {
	got := RedactURL("https://user:pw@h/p?X-Amz-Signature=abc&a=1")
	if strings.Contains(got, "abc") || strings.Contains(got, "pw") || !strings.Contains(got, "a=1") {
		t.Fatalf("Redact = %q", got)
	}
}
