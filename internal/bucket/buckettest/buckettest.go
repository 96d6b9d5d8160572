// Package buckettest gives tests buckets on every storage backend itemq
// supports, as a table: each Backend makes a fresh, empty bucket and says
// what environment a process (the test's own and a child binary's) needs
// to open it. Tests range over Backends() so that a backend added here is
// exercised by all of them.
//
// Backends that need a real server (versitygw, fake-gcs-server, Azurite)
// belong here too: their New calls testutil.Need(t, "ITEMQ_…") to get the
// server (skipping the test without `make test`, failing under it).
package buckettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/bucket"
)

// Backend is one kind of storage.
type Backend struct {
	Name string
	// InProcess: the bucket lives in the test process (mem://); a child
	// process cannot reach it.
	InProcess bool
	// New returns the URL of a fresh, empty bucket and the environment
	// (KEY=VALUE) a process needs to open it; it has already set that
	// environment in the test process with t.Setenv (so tests that use a
	// backend are not parallel). It skips the test when the backend is
	// not available.
	New func(t *testing.T) (bucketURL string, env []string)
}

// Backends is every backend, in-process ones included.
func Backends() []Backend {
	return []Backend{
		{Name: "file", New: func(t *testing.T) (string, []string) { return "file://" + t.TempDir(), nil }},
		{Name: "mem", InProcess: true, New: func(t *testing.T) (string, []string) {
			name := "buckettest-" + randomName()
			t.Cleanup(func() { bucket.DropMem(name) })
			return "mem://" + name, nil
		}},
		{Name: "gofakes3", New: func(t *testing.T) (string, []string) { return FakeS3(t, nil) }},
	}
}

// FakeS3 starts an in-process S3 server (gofakes3 on 127.0.0.1) for the
// test, with a bucket, and returns the bucket's s3:// URL and environment.
// wrap, when not nil, wraps the server's handler (to delay or fail
// requests).
func FakeS3(t *testing.T, wrap func(http.Handler) http.Handler) (string, []string) {
	t.Helper()
	backend := s3mem.New()
	const bucket = "itemq-test"
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = gofakes3.New(backend).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	env := []string{
		"AWS_ACCESS_KEY_ID=itemq-test", "AWS_SECRET_ACCESS_KEY=itemq-test", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
	SetEnv(t, env)
	return "s3://" + bucket + "?endpoint=" + srv.URL + "&use_path_style=true&region=us-east-1", env
}

// SetEnv sets KEY=VALUE pairs in the test process for the test.
func SetEnv(t *testing.T, env []string) {
	t.Helper()
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				t.Setenv(kv[:i], kv[i+1:])
				break
			}
		}
	}
}

// Keys lists the keys under prefix in the bucket at bucketURL.
func Keys(t testing.TB, bucketURL, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	b := open(t, bucketURL)
	defer b.Close()
	keys := []string{}
	iter := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := iter.Next(ctx)
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		keys = append(keys, o.Key)
	}
}

// Put writes an object.
func Put(t testing.TB, bucketURL, key string, data []byte) {
	t.Helper()
	b := open(t, bucketURL)
	defer b.Close()
	if err := b.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
}

// Get reads an object.
func Get(t testing.TB, bucketURL, key string) []byte {
	t.Helper()
	b := open(t, bucketURL)
	defer b.Close()
	data, err := b.ReadAll(context.Background(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func open(t testing.TB, bucketURL string) *blob.Bucket {
	t.Helper()
	b, err := bucket.Open(context.Background(), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
