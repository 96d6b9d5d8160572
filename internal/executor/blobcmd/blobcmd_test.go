package blobcmd_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/blobs/blobstest"
	"github.com/itemq/itemq/internal/executor/blobclient"
	"github.com/itemq/itemq/internal/executor/blobcmd"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := blobcmd.Main(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// get, put and ls on every in-process backend.
func TestGetPutLs(t *testing.T) {
	for _, be := range blobstest.Backends() {
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

			if code, _, stderr := run(t, "", "put", src, obj("a/one.txt")); code != 0 {
				t.Fatalf("put: %d %s", code, stderr)
			}
			if code, _, stderr := run(t, "from stdin", "put", "-", obj("a/two.txt")); code != 0 {
				t.Fatalf("put -: %d %s", code, stderr)
			}
			if code, _, stderr := run(t, "", "put", src, obj("b.txt")); code != 0 {
				t.Fatalf("put: %d %s", code, stderr)
			}
			dst := filepath.Join(dir, "dst.txt")
			if code, _, stderr := run(t, "", "get", obj("a/one.txt"), dst); code != 0 || testutil.ReadFile(t, dst) != "from a file" {
				t.Fatalf("get: %d %s", code, stderr)
			}
			if code, stdout, _ := run(t, "", "get", obj("a/two.txt"), "-"); code != 0 || stdout != "from stdin" {
				t.Fatalf("get -: %d %q", code, stdout)
			}
			if code, stdout, _ := run(t, "", "ls", bucket); code != 0 || stdout != "a/one.txt\na/two.txt\nb.txt\n" {
				t.Fatalf("ls: %d %q", code, stdout)
			}
			if code, stdout, _ := run(t, "", "ls", bucket, "a/"); code != 0 || stdout != "a/one.txt\na/two.txt\n" {
				t.Fatalf("ls with a prefix: %d %q", code, stdout)
			}
			code, stdout, _ := run(t, "", "ls", "-l", bucket, "b")
			if f := strings.Split(strings.TrimSpace(stdout), "\t"); code != 0 || len(f) != 3 || f[0] != "11" || f[2] != "b.txt" {
				t.Fatalf("ls -l: %d %q", code, stdout)
			}
			// A missing object: exit 2.
			if code, _, stderr := run(t, "", "get", obj("none"), dst); code != 2 || !strings.Contains(stderr, "itemq-blob get:") {
				t.Fatalf("get of a missing object: %d %s", code, stderr)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"get", "x"}, {"frob"}, {"ls"}, {"ls", "-l"}, {"put", "a", "ftp://x/y"}, {"serve", "--bogus"}} {
		if code, _, stderr := run(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, %q; want 2 and a message", args, code, stderr)
		}
	}
	if code, stdout, _ := run(t, "", "--version"); code != 0 || !strings.HasPrefix(stdout, "itemq-blob ") {
		t.Errorf("--version: %d %q", code, stdout)
	}
}

// The real binary serves the protocol, ignores SIGTERM (the executor may
// still need it to clean up), and exits 0 when its stdin closes.
func TestServeBinary(t *testing.T) {
	bin := testutil.Binary(t, "executors/blob")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("hello"), 0o644)
	cmd := exec.Command(bin, "serve", "--log-level=debug")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	next := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("no line from the helper: %v\n%s", lines.Err(), stderr.String())
		}
		return lines.Text()
	}
	var hello blobclient.Hello
	if err := json.Unmarshal([]byte(next()), &hello); err != nil || hello.Protocol != blobclient.Protocol {
		t.Fatalf("hello %+v, %v", hello, err)
	}
	send := func(req blobclient.Request) blobclient.Response {
		t.Helper()
		b, _ := json.Marshal(req)
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
		var resp blobclient.Response
		if err := json.Unmarshal([]byte(next()), &resp); err != nil || resp.ID != req.ID {
			t.Fatalf("response %+v, %v", resp, err)
		}
		return resp
	}
	bucket := "file://" + dir
	if r := send(blobclient.Request{ID: 1, Op: blobclient.OpDownload, URL: bucket + "/in.txt", File: filepath.Join(dir, "copy"), Max: 10}); r.Error != nil || r.Size != 5 {
		t.Fatalf("download: %+v %+v", r, r.Error)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if r := send(blobclient.Request{ID: 2, Op: blobclient.OpUpload, Bucket: bucket, Key: "out/x.txt", File: filepath.Join(dir, "copy")}); r.Error != nil || r.Size != 5 || r.SHA256 == "" {
		t.Fatalf("upload after SIGTERM: %+v %+v", r, r.Error)
	}
	if r := send(blobclient.Request{ID: 3, Op: blobclient.OpExists, Bucket: bucket, Key: "out/x.txt"}); !r.Exists {
		t.Fatalf("exists: %+v", r)
	}
	if r := send(blobclient.Request{ID: 4, Op: blobclient.OpDelete, Bucket: bucket, Key: "nope"}); r.Error == nil || r.Error.Kind != "not_found" {
		t.Fatalf("delete of a missing object: %+v", r)
	}
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after stdin closed: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"request done"`) {
		t.Fatalf("no debug log:\n%s", stderr.String())
	}
}
