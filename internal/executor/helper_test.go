package executor_test

// The executors reach buckets through the itemq-blob helper process: how
// it is found, that it is started only when a bucket is used and stopped
// with the run, and that the executors link no cloud SDK.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/blobs/blobstest"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// realHelper is the itemq-blob that testutil builds next to the executors.
func realHelper(t *testing.T) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(scriptBin(t)), "itemq-blob")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// countingHelper returns an EXECUTOR_BLOB_HELPER that records the pid of
// each helper started in the returned file, then is the real helper.
func countingHelper(t *testing.T) (helper, pids string) {
	t.Helper()
	dir := t.TempDir()
	helper, pids = filepath.Join(dir, "helper.sh"), filepath.Join(dir, "pids")
	script := fmt.Sprintf("#!/bin/sh\necho $$ >> %q\nexec %q \"$@\"\n", pids, realHelper(t))
	if err := os.WriteFile(helper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return helper, pids
}

func readPids(t *testing.T, p string) []int {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	return pids
}

// The helper is EXECUTOR_BLOB_HELPER, else itemq-blob next to the
// executor, else on PATH; without one, a run that needs a bucket fails
// with exit 1 and says so, and a run that does not needs none.
func TestHelperLookup(t *testing.T) {
	alone := filepath.Join(t.TempDir(), "itemq-script")
	data, err := os.ReadFile(scriptBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := realHelper(t)
	in := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(in, []byte("x"), 0o644)
	const copyInput = `cp "$INPUT_FILE" "$OUTPUT_DIR/out.txt"`
	noHelperPath := "PATH=/usr/bin:/bin"
	bucketRun := func(env ...string) result {
		bucket := "file://" + t.TempDir()
		return runBin(t, alone, append([]string{"WORK_ITEM_FILE=" + writeItem(t, "i", map[string]any{"path": in}), "OUTPUT_URL=" + bucket}, env...), "--", "sh", "-c", copyInput)
	}

	// No bucket, no helper needed.
	runBin(t, alone, []string{noHelperPath, "WORK_ITEM_FILE=" + writeItem(t, "i", map[string]any{"path": in}), "OUTPUT_DIR=" + t.TempDir()},
		"--", "sh", "-c", copyInput).want(t, 0)

	// OUTPUT_URL, or data.url naming an object, without a helper: exit 1.
	r := bucketRun(noHelperPath)
	r.want(t, 1)
	if !strings.Contains(r.stderr, "itemq-blob") || !strings.Contains(r.stderr, "EXECUTOR_BLOB_HELPER") {
		t.Fatalf("the error does not say what is missing:\n%s", r.stderr)
	}
	obj, _ := itemapi.JoinObjectURL("file://"+filepath.Dir(in), filepath.Base(in))
	runBin(t, alone, []string{noHelperPath, "WORK_ITEM_FILE=" + writeItem(t, "i", map[string]any{"url": obj}), "OUTPUT_DIR=" + t.TempDir()},
		"--", "true").want(t, 1)
	bucketRun(noHelperPath, "EXECUTOR_BLOB_HELPER=/nonexistent/itemq-blob").want(t, 1)

	// Found through EXECUTOR_BLOB_HELPER, or on PATH.
	bucketRun(noHelperPath, "EXECUTOR_BLOB_HELPER="+helper).want(t, 0)
	bucketRun("PATH=/usr/bin:/bin:"+filepath.Dir(helper)).want(t, 0)
}

// One helper per run, only when a bucket is used, gone when the run ends.
func TestHelperLifecycle(t *testing.T) {
	bin := scriptBin(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "over http") }))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("in a bucket"), 0o644)
	obj, _ := itemapi.JoinObjectURL("file://"+dir, "in.txt")
	for _, tc := range []struct {
		name    string
		data    map[string]any
		bucket  bool // OUTPUT_URL
		helpers int
	}{
		{"http-input", map[string]any{"url": srv.URL + "/in.txt"}, false, 0},
		{"local-input", map[string]any{"path": filepath.Join(dir, "in.txt")}, false, 0},
		{"data-only", map[string]any{"n": 1}, false, 0},
		{"bucket-input", map[string]any{"url": obj}, false, 1},
		{"bucket-output", map[string]any{"url": srv.URL + "/in.txt"}, true, 1},
		{"bucket-both", map[string]any{"url": obj}, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			helper, pids := countingHelper(t)
			env := []string{"WORK_ITEM_FILE=" + writeItem(t, "i", tc.data), "EXECUTOR_BLOB_HELPER=" + helper}
			if tc.bucket {
				env = append(env, "OUTPUT_URL=file://"+t.TempDir())
			} else {
				env = append(env, "OUTPUT_DIR="+t.TempDir())
			}
			runBin(t, bin, env, "--", "sh", "-c", `for i in 1 2 3; do echo $i > "$OUTPUT_DIR/$i.txt"; done`).want(t, 0)
			started := readPids(t, pids)
			if len(started) != tc.helpers {
				t.Fatalf("%d helpers started, want %d", len(started), tc.helpers)
			}
			for _, pid := range started {
				if alive(pid) {
					t.Fatalf("helper %d still running after the run", pid)
				}
			}
		})
	}
}

// SIGKILL to the executor alone: the helper sees its stdin close and
// exits.
func TestHelperDiesWithTheExecutor(t *testing.T) {
	bin := scriptBin(t)
	helper, pids := countingHelper(t)
	marks := t.TempDir()
	env := []string{"WORK_ITEM_FILE=" + writeItem(t, "k", map[string]any{}), "OUTPUT_URL=file://" + t.TempDir(),
		"EXECUTOR_BLOB_HELPER=" + helper, "MARKS=" + marks}
	cmd, _, stderr := command(bin, env, "--", "sh", "-c", `echo $$ > "$MARKS/sh"; sleep 1000`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sh int
	fmt.Sscan(waitFile(t, filepath.Join(marks, "sh")), &sh)
	t.Cleanup(func() { syscall.Kill(-sh, syscall.SIGKILL) }) // the step's group, orphaned on purpose
	started := readPids(t, pids)
	if len(started) != 1 {
		t.Fatalf("helpers %v, want one (the _SUCCESS.json check)", started)
	}
	cmd.Process.Kill()
	cmd.Wait()
	testutil.Eventually(t, 30*time.Second, "the helper exits", func() error {
		if alive(started[0]) {
			return fmt.Errorf("helper %d still running", started[0])
		}
		return nil
	})
	if strings.Contains(stderr.String(), `"level":"ERROR"`) {
		t.Fatalf("errors before the kill:\n%s", stderr)
	}
}

// SIGTERM to the executor's whole process group (as the local runner
// sends it) during an upload: the helper ignores it, so the executor can
// still delete what it uploaded; exit 1, nothing left, no helper left.
func TestSIGTERMToTheGroupDuringUpload(t *testing.T) {
	bin := scriptBin(t)
	helper, pids := countingHelper(t)
	bucket, env, blocked := s3HangingOnPut(t, "/b.bin")
	env = append(env, "WORK_ITEM_FILE="+writeItem(t, "up/load", map[string]any{}), "OUTPUT_URL="+bucket,
		"EXECUTOR_UPLOAD_CONCURRENCY=1", "EXECUTOR_BLOB_HELPER="+helper)
	cmd, _, stderr := command(bin, env, "--", "sh", "-c", `echo a > "$OUTPUT_DIR/a.bin"; echo b > "$OUTPUT_DIR/b.bin"`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(2 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the upload of b.bin never started; stderr:\n%s", stderr)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	if code := exitCode(t, cmd.Wait()); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if keys := blobstest.Keys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("objects left after SIGTERM: %v\n%s", keys, stderr)
	}
	if !strings.Contains(stderr.String(), "cleanup: deleted what this run had uploaded") {
		t.Fatalf("no cleanup:\n%s", stderr)
	}
	for _, pid := range readPids(t, pids) {
		if alive(pid) {
			t.Fatalf("helper %d still running", pid)
		}
	}
}

// A bucket input that fails transiently (503s) is fetched again by the
// executor; one over EXECUTOR_MAX_INPUT_BYTES is refused for good.
func TestBucketInputRetriesAndCap(t *testing.T) {
	bin := scriptBin(t)
	var gets atomic.Int32
	bucket, env := blobstest.FakeS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The SDK tries 3 times itself: the first executor attempt
			// fails, the second works.
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/in.txt") && gets.Add(1) <= 3 {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	blobstest.Put(t, bucket, "in.txt", []byte(strings.Repeat("x", 2000)))
	obj, _ := itemapi.JoinObjectURL(bucket, "in.txt")
	env = append(env, "WORK_ITEM_FILE="+writeItem(t, "r", map[string]any{"url": obj}), "OUTPUT_DIR="+t.TempDir(), "EXECUTOR_FETCH_BACKOFF=10ms")
	r := runBin(t, bin, env, "--", "true")
	r.want(t, 0)
	if n := strings.Count(r.stderr, "transient failure; retrying"); n != 1 {
		t.Fatalf("%d retries logged, want 1:\n%s", n, r.stderr)
	}
	r = runBin(t, bin, append(env, "EXECUTOR_MAX_INPUT_BYTES=1KiB"), "--", "true")
	r.want(t, 2)
	if !strings.Contains(r.stderr, "EXECUTOR_MAX_INPUT_BYTES=1024") {
		t.Fatalf("stderr does not mention the cap:\n%s", r.stderr)
	}
}

// The executors link no cloud SDK and not internal/blobs (whose package
// initialisation made them start slowly). ffmpeg-go, which itemq-thumbnail
// uses to build ffmpeg command lines, imports aws-sdk-go v1; go.mod replaces
// that module with a stub of the three packages ffmpeg-go names
// (third_party/aws-sdk-go-stub), and only those are allowed there.
func TestExecutorsLinkNoCloudSDK(t *testing.T) {
	root := testutil.ModuleRoot(t)
	cmd := exec.Command("go", "list", "-m", "-f", "{{with .Replace}}{{.Path}}{{end}}", "github.com/aws/aws-sdk-go")
	cmd.Dir = root
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != "./third_party/aws-sdk-go-stub" {
		t.Fatalf("go.mod must replace github.com/aws/aws-sdk-go with ./third_party/aws-sdk-go-stub; the replacement is %q (%v)", out, err)
	}
	for pkg, allowed := range map[string]*regexp.Regexp{
		"./executors/script":    nil,
		"./executors/thumbnail": regexp.MustCompile(`^github\.com/aws/aws-sdk-go/(aws|aws/session|service/s3/s3manager)$`),
	} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		var bad []string
		for dep := range strings.FieldsSeq(string(out)) {
			if regexp.MustCompile(`gocloud|aws|google|azure|/internal/blobs`).MatchString(dep) && (allowed == nil || !allowed.MatchString(dep)) {
				bad = append(bad, dep)
			}
		}
		if len(bad) > 0 {
			slices.Sort(bad)
			t.Errorf("%s links %d packages it should not: %v", pkg, len(bad), bad)
		}
	}
}
