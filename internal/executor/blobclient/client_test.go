package blobclient_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/executor/blobclient"
	"github.com/itemq/itemq/internal/executor/storage"
	"github.com/itemq/itemq/internal/testutil"
)

// The test binary is its own helper: with BLOBCLIENT_TEST_HELPER=serve it
// serves a fake storage (below) and exits, as `itemq-blob serve` does.
func TestMain(m *testing.M) {
	if os.Getenv("BLOBCLIENT_TEST_HELPER") == "serve" {
		log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		slog.SetDefault(log)
		if err := blobclient.Serve(context.Background(), fake{}, os.Stdin, os.Stdout, "test", log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if os.Getenv("BLOBCLIENT_TEST_HANG") != "" {
			time.Sleep(time.Hour) // a helper that does not exit when told to
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fake is a storage over directories: a bucket URL is a directory and a key
// a file name in it; a few object URLs and keys do something special.
type fake struct{}

func (fake) Download(ctx context.Context, objectURL, file string, max int64) (int64, error) {
	switch objectURL {
	case "fake://b/missing":
		return 0, storage.Errorf(storage.NotFound, "no such object %s", objectURL)
	case "fake://b/big":
		return 0, storage.Errorf(storage.TooLarge, "object is more than %d bytes", max)
	}
	data := []byte("content of " + objectURL)
	return int64(len(data)), os.WriteFile(file, data, 0o600)
}

func (fake) Exists(ctx context.Context, bucketURL, key string) (bool, error) {
	switch key {
	case "crash":
		os.Exit(3)
	case "slow":
		// Runs until cancelled, then leaves a mark saying so.
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(filepath.Join(bucketURL, "cancelled"), nil, 0o600)
		return false, ctx.Err()
	case "log":
		slog.Warn("a warning from the helper", "n", 7)
		fmt.Fprintln(os.Stderr, "not JSON")
		return true, nil
	case "bad":
		return false, storage.Errorf(storage.Permanent, "bad key %q", key)
	}
	_, err := os.Stat(filepath.Join(bucketURL, key))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (fake) Upload(ctx context.Context, bucketURL, key, file, contentType string) (storage.Object, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return storage.Object{}, err // unclassified: Transient
	}
	if err := os.WriteFile(filepath.Join(bucketURL, key), data, 0o600); err != nil {
		return storage.Object{}, err
	}
	sum := sha256.Sum256(data)
	return storage.Object{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (fake) Delete(ctx context.Context, bucketURL, key string) error {
	err := os.Remove(filepath.Join(bucketURL, key))
	if errors.Is(err, os.ErrNotExist) {
		return storage.Errorf(storage.NotFound, "no such object %s", key)
	}
	return err
}

func (fake) Close() error { return nil }

// newClient returns a client whose helper is this test binary; its log
// goes to the returned buffer.
func newClient(t *testing.T, env ...string) (*blobclient.Client, *syncBuffer) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	// (GORACE: a race-enabled binary otherwise sleeps 1 s at exit.)
	c := blobclient.New(blobclient.Options{
		Helper:      self,
		Environ:     append(append(os.Environ(), "BLOBCLIENT_TEST_HELPER=serve", "GORACE=atexit_sleep_ms=0"), env...),
		Log:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogLevel:    "debug",
		StopTimeout: 2 * time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOperations(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	if c.Started() {
		t.Fatal("the helper started before the first operation")
	}
	bucket, dir := t.TempDir(), t.TempDir()

	in := filepath.Join(dir, "in")
	n, err := c.Download(ctx, "fake://b/x", in, 100)
	if err != nil || n != int64(len("content of fake://b/x")) || testutil.ReadFile(t, in) != "content of fake://b/x" {
		t.Fatalf("Download = %d, %v; file %q", n, err, testutil.ReadFile(t, in))
	}
	if !c.Started() {
		t.Fatal("no helper after an operation")
	}
	if ok, err := c.Exists(ctx, bucket, "k"); ok || err != nil {
		t.Fatalf("Exists before the upload = %v, %v", ok, err)
	}
	o, err := c.Upload(ctx, bucket, "k", in, "")
	sum := sha256.Sum256([]byte("content of fake://b/x"))
	if err != nil || o.Size != n || o.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Upload = %+v, %v", o, err)
	}
	if ok, err := c.Exists(ctx, bucket, "k"); !ok || err != nil {
		t.Fatalf("Exists after the upload = %v, %v", ok, err)
	}
	if err := c.Delete(ctx, bucket, "k"); err != nil {
		t.Fatal(err)
	}

	// Error kinds cross the process boundary.
	for _, tc := range []struct {
		name string
		err  error
		kind storage.Kind
	}{
		{"not found", c.Delete(ctx, bucket, "k"), storage.NotFound},
		{"too large", second(c.Download(ctx, "fake://b/big", in, 10)), storage.TooLarge},
		{"permanent", second(c.Exists(ctx, bucket, "bad")), storage.Permanent},
		{"unclassified", second(c.Upload(ctx, bucket, "k", filepath.Join(dir, "none"), "")), storage.Transient},
	} {
		if tc.err == nil || storage.KindOf(tc.err) != tc.kind {
			t.Errorf("%s: %v (kind %s), want kind %s", tc.name, tc.err, storage.KindOf(tc.err), tc.kind)
		}
	}
	if err := second(c.Download(ctx, "fake://b/missing", in, 10)); !strings.Contains(err.Error(), "no such object fake://b/missing") {
		t.Errorf("the message did not cross: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// Many operations at once share one helper.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	bucket, dir := t.TempDir(), t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			f := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(f, []byte(strings.Repeat("x", i)), 0o600); err != nil {
				errs <- err
				return
			}
			o, err := c.Upload(ctx, bucket, fmt.Sprint(i), f, "")
			if err == nil && o.Size != int64(i) {
				err = fmt.Errorf("upload %d: size %d", i, o.Size)
			}
			if err == nil {
				var ok bool
				if ok, err = c.Exists(ctx, bucket, fmt.Sprint(i)); err == nil && !ok {
					err = fmt.Errorf("%d does not exist after its upload", i)
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A cancelled operation is stopped in the helper before the call returns.
func TestCancel(t *testing.T) {
	c, _ := newClient(t)
	bucket := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Exists(ctx, bucket, "slow")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exists = %v, want the context's error", err)
	}
	if _, err := os.Stat(filepath.Join(bucket, "cancelled")); err != nil {
		t.Fatalf("the helper had not stopped the operation when the call returned: %v", err)
	}
	// The helper still works.
	if _, err := c.Exists(context.Background(), bucket, "k"); err != nil {
		t.Fatal(err)
	}
}

// A helper that dies fails what it was doing (Transient) and is started
// again by the next operation.
func TestHelperDies(t *testing.T) {
	ctx := context.Background()
	c, logs := newClient(t)
	bucket := t.TempDir()
	_, err := c.Exists(ctx, bucket, "crash")
	if err == nil || storage.KindOf(err) != storage.Transient || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Exists on a crashing helper = %v (kind %s)", err, storage.KindOf(err))
	}
	if _, err := c.Exists(ctx, bucket, "k"); err != nil {
		t.Fatalf("after a crash: %v", err)
	}
	if !strings.Contains(logs.String(), "starting it again") {
		t.Fatalf("the restart was not logged:\n%s", logs)
	}
}

// The helper's log lines become records of the executor's log.
func TestHelperLog(t *testing.T) {
	c, logs := newClient(t)
	if ok, err := c.Exists(context.Background(), t.TempDir(), "log"); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	c.Close()
	var found int
	for l := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", l)
		}
		switch {
		case rec["msg"] == "a warning from the helper" && rec["level"] == "WARN" && rec["n"] == 7.0 && rec["helper"] == "itemq-blob":
			found++
		case rec["msg"] == "helper output" && rec["line"] == "not JSON":
			found++
		}
	}
	if found != 2 {
		t.Fatalf("the helper's lines are not in the log:\n%s", logs)
	}
}

// Close stops the helper: at once when it exits on EOF, after StopTimeout
// (SIGKILL) when it does not.
func TestClose(t *testing.T) {
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprint("hang=", hang), func(t *testing.T) {
			var env []string
			if hang {
				env = append(env, "BLOBCLIENT_TEST_HANG=1")
			}
			c, logs := newClient(t, env...)
			if _, err := c.Exists(context.Background(), t.TempDir(), "k"); err != nil {
				t.Fatal(err)
			}
			pid := helperPid(t, logs.String())
			c.Close()
			if err := syscall.Kill(pid, 0); err == nil {
				t.Fatalf("helper %d still running after Close", pid)
			}
			if _, err := c.Exists(context.Background(), t.TempDir(), "k"); storage.KindOf(err) != storage.Unavailable {
				t.Fatalf("Exists after Close = %v", err)
			}
		})
	}
}

func helperPid(t *testing.T, logs string) int {
	t.Helper()
	for l := range strings.Lines(logs) {
		var rec struct {
			Msg string `json:"msg"`
			Pid int    `json:"pid"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "started the helper" {
			return rec.Pid
		}
	}
	t.Fatalf("no \"started the helper\" line:\n%s", logs)
	return 0
}

// A helper that is not there, or is not an itemq-blob, makes every
// operation fail with Unavailable, and is not started again and again.
func TestNoHelper(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ helper, want string }{
		{"/nonexistent/itemq-blob", "EXECUTOR_BLOB_HELPER=/nonexistent/itemq-blob"},
		{script("not-executable", "", 0o644), "not executable"},
		{script("echo", "exec cat", 0o755), "is not an itemq-blob helper"},
		{script("exits", "exit 0", 0o755), "exited before it answered"},
	} {
		t.Run(filepath.Base(tc.helper), func(t *testing.T) {
			c := blobclient.New(blobclient.Options{Helper: tc.helper, Environ: os.Environ()})
			defer c.Close()
			for range 2 {
				_, err := c.Exists(context.Background(), dir, "k")
				if storage.KindOf(err) != storage.Unavailable || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Exists = %v (kind %s), want Unavailable saying %q", err, storage.KindOf(err), tc.want)
				}
			}
		})
	}
}

func TestFindHelper(t *testing.T) {
	dir := t.TempDir()
	helper := filepath.Join(dir, blobclient.HelperName)
	if err := os.WriteFile(helper, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// On PATH (the test binary's own directory has no itemq-blob).
	if p, err := blobclient.FindHelper("", []string{"PATH=/nonexistent:" + dir}); err != nil || p != helper {
		t.Fatalf("FindHelper on PATH = %q, %v", p, err)
	}
	// EXECUTOR_BLOB_HELPER wins, by path or by name on PATH.
	if p, err := blobclient.FindHelper(helper, nil); err != nil || p != helper {
		t.Fatalf("FindHelper(%s) = %q, %v", helper, p, err)
	}
	if p, err := blobclient.FindHelper(blobclient.HelperName, []string{"PATH=" + dir}); err != nil || p != helper {
		t.Fatalf("FindHelper(itemq-blob) = %q, %v", p, err)
	}
	// None: an error that says where it looked and what to do.
	_, err := blobclient.FindHelper("", []string{"PATH=/nonexistent"})
	self, _ := os.Executable()
	if storage.KindOf(err) != storage.Unavailable || !strings.Contains(err.Error(), filepath.Join(filepath.Dir(self), "itemq-blob")) ||
		!strings.Contains(err.Error(), "EXECUTOR_BLOB_HELPER") {
		t.Fatalf("FindHelper with none = %v", err)
	}
}

// The wire format, as documented in the package comment.
func TestServeWire(t *testing.T) {
	bucket, dir := t.TempDir(), t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("abc"), 0o600)
	in := strings.Join([]string{
		`{"id":1,"op":"upload","bucket":"` + bucket + `","key":"k","file":"` + file + `"}`,
		`not json`,
		`{"id":3,"op":"cancel","target":99}`,
		`{"id":4,"op":"frobnicate"}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	if err := blobclient.Serve(context.Background(), fake{}, strings.NewReader(in), &out, "v1.2.3", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || lines[0] != `{"protocol":"itemq-blob/1","version":"v1.2.3"}` {
		t.Fatalf("output:\n%s", out.String())
	}
	got := map[string]bool{}
	for _, l := range lines[1:] {
		got[l] = true
	}
	for _, want := range []string{
		`{"id":1,"size":3,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}`,
		`{"id":0,"error":{"kind":"permanent","message":"bad request: invalid character 'o' in literal null (expecting 'u')"}}`,
		`{"id":4,"error":{"kind":"permanent","message":"unknown op \"frobnicate\""}}`,
	} {
		if !got[want] {
			t.Errorf("no response %s in:\n%s", want, out.String())
		}
	}
}
