package executor_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/itemq/itemq/internal/executor"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// result is how a run of an executor binary ended.
type result struct {
	code   int
	stdout string
	stderr string
}

// baseEnv is the test process's environment without any variable an
// executor reads.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "WORK_ITEM_FILE", k == "SCRIPT", strings.HasPrefix(k, "INPUT_"), strings.HasPrefix(k, "OUTPUT_"),
			strings.HasPrefix(k, "EXECUTOR_"), strings.HasPrefix(k, "SCRIPT_"), strings.HasPrefix(k, "THUMB_"):
			continue
		}
		env = append(env, kv)
	}
	// These tests are about fetching: every input is allowed
	// (EXECUTOR_INPUT_ALLOW's confinement has its own tests).
	return append(env, "EXECUTOR_INPUT_ALLOW=*")
}

func command(bin string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(baseEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func runBin(t *testing.T, bin string, env []string, args ...string) result {
	t.Helper()
	cmd, stdout, stderr := command(bin, env, args...)
	err := cmd.Run()
	return result{code: exitCode(t, err), stdout: stdout.String(), stderr: stderr.String()}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

func (r result) want(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
}

// writeItem writes a work item file and returns its path.
func writeItem(t *testing.T, name string, data any) string {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
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

func scriptBin(t *testing.T) string {
	t.Helper()
	return testutil.Binary(t, "executors/script")
}

// readManifest decodes a _SUCCESS.json.
func readManifest(t *testing.T, data []byte) executor.Manifest {
	t.Helper()
	var m executor.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, data)
	}
	return m
}
