package executor_test

// The executor's fetch and upload against the real storage servers that
// `make test` installs (internal/testutil/servers): versitygw (S3),
// fake-gcs-server (GCS) and Azurite (Azure Blob). The input is fetched
// through an item's data.url, the results go to OUTPUT_URL on the same
// server, and a second run finds the finished item. Self-contained on
// purpose (only committed helpers), so that it does not depend on the
// other executor test files.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gocloud.dev/blob"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/servers"
	"github.com/itemq/itemq/itemapi"
)

const realServerScript = `set -e
tr a-z A-Z < "$INPUT_FILE" > "$OUTPUT_DIR/upper.txt"
echo run >> "$MARKER"
`

func TestRealServersFetchUpload(t *testing.T) {
	bin := testutil.Binary(t, "executors/script")
	for _, srv := range servers.All(t) {
		t.Run(srv.Kind, func(t *testing.T) {
			srv.Setenv(t) // the test's own reads and writes
			in, out := srv.NewBucket(t), srv.NewBucket(t)
			realPut(t, in, "inputs/clip é 1.txt", []byte("hello, item\n"))
			objURL, err := itemapi.JoinObjectURL(in, "inputs/clip é 1.txt")
			if err != nil {
				t.Fatal(err)
			}
			name := "jobs/clip é 1"
			key := itemapi.ItemKey(name)
			marker := filepath.Join(t.TempDir(), "marker")
			// Inputs are confined to the input bucket's inputs/ (with the
			// bucket's parameters: endpoint, region…).
			allow, err := itemapi.JoinObjectURL(in, "inputs/")
			if err != nil {
				t.Fatal(err)
			}
			env := append(srv.Env(), "WORK_ITEM_FILE="+realItemFile(t, name, objURL), "OUTPUT_URL="+out, "MARKER="+marker,
				"EXECUTOR_INPUT_ALLOW="+allow)

			if code, stderr := realRun(t, bin, env); code != 0 {
				t.Fatalf("exit code %d\n%s", code, stderr)
			}
			if got := string(realGet(t, out, key+"/upper.txt")); got != "HELLO, ITEM\n" {
				t.Fatalf("upper.txt = %q", got)
			}
			var m executor.Manifest
			if err := json.Unmarshal(realGet(t, out, key+"/_SUCCESS.json"), &m); err != nil {
				t.Fatal(err)
			}
			data := realGet(t, out, key+"/upper.txt")
			sum := sha256.Sum256(data)
			if m.Item != name || m.Key != key || len(m.Outputs) != 1 || m.Outputs[0].Name != "upper.txt" ||
				m.Outputs[0].SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("manifest %+v", m)
			}
			// A second run finds the manifest and does nothing.
			if code, stderr := realRun(t, bin, env); code != 0 {
				t.Fatalf("second run: exit code %d\n%s", code, stderr)
			}
			if b, _ := os.ReadFile(marker); string(b) != "run\n" {
				t.Fatalf("the script ran again on a finished item (marker %q)", b)
			}

			// A missing input is the item's fault: exit code 2.
			missing, _ := itemapi.JoinObjectURL(in, "inputs/none.txt")
			env = append(srv.Env(), "WORK_ITEM_FILE="+realItemFile(t, "jobs/none", missing), "OUTPUT_URL="+out, "MARKER="+marker)
			if code, stderr := realRun(t, bin, env); code != executor.ExitPermanent {
				t.Fatalf("missing input: exit code %d, want %d\n%s", code, executor.ExitPermanent, stderr)
			}
		})
	}
}

func realRun(t *testing.T, bin string, env []string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, "--", "sh", "-c", realServerScript)
	for _, kv := range os.Environ() {
		k, _, _ := bytes.Cut([]byte(kv), []byte("="))
		switch string(k) {
		case "WORK_ITEM_FILE", "OUTPUT_URL", "INPUT_DIR", "INPUT_FILE", "OUTPUT_DIR", "SCRIPT":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run %s: %v", bin, err)
	return -1, ""
}

func realItemFile(t *testing.T, name, objURL string) string {
	t.Helper()
	raw, _ := json.Marshal(map[string]string{"url": objURL})
	doc, err := json.Marshal(itemapi.NewItem(name, raw))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "item.json")
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func realOpen(t *testing.T, bucketURL string) *blob.Bucket {
	t.Helper()
	b, err := bucket.Open(context.Background(), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func realPut(t *testing.T, bucketURL, key string, data []byte) {
	t.Helper()
	if err := realOpen(t, bucketURL).WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
}

func realGet(t *testing.T, bucketURL, key string) []byte {
	t.Helper()
	data, err := realOpen(t, bucketURL).ReadAll(context.Background(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}
