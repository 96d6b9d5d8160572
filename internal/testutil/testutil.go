// Package testutil holds what itemq's tests share: building the real
// binaries once per test process, finding the real servers `make test`
// installs, and waiting for conditions.
package testutil

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	binMu   sync.Mutex
	binDir  string
	binDone = map[string]string{}
)

// Binary builds the package (a path relative to the module root, e.g.
// "ambassadors/dir") once per test process and returns the executable's
// path. The Go build cache makes repeated builds cheap.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binDone[pkg]; ok {
		return p
	}
	if binDir == "" {
		// One directory per user, reused by every test process (go build's
		// cache makes rebuilds cheap); each binary is built under a temporary
		// name and renamed, so concurrent test processes never see half a file.
		binDir = filepath.Join(os.TempDir(), fmt.Sprintf("itemq-test-bin-%d", os.Getuid()))
		if err := os.MkdirAll(binDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	out := build(t, pkg, filepath.Join(binDir, strings.ReplaceAll(pkg, "/", "_")))
	binDone[pkg] = out
	return out
}

func build(t testing.TB, pkg, out string) string {
	t.Helper()
	tmp := filepath.Join(binDir, fmt.Sprintf(".build-%d-%s", os.Getpid(), filepath.Base(out)))
	defer os.Remove(tmp)
	cmd := exec.Command("go", "build", "-o", tmp, "./"+pkg)
	cmd.Dir = ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the module root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Integration reports whether a missing real server must fail the test
// (true under `make test`, which sets ITEMQ_REQUIRE_INTEGRATION=1) rather
// than skip it (a plain `go test` on a machine without the servers).
func Integration() bool { return os.Getenv("ITEMQ_REQUIRE_INTEGRATION") == "1" }

// Need returns the value of an environment variable naming a real server or
// tool that `make test` installs (e.g. ITEMQ_VERSITYGW). When it is unset,
// the test fails under `make test` and is skipped otherwise, saying why.
func Need(t testing.TB, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v != "" {
		return v
	}
	if Integration() {
		t.Fatalf("%s is not set: `make test` (hack/test-deps.sh) should have installed it", key)
	}
	t.Skipf("%s is not set; run `make test` to install the real server this test needs", key)
	return ""
}

// NeedCommand returns the path of a command on PATH, failing under `make
// test` and skipping otherwise when it is missing.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if Integration() {
		t.Fatalf("%s is not on PATH: `make test` (hack/test-deps.sh) should have installed it", name)
	}
	t.Skipf("%s is not on PATH; run `make test` to install it", name)
	return ""
}

// FreeAddr returns a 127.0.0.1:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Eventually calls cond until it returns nil or timeout passes, then fails
// the test with cond's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := WaitFor(context.Background(), timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// WaitFor calls cond until it returns nil, ctx ends or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	delay := 2 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not true after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// ReadFile returns the content of the file p, failing the test if it
// cannot be read.
func ReadFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReadLines returns the lines of the file p (none when it does not
// exist), failing the test if it cannot be read.
func ReadLines(t testing.TB, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}
