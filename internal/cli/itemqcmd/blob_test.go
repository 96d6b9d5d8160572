package itemqcmd_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/itemq/itemq/internal/bucket/buckettest"
	"github.com/itemq/itemq/internal/cli/itemqcmd"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := itemqcmd.Main(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// itemq blob get, put, ls and rm on every in-process backend.
func TestBlob(t *testing.T) {
	for _, be := range buckettest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			bucket, _ := be.New(t)
			obj := func(key string) string {
				t.Helper()
				u, err := itemapi.JoinObjectURL(bucket, key)
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			if dir, ok := strings.CutPrefix(bucket, "file://"); ok {
				// (a file:// object's bucket is its directory, which must exist)
				os.Mkdir(filepath.Join(dir, "a"), 0o755)
			}
			dir := t.TempDir()
			src := filepath.Join(dir, "src.txt")
			os.WriteFile(src, []byte("from a file"), 0o644)

			if code, _, stderr := run(t, "", "blob", "put", src, obj("a/one.txt")); code != 0 {
				t.Fatalf("put: %d %s", code, stderr)
			}
			if code, _, stderr := run(t, "from stdin", "blob", "put", "-", obj("a/two.txt")); code != 0 {
				t.Fatalf("put -: %d %s", code, stderr)
			}
			if code, _, stderr := run(t, "", "blob", "put", src, obj("b.txt")); code != 0 {
				t.Fatalf("put: %d %s", code, stderr)
			}
			dst := filepath.Join(dir, "dst.txt")
			if code, _, stderr := run(t, "", "blob", "get", obj("a/one.txt"), dst); code != 0 || testutil.ReadFile(t, dst) != "from a file" {
				t.Fatalf("get: %d %s", code, stderr)
			}
			if code, stdout, _ := run(t, "", "blob", "get", obj("a/two.txt"), "-"); code != 0 || stdout != "from stdin" {
				t.Fatalf("get -: %d %q", code, stdout)
			}
			if code, stdout, _ := run(t, "", "blob", "ls", bucket); code != 0 || stdout != "a/one.txt\na/two.txt\nb.txt\n" {
				t.Fatalf("ls: %d %q", code, stdout)
			}
			if code, stdout, _ := run(t, "", "blob", "ls", bucket, "a/"); code != 0 || stdout != "a/one.txt\na/two.txt\n" {
				t.Fatalf("ls with a prefix: %d %q", code, stdout)
			}
			code, stdout, _ := run(t, "", "blob", "ls", "-l", bucket, "b")
			if f := strings.Split(strings.TrimSpace(stdout), "\t"); code != 0 || len(f) != 3 || f[0] != "11" || f[2] != "b.txt" {
				t.Fatalf("ls -l: %d %q", code, stdout)
			}
			if code, _, stderr := run(t, "", "blob", "rm", obj("b.txt")); code != 0 {
				t.Fatalf("rm: %d %s", code, stderr)
			}
			if code, stdout, _ := run(t, "", "blob", "ls", bucket); code != 0 || stdout != "a/one.txt\na/two.txt\n" {
				t.Fatalf("ls after rm: %d %q", code, stdout)
			}
			// A missing object: exit 2.
			if code, _, stderr := run(t, "", "blob", "get", obj("none"), dst); code != 2 || !strings.Contains(stderr, "itemq blob get:") {
				t.Fatalf("get of a missing object: %d %s", code, stderr)
			}
			if code, _, _ := run(t, "", "blob", "rm", obj("none")); code != 2 {
				t.Fatalf("rm of a missing object: %d", code)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"blob"}, {"blob", "get", "x"}, {"frob"}, {"blob", "ls"}, {"blob", "ls", "-l"}, {"blob", "put", "a", "ftp://x/y"}, {"blob", "ls", "--bogus", "x"}} {
		if code, _, stderr := run(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, %q; want 2 and a message", args, code, stderr)
		}
	}
	if code, stdout, _ := run(t, "", "--version"); code != 0 || !strings.HasPrefix(stdout, "itemq ") {
		t.Errorf("--version: %d %q", code, stdout)
	}
	if code, stdout, _ := run(t, "", "blob", "--help"); code != 0 || !strings.Contains(stdout, "rm          delete an object") {
		t.Errorf("blob --help: %d %q", code, stdout)
	}
}
