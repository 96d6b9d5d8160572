package executor_test

// Bucket I/O in the executor's own process: signals to the whole group,
// retries, the size cap, the deprecated EXECUTOR_BLOB_HELPER, and the build
// tags that leave cloud drivers out of a binary.

import (
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/bucket/buckettest"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// SIGTERM to the executor's whole process group (as the local runner
// sends it) during an upload: the executor still deletes what it uploaded;
// exit 1, nothing left. EXECUTOR_BLOB_HELPER is still accepted, with a
// warning.
func TestSIGTERMToTheGroupDuringUpload(t *testing.T) {
	bin := scriptBin(t)
	bucket, env, blocked := s3HangingOnPut(t, "/b.bin")
	env = append(env, "WORK_ITEM_FILE="+writeItem(t, "up/load", map[string]any{}), "OUTPUT_URL="+bucket,
		"EXECUTOR_UPLOAD_CONCURRENCY=1", "EXECUTOR_BLOB_HELPER=/usr/bin/itemq-blob")
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
	if keys := buckettest.Keys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("objects left after SIGTERM: %v\n%s", keys, stderr)
	}
	if !strings.Contains(stderr.String(), "cleanup: deleted what this run had uploaded") {
		t.Fatalf("no cleanup:\n%s", stderr)
	}
	if !strings.Contains(stderr.String(), "EXECUTOR_BLOB_HELPER is deprecated") {
		t.Fatalf("no deprecation warning for EXECUTOR_BLOB_HELPER:\n%s", stderr)
	}
}

// A bucket input that fails transiently (503s) is fetched again by the
// executor; one over EXECUTOR_MAX_INPUT_BYTES is refused for good.
func TestBucketInputRetriesAndCap(t *testing.T) {
	bin := scriptBin(t)
	var gets atomic.Int32
	bucket, env := buckettest.FakeS3(t, func(h http.Handler) http.Handler {
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
	buckettest.Put(t, bucket, "in.txt", []byte(strings.Repeat("x", 2000)))
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

// Build tags leave cloud drivers out of a binary: with all three, an
// executor links none of the cloud SDKs (ffmpeg-go's stub of aws-sdk-go v1
// aside, see third_party/aws-sdk-go-stub), and without them it links all.
func TestBuildTagsLeaveDriversOut(t *testing.T) {
	root := testutil.ModuleRoot(t)
	sdk := regexp.MustCompile(`^(github\.com/aws/aws-sdk-go-v2/service/s3|cloud\.google\.com/go/storage|github\.com/Azure/azure-sdk-for-go/sdk/storage/azblob)$`)
	deps := func(tags string) []string {
		t.Helper()
		cmd := exec.Command("go", "list", "-deps", "-tags", tags, "./executors/script")
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v", tags, err)
		}
		var found []string
		for dep := range strings.FieldsSeq(string(out)) {
			if sdk.MatchString(dep) {
				found = append(found, dep)
			}
		}
		slices.Sort(found)
		return found
	}
	if got := deps(""); len(got) != 3 {
		t.Errorf("without tags the executor links %v, want the S3, GCS and Azure SDKs", got)
	}
	if got := deps("itemq_no_s3,itemq_no_gcs,itemq_no_azure"); len(got) != 0 {
		t.Errorf("with every itemq_no_* tag the executor still links %v", got)
	}
}
