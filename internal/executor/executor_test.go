package executor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/bucket/buckettest"
	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// upper is a script that writes its input upper-cased to OUTPUT_DIR, and
// the variables it was given, and touches a marker so a test can tell
// whether it ran.
const upper = `set -e
tr a-z A-Z < "$INPUT_FILE" > "$OUTPUT_DIR/upper.txt"
mkdir -p "$OUTPUT_DIR/env"
printf '%s\n' "$ITEM_NAME" > "$OUTPUT_DIR/env/item_name"
printf '%s\n' "$WORK_ITEM_FILE" > "$OUTPUT_DIR/env/work_item_file"
echo run >> "$MARKER"
`

// Fetch from and upload to every backend a child process can reach, check
// the manifest, then check that a second run does nothing and that
// EXECUTOR_FORCE=true runs again.
func TestBackends(t *testing.T) {
	bin := scriptBin(t)
	for _, be := range buckettest.Backends() {
		if be.InProcess {
			continue // TestInProcessMem
		}
		t.Run(be.Name, func(t *testing.T) {
			bucket, env := be.New(t)
			input := []byte("hello, item\n")
			buckettest.Put(t, bucket, "inputs/clip 1.txt", input)
			objURL, err := itemapi.JoinObjectURL(bucket, "inputs/clip 1.txt")
			if err != nil {
				t.Fatal(err)
			}
			name := "jobs/clip 1"
			key := itemapi.ItemKey(name)
			itemFile := writeItem(t, name, map[string]any{"url": objURL})
			marker := filepath.Join(t.TempDir(), "marker")
			env = append(env, "WORK_ITEM_FILE="+itemFile, "OUTPUT_URL="+bucket, "MARKER="+marker)

			r := runBin(t, bin, env, "--", "sh", "-c", upper)
			r.want(t, 0)
			if got := string(buckettest.Get(t, bucket, key+"/upper.txt")); got != "HELLO, ITEM\n" {
				t.Fatalf("upper.txt = %q", got)
			}
			if got := string(buckettest.Get(t, bucket, key+"/env/item_name")); got != name+"\n" {
				t.Fatalf("ITEM_NAME = %q", got)
			}
			m := readManifest(t, buckettest.Get(t, bucket, key+"/_SUCCESS.json"))
			if m.Item != name || m.Key != key || m.Executor != "itemq-script" || m.Version == "" ||
				m.StartedAt.IsZero() || m.FinishedAt.Before(m.StartedAt) {
				t.Fatalf("manifest = %+v", m)
			}
			var names []string
			for _, o := range m.Outputs {
				names = append(names, o.Name)
				data := buckettest.Get(t, bucket, key+"/"+o.Name)
				sum := sha256.Sum256(data)
				if o.Size != int64(len(data)) || o.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("output %s: manifest says %d bytes %s, object is %d bytes %x", o.Name, o.Size, o.SHA256, len(data), sum)
				}
			}
			if want := []string{"env/item_name", "env/work_item_file", "upper.txt"}; !slices.Equal(names, want) {
				t.Fatalf("manifest outputs %v, want %v", names, want)
			}
			if keys := buckettest.Keys(t, bucket, key+"/"); len(keys) != 4 {
				t.Fatalf("objects under the key: %v", keys)
			}

			// Second run: already done, the script does not run.
			runBin(t, bin, env, "--", "sh", "-c", upper).want(t, 0)
			if got := testutil.ReadFile(t, marker); got != "run\n" {
				t.Fatalf("the script ran again on a finished item (marker %q)", got)
			}
			// EXECUTOR_FORCE=true: it runs again.
			runBin(t, bin, append(env, "EXECUTOR_FORCE=true"), "--", "sh", "-c", upper).want(t, 0)
			if got := testutil.ReadFile(t, marker); got != "run\nrun\n" {
				t.Fatalf("EXECUTOR_FORCE=true did not run the script (marker %q)", got)
			}
			readManifest(t, buckettest.Get(t, bucket, key+"/_SUCCESS.json"))
		})
	}
}

// inProcess runs the executor in the test process.
func inProcess(environ []string, stderr io.Writer, step executor.NewStep) int {
	return executor.Main(context.Background(), "test", nil, environ, io.Discard, stderr, step)
}

// mem:// buckets live in one process, so the library is tested in-process.
func TestInProcessMem(t *testing.T) {
	for _, be := range buckettest.Backends() {
		if !be.InProcess {
			continue
		}
		t.Run(be.Name, func(t *testing.T) {
			bucket, _ := be.New(t)
			buckettest.Put(t, bucket, "in/a.txt", []byte("abc"))
			objURL, _ := itemapi.JoinObjectURL(bucket, "in/a.txt")
			itemFile := writeItem(t, "a", map[string]any{"url": objURL})
			runs := 0
			step := func(args, environ []string) (executor.Step, error) {
				return executor.StepFunc(func(ctx context.Context, r *executor.Run) error {
					runs++
					data, err := os.ReadFile(r.InputFile)
					if err != nil {
						return err
					}
					if filepath.Base(r.InputFile) != "a.txt" || r.InputDir != filepath.Dir(r.InputFile) {
						return fmt.Errorf("input %s in %s", r.InputFile, r.InputDir)
					}
					return os.WriteFile(filepath.Join(r.OutputDir, "out.txt"), append(data, '!'), 0o644)
				}), nil
			}
			environ := []string{"WORK_ITEM_FILE=" + itemFile, "OUTPUT_URL=" + bucket, "EXECUTOR_INPUT_ALLOW=" + bucket}
			var stderr bytes.Buffer
			if code := inProcess(environ, &stderr, step); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if got := string(buckettest.Get(t, bucket, "a/out.txt")); got != "abc!" {
				t.Fatalf("out.txt = %q", got)
			}
			readManifest(t, buckettest.Get(t, bucket, "a/_SUCCESS.json"))
			if code := inProcess(environ, &stderr, step); code != 0 || runs != 1 {
				t.Fatalf("second run: exit %d, step ran %d times", code, runs)
			}
			// A missing object is a missing input: exit 2.
			missing, _ := itemapi.JoinObjectURL(bucket, "in/nope.txt")
			environ[0] = "WORK_ITEM_FILE=" + writeItem(t, "b", map[string]any{"url": missing})
			if code := inProcess(environ, &stderr, step); code != 2 {
				t.Fatalf("missing input: exit %d, want 2", code)
			}
		})
	}
}

// Every problem with the work item file is exit code 2 with a message
// naming the file.
func TestItemFileProblems(t *testing.T) {
	bin := scriptBin(t)
	dir := t.TempDir()
	malformed := filepath.Join(dir, "malformed.json")
	os.WriteFile(malformed, []byte(`{"kind":"Item",`), 0o644)
	invalid := filepath.Join(dir, "invalid.json")
	os.WriteFile(invalid, []byte(`{"kind":"Item","apiVersion":"v2","name":"a","data":{}}`), 0o644)
	oversized := filepath.Join(dir, "oversized.json")
	big := fmt.Sprintf(`{"kind":"Item","apiVersion":"v1","name":"a","data":{"pad":%q}}`, strings.Repeat("x", executor.MaxItemFileBytes))
	os.WriteFile(oversized, []byte(big), 0o644)
	for _, tc := range []struct{ name, file, want string }{
		{"malformed", malformed, "malformed.json"},
		{"invalid", invalid, "apiVersion"},
		{"oversized", oversized, "larger than"},
		{"missing", filepath.Join(dir, "missing.json"), "missing.json"},
		{"unset", "", "WORK_ITEM_FILE is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"OUTPUT_DIR=" + t.TempDir()}
			if tc.file != "" {
				env = append(env, "WORK_ITEM_FILE="+tc.file)
			}
			r := runBin(t, bin, env, "--", "true")
			r.want(t, 2)
			if !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 3 {
				t.Fatalf("stderr does not say %q on one line:\n%s", tc.want, r.stderr)
			}
		})
	}
}

func TestMissingInput(t *testing.T) {
	bin := scriptBin(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data any
		env  []string
	}{
		{"path", map[string]any{"path": filepath.Join(dir, "nope.mp4")}, nil},
		{"file-url", map[string]any{"url": "file://" + dir + "/nope.mp4"}, nil},
		{"http-404", map[string]any{"url": srv.URL + "/nope.mp4"}, nil},
		{"input-dir", map[string]any{}, []string{"INPUT_DIR=" + filepath.Join(dir, "nodir")}},
		{"bad-url", map[string]any{"url": "ftp://x/y"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"WORK_ITEM_FILE=" + writeItem(t, "a", tc.data), "OUTPUT_DIR=" + t.TempDir()}, tc.env...)
			runBin(t, bin, env, "--", "true").want(t, 2)
		})
	}
}

// An HTTP input that fails twice (a 503, then a reset connection) and then
// works is fetched; one over EXECUTOR_MAX_INPUT_BYTES is refused for good.
func TestHTTPInput(t *testing.T) {
	bin := scriptBin(t)
	body := strings.Repeat("video bytes ", 1000)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		case 2:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
				tc.SetLinger(0) // RST
			}
			conn.Close()
		default:
			io.WriteString(w, body)
		}
	}))
	defer srv.Close()
	out := t.TempDir()
	env := []string{
		"WORK_ITEM_FILE=" + writeItem(t, "h", map[string]any{"url": srv.URL + "/media/clip%201.mp4?sig=secret"}),
		"OUTPUT_DIR=" + out, "EXECUTOR_FETCH_BACKOFF=10ms",
	}
	r := runBin(t, bin, env, "--", "sh", "-c", `cp "$INPUT_FILE" "$OUTPUT_DIR/copy"; basename "$INPUT_FILE" > "$OUTPUT_DIR/name"`)
	r.want(t, 0)
	if calls.Load() != 3 {
		t.Fatalf("%d requests, want 3", calls.Load())
	}
	if got := testutil.ReadFile(t, filepath.Join(out, "copy")); got != body {
		t.Fatalf("fetched %d bytes, want %d", len(got), len(body))
	}
	if got := testutil.ReadFile(t, filepath.Join(out, "name")); got != "clip_1.mp4\n" {
		t.Fatalf("input file name %q", got)
	}
	if strings.Contains(r.stderr, "secret") {
		t.Fatalf("the URL's signature is in the logs:\n%s", r.stderr)
	}

	r = runBin(t, bin, append(env, "EXECUTOR_MAX_INPUT_BYTES=1KiB"), "--", "true")
	r.want(t, 2)
	if !strings.Contains(r.stderr, "EXECUTOR_MAX_INPUT_BYTES") {
		t.Fatalf("stderr does not mention the cap:\n%s", r.stderr)
	}
}

// An input server that never recovers: retried, then exit 1.
func TestHTTPInputUnavailable(t *testing.T) {
	bin := scriptBin(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	env := []string{
		"WORK_ITEM_FILE=" + writeItem(t, "h", map[string]any{"url": srv.URL + "/x"}),
		"OUTPUT_DIR=" + t.TempDir(), "EXECUTOR_FETCH_BACKOFF=1ms", "EXECUTOR_FETCH_ATTEMPTS=3",
	}
	runBin(t, bin, env, "--", "true").want(t, 1)
	if calls.Load() != 3 {
		t.Fatalf("%d requests, want 3", calls.Load())
	}
}

func TestScriptExitCodes(t *testing.T) {
	bin := scriptBin(t)
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "x", map[string]any{"n": 1}), "OUTPUT_DIR=" + t.TempDir()}
	runBin(t, bin, env, "--", "sh", "-c", "exit 1").want(t, 1)
	runBin(t, bin, env, "--", "sh", "-c", "exit 3").want(t, 1)
	perm := append(env, "SCRIPT_PERMANENT_EXIT_CODES=3, 4")
	runBin(t, bin, perm, "--", "sh", "-c", "exit 3").want(t, 2)
	runBin(t, bin, perm, "--", "sh", "-c", "exit 5").want(t, 1)
	runBin(t, bin, perm, "--", "true").want(t, 0)
	runBin(t, bin, append(env, "SCRIPT_PERMANENT_EXIT_CODES=x"), "--", "true").want(t, 2)
	// No command at all, or one that does not exist: a configuration error.
	runBin(t, bin, env).want(t, 2)
	runBin(t, bin, env, "--", "/nonexistent/cmd").want(t, 2)
}

// SCRIPT names an executable file; the item carries its input in its data,
// which the script reads from WORK_ITEM_FILE; item data never reaches a
// command line.
func TestScriptFileAndDataInput(t *testing.T) {
	bin := scriptBin(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "job.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nset -e\ncp \"$WORK_ITEM_FILE\" \"$OUTPUT_DIR/item.json\"\n"+
		"printf '[%s][%s]' \"$INPUT_FILE\" \"$INPUT_DIR\" > \"$OUTPUT_DIR/inputs\"\n"), 0o755)
	out := t.TempDir()
	evil := "$(touch " + filepath.Join(dir, "pwned") + "); `touch " + filepath.Join(dir, "pwned") + "`"
	env := []string{
		"WORK_ITEM_FILE=" + writeItem(t, evil, map[string]any{"values": []int{1, 2}}),
		"OUTPUT_DIR=" + out, "SCRIPT=" + script, "INPUT_FILE=", // an empty value is unset
	}
	runBin(t, bin, env).want(t, 0)
	if !strings.Contains(testutil.ReadFile(t, filepath.Join(out, "item.json")), `"values":[1,2]`) {
		t.Fatal("the script did not see the item")
	}
	if got := testutil.ReadFile(t, filepath.Join(out, "inputs")); got != "[][]" {
		t.Fatalf("INPUT_FILE and INPUT_DIR = %s, want both empty", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("the item name was run by a shell")
	}
}

// INPUT_DIR: nothing is fetched; INPUT_FILE is its only file.
func TestInputDir(t *testing.T) {
	bin := scriptBin(t)
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "only.txt"), []byte("x"), 0o644)
	out := t.TempDir()
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "d", map[string]any{"url": "http://127.0.0.1:1/never"}),
		"INPUT_DIR=" + in, "OUTPUT_DIR=" + out}
	runBin(t, bin, env, "--", "sh", "-c", `printf '%s|%s' "$INPUT_FILE" "$INPUT_DIR" > "$OUTPUT_DIR/seen"`).want(t, 0)
	if got, want := testutil.ReadFile(t, filepath.Join(out, "seen")), filepath.Join(in, "only.txt")+"|"+in; got != want {
		t.Fatalf("seen %q, want %q", got, want)
	}
}

// A child that writes a lot, including a line far longer than the log cut,
// neither stalls nor breaks the run.
func TestChattyChild(t *testing.T) {
	bin := scriptBin(t)
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "c", map[string]any{}), "OUTPUT_DIR=" + t.TempDir()}
	r := runBin(t, bin, env, "--", "sh", "-c", `head -c 3000000 /dev/zero | tr '\0' a; echo; seq 1 20000; seq 1 20000 >&2`)
	r.want(t, 0)
	if !strings.Contains(r.stderr, `"truncated":true`) || !strings.Contains(r.stderr, `"line":"20000"`) {
		tail := r.stderr
		if len(tail) > 3000 {
			tail = tail[len(tail)-3000:]
		}
		t.Fatalf("the child's output was not logged line by line; stderr ends with:\n%s", tail)
	}
}

func TestTimeout(t *testing.T) {
	bin := scriptBin(t)
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "t", map[string]any{}), "OUTPUT_DIR=" + t.TempDir(),
		"EXECUTOR_TIMEOUT=200ms", "EXECUTOR_GRACE=100ms"}
	r := runBin(t, bin, env, "--", "sleep", "600")
	r.want(t, 1)
	if !strings.Contains(r.stderr, "EXECUTOR_TIMEOUT") {
		t.Fatalf("stderr does not say why:\n%s", r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := runBin(t, scriptBin(t), nil, "--version")
	r.want(t, 0)
	if !strings.HasPrefix(r.stdout, "itemq-script ") {
		t.Fatalf("--version printed %q", r.stdout)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// counts as exited).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitFile(t *testing.T, p string) string {
	t.Helper()
	var data string
	testutil.Eventually(t, 60*time.Second, "file "+p, func() error {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return fmt.Errorf("not written yet: %v", err)
		}
		data = strings.TrimSpace(string(b))
		return nil
	})
	return data
}

// SIGTERM mid-step: the child's whole process group is stopped (SIGTERM,
// then SIGKILL after EXECUTOR_GRACE for a child that ignores SIGTERM),
// nothing is uploaded, and the exit code is 1.
func TestSIGTERMStopsTheChildGroup(t *testing.T) {
	bin := scriptBin(t)
	for _, tc := range []struct{ name, script string }{
		{"cooperative", `sleep 1000 & echo $! > "$PIDS/child"; echo $$ > "$PIDS/sh"; touch "$OUTPUT_DIR/partial"; wait`},
		{"ignores-sigterm", `trap '' TERM; sleep 1000 & echo $! > "$PIDS/child"; echo $$ > "$PIDS/sh"; touch "$OUTPUT_DIR/partial"; wait; wait`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := "file://" + t.TempDir()
			pids := t.TempDir()
			env := []string{"WORK_ITEM_FILE=" + writeItem(t, "s", map[string]any{}), "OUTPUT_URL=" + bucket,
				"PIDS=" + pids, "EXECUTOR_GRACE=300ms"}
			cmd, _, stderr := command(bin, env, "--", "sh", "-c", tc.script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var child, sh int
			fmt.Sscan(waitFile(t, filepath.Join(pids, "child")), &child)
			fmt.Sscan(waitFile(t, filepath.Join(pids, "sh")), &sh)
			if !alive(child) || !alive(sh) {
				t.Fatal("children not running")
			}
			cmd.Process.Signal(syscall.SIGTERM)
			code := exitCode(t, cmd.Wait())
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			// SIGKILL is delivered asynchronously: wait for it to land.
			testutil.Eventually(t, 30*time.Second, "the child process group is gone", func() error {
				for _, pid := range []int{child, sh} {
					if alive(pid) {
						return fmt.Errorf("process %d is still running", pid)
					}
				}
				return nil
			})
			if keys := buckettest.Keys(t, bucket, ""); len(keys) != 0 {
				t.Fatalf("objects after SIGTERM: %v", keys)
			}
		})
	}
}

// s3HangingOnPut is an in-process S3 server on which the PUT of a key
// ending in suffix reads the body, signals blocked, then hangs until the
// client goes away (or the test ends).
func s3HangingOnPut(t *testing.T, suffix string) (bucket string, env []string, blocked <-chan struct{}) {
	t.Helper()
	b := make(chan struct{}, 1)
	release := make(chan struct{})
	bucket, env = buckettest.FakeS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, suffix) {
				// Read the body, so that the server notices when the
				// client goes away, then hang until it does.
				io.Copy(io.Discard, r.Body)
				select {
				case b <- struct{}{}:
				default:
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	return bucket, env, b
}

// SIGTERM during the upload: what was already uploaded is deleted, no
// _SUCCESS.json is written.
func TestSIGTERMDuringUpload(t *testing.T) {
	bin := scriptBin(t)
	bucket, env, blocked := s3HangingOnPut(t, "/b.bin")
	env = append(env, "WORK_ITEM_FILE="+writeItem(t, "up/load", map[string]any{}), "OUTPUT_URL="+bucket,
		"EXECUTOR_UPLOAD_CONCURRENCY=1")
	cmd, _, stderr := command(bin, env, "--", "sh", "-c", `echo a > "$OUTPUT_DIR/a.bin"; echo b > "$OUTPUT_DIR/b.bin"`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the upload of b.bin never started; stderr:\n%s", stderr)
	}
	if keys := buckettest.Keys(t, bucket, "up/load/"); !slices.Equal(keys, []string{"up/load/a.bin"}) {
		t.Fatalf("objects during the upload: %v", keys)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, cmd.Wait()); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if keys := buckettest.Keys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("objects left after SIGTERM: %v\n%s", keys, stderr)
	}
}

// A step may not write the manifest's name.
func TestReservedOutputName(t *testing.T) {
	bin := scriptBin(t)
	bucket := "file://" + t.TempDir()
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "r", map[string]any{}), "OUTPUT_URL=" + bucket}
	runBin(t, bin, env, "--", "sh", "-c", `mkdir "$OUTPUT_DIR/x"; echo > "$OUTPUT_DIR/x/_SUCCESS.json"`).want(t, 2)
	if keys := buckettest.Keys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("objects: %v", keys)
	}
}

// On a file:// OUTPUT_URL an item key's directory cannot be where a file
// is (keys nest): a permanent error, and nothing is left behind.
func TestFileKeyCollision(t *testing.T) {
	bin := scriptBin(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("a file"), 0o644)
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "a/b", map[string]any{}), "OUTPUT_URL=file://" + dir}
	r := runBin(t, bin, env, "--", "sh", "-c", `echo x > "$OUTPUT_DIR/x"`)
	r.want(t, 2)
	if keys := buckettest.Keys(t, "file://"+dir, ""); !slices.Equal(keys, []string{"a"}) {
		t.Fatalf("objects: %v", keys)
	}
}

// The manager that reads the executor's output dies (SIGKILL) and its
// SIGTERM reaches the executor (Pdeathsig): the next log line goes into a
// pipe nobody reads. The executor must not die of SIGPIPE, but finish its
// shutdown: the step (which traps SIGTERM) is killed after EXECUTOR_GRACE,
// the work directory is removed, and the exit code is 1.
func TestClosedOutputDoesNotOrphanTheStep(t *testing.T) {
	bin := scriptBin(t)
	pids, work := t.TempDir(), t.TempDir()
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "orphan", map[string]any{}), "OUTPUT_URL=file://" + t.TempDir(),
		"PIDS=" + pids, "EXECUTOR_GRACE=500ms", "EXECUTOR_WORK_DIR=" + work}
	cmd, _, _ := command(bin, env, "--", "sh", "-c", `trap 'echo got TERM' TERM; echo $$ > "$PIDS/sh"; while :; do sleep 0.1; done`)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var sh int
	fmt.Sscan(waitFile(t, filepath.Join(pids, "sh")), &sh)
	t.Cleanup(func() { syscall.Kill(-sh, syscall.SIGKILL) })
	r.Close() // the reader dies
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the executor died of %v", ws.Signal())
	}
	if code := exitCode(t, err); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	testutil.Eventually(t, 10*time.Second, "the step is killed", func() error {
		if alive(sh) {
			return fmt.Errorf("step %d still running after the executor exited", sh)
		}
		return nil
	})
	if left, _ := filepath.Glob(filepath.Join(work, "itemq-run-*")); len(left) != 0 {
		t.Fatalf("work directory left behind: %v", left)
	}
}

// Every file name a directory source lists can be processed through
// file:// (issue 13): control characters (which gocloud's fileblob would
// escape), names of 250-255 bytes (whose ".attrs" sidecar name is too
// long), and 255-byte names whose item key is three times longer once
// percent-encoded (its segments are cut to file-name length).
func TestFileNamesFromADirectory(t *testing.T) {
	bin := scriptBin(t)
	in, out := t.TempDir(), t.TempDir()
	names := []string{
		"ctrl\x01\x1f\x7f.txt",
		"line\nbreak.txt",
		strings.Repeat("a", 251) + ".txt",
		strings.Repeat("b", 250),
		strings.Repeat("c d", 83) + "c.txt", // 254 bytes, 420 as a key
		strings.Repeat("é", 125) + ".txt",   // 254 bytes, 754 as a key
		strings.Repeat("%", 255),
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(in, name), []byte(name), 0o644); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
	}
	for _, name := range names {
		u, err := itemapi.JoinObjectURL("file://"+in, name)
		if err != nil {
			t.Fatal(err)
		}
		// The data itemq-dir serves for the file (dirsource.FileData), and
		// its name.
		item := writeItem(t, name, map[string]any{"path": filepath.Join(in, name), "url": u, "size": len(name)})
		env := []string{"WORK_ITEM_FILE=" + item, "OUTPUT_URL=file://" + out}
		r := runBin(t, bin, env, "--", "sh", "-c", `cp "$INPUT_FILE" "$OUTPUT_DIR/copy"`)
		if r.code != 0 {
			t.Errorf("item %q (%d bytes): exit %d\n%s", name, len(name), r.code, r.stderr)
			continue
		}
		key := itemapi.ItemKey(name)
		if got := string(buckettest.Get(t, "file://"+out, key+"/copy")); got != name {
			t.Errorf("item %q: copy holds %q", name, got)
		}
		readManifest(t, buckettest.Get(t, "file://"+out, key+"/_SUCCESS.json"))
	}
}

// What a hostile submitter tried: an item whose data.url or data.path names
// a file outside the allowed inputs (the executor's own secrets), an
// internal URL, or an allowed server that redirects to an internal one. Each
// is refused for good (exit 2) before anything is read, and the step never
// runs; an input under EXECUTOR_INPUT_ALLOW is fetched.
func TestInputsConfined(t *testing.T) {
	bin := scriptBin(t)
	allowedDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(allowedDir, "ok.txt"), []byte("fine"), 0o644); err != nil {
		t.Fatal(err)
	}
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(allowedDir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "internal")
	}))
	defer internal.Close()
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, internal.URL+"/admin", http.StatusFound)
			return
		}
		io.WriteString(w, "public")
	}))
	defer public.Close()
	allow := "EXECUTOR_INPUT_ALLOW=" + allowedDir + "," + public.URL + "/"
	for _, tc := range []struct {
		name  string
		data  map[string]any
		allow string // "" means unset
		ok    bool
	}{
		{"file-url-allowed", map[string]any{"url": "file://" + allowedDir + "/ok.txt"}, allow, true},
		{"path-allowed", map[string]any{"path": allowedDir + "/ok.txt"}, allow, true},
		{"http-allowed", map[string]any{"url": public.URL + "/video.mp4"}, allow, true},
		{"file-url-outside", map[string]any{"url": "file://" + secret}, allow, false},
		{"file-url-climbs-out", map[string]any{"url": "file://" + allowedDir + "/../" + filepath.Base(secretDir) + "/secret"}, allow, false},
		{"path-outside", map[string]any{"path": secret}, allow, false},
		{"link-out", map[string]any{"path": allowedDir + "/link.txt"}, allow, false},
		{"proc-environ", map[string]any{"url": "file:///proc/self/environ"}, allow, false},
		{"internal-url", map[string]any{"url": internal.URL + "/admin"}, allow, false},
		{"redirect-to-internal", map[string]any{"url": public.URL + "/redirect"}, allow, false},
		{"default-refuses-file", map[string]any{"url": "file://" + allowedDir + "/ok.txt"}, "", false},
		{"default-refuses-http", map[string]any{"url": public.URL + "/video.mp4"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			env := []string{"WORK_ITEM_FILE=" + writeItem(t, "x", tc.data), "OUTPUT_DIR=" + out, "EXECUTOR_FETCH_BACKOFF=10ms"}
			if tc.allow != "" {
				env = append(env, tc.allow)
			} else {
				env = append(env, "EXECUTOR_INPUT_ALLOW=")
			}
			r := runBin(t, bin, env, "--", "sh", "-c", `cat "$INPUT_FILE" > "$OUTPUT_DIR/copy"`)
			if tc.ok {
				r.want(t, 0)
				return
			}
			r.want(t, 2)
			if !strings.Contains(r.stderr, "EXECUTOR_INPUT_ALLOW") {
				t.Errorf("the refusal does not name the setting:\n%s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "copy")); err == nil {
				t.Errorf("the step ran: %q", testutil.ReadFile(t, filepath.Join(out, "copy")))
			}
			for _, leak := range []string{"s3cr3t", "internal\n"} {
				if strings.Contains(r.stdout+r.stderr, leak) {
					t.Errorf("%q leaked into the output", leak)
				}
			}
		})
	}
}
