package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

func attempt(t *testing.T) *Attempt {
	t.Helper()
	dir := t.TempDir()
	doc := []byte(`{"kind":"Item","apiVersion":"v1","name":"a b","data":{}}`)
	f := filepath.Join(dir, "item.json")
	if err := os.WriteFile(f, doc, 0o444); err != nil {
		t.Fatal(err)
	}
	jl, err := OpenJobLog(filepath.Join(t.TempDir(), "job.log"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jl.Close() })
	return &Attempt{Job: "q-0123456789", Item: itemapi.NewItem("a b", nil), ItemDoc: doc, Number: 1, WorkDir: dir, ItemFile: f, Log: jl}
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func TestStepsChainThroughDirs(t *testing.T) {
	a := attempt(t)
	p := &ProcessLauncher{Steps: [][]string{
		sh(`echo one > "$OUTPUT_DIR/x"; echo "url=${OUTPUT_URL:-none}" > "$OUTPUT_DIR/url"`),
		sh(`cat "$INPUT_DIR/x" > "$OUTPUT_DIR/y"; echo two >> "$OUTPUT_DIR/y"; cp "$INPUT_DIR/url" "$OUTPUT_DIR/url1"`),
		sh(`cp "$INPUT_DIR/y" "$OUTPUT_DIR/z"; cp "$INPUT_DIR/url1" "$OUTPUT_DIR/url1"; echo "url=$OUTPUT_URL item=$(cat "$WORK_ITEM_FILE" | head -c 5)" > "$OUTPUT_DIR/last"`),
	}, Env: []string{"PATH=" + os.Getenv("PATH"), "OUTPUT_URL=file:///out", "INPUT_DIR=/should/be/replaced"}}
	code, err := p.Launch(context.Background(), a)
	if err != nil || code != 0 {
		t.Fatalf("Launch = %d, %v", code, err)
	}
	last := filepath.Join(a.WorkDir, "step3-out")
	if b, _ := os.ReadFile(filepath.Join(last, "z")); string(b) != "one\ntwo\n" {
		t.Fatalf("step 3 got %q from the chain", b)
	}
	if b, _ := os.ReadFile(filepath.Join(last, "url1")); string(b) != "url=none\n" {
		t.Fatalf("an intermediate step saw OUTPUT_URL: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(last, "last")); string(b) != "url=file:///out item={\"kin\n" {
		t.Fatalf("last step: %q", b)
	}
}

func TestExitCodesAndMissingCommand(t *testing.T) {
	for _, c := range []struct {
		script string
		code   int
	}{{"exit 0", 0}, {"exit 1", 1}, {"exit 2", 2}, {"exit 7", 7}} {
		a := attempt(t)
		code, err := (&ProcessLauncher{Steps: [][]string{sh(c.script)}}).Launch(context.Background(), a)
		if err != nil || code != c.code {
			t.Errorf("%q: %d, %v; want %d", c.script, code, err, c.code)
		}
	}
	a := attempt(t)
	// A failing step stops the pipeline.
	code, _ := (&ProcessLauncher{Steps: [][]string{sh("exit 2"), sh(`touch "$OUTPUT_DIR/ran"`)}}).Launch(context.Background(), a)
	if code != 2 || testExists(filepath.Join(a.WorkDir, "step2-out", "ran")) {
		t.Fatalf("pipeline went on after a failed step (code %d)", code)
	}
	if _, err := (&ProcessLauncher{Steps: [][]string{{"/no/such/executor"}}}).Launch(context.Background(), attempt(t)); err == nil || !strings.Contains(err.Error(), "/no/such/executor") {
		t.Fatalf("missing command: %v", err)
	}
}

func testExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Cancelling an attempt stops the whole process group, also children that
// ignore SIGTERM (after the grace period).
func TestCancelKillsTheGroup(t *testing.T) {
	a := attempt(t)
	pidFile := filepath.Join(a.WorkDir, "child.pid")
	p := &ProcessLauncher{Steps: [][]string{sh(`sh -c 'trap "" TERM; echo $$ > ` + pidFile + `; while :; do sleep 0.05; done' & wait`)}, Grace: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = p.Launch(ctx, a)
	}()
	var pid int
	testutil.Eventually(t, 10*time.Second, "child started", func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Launch did not return after cancel")
	}
	testutil.Eventually(t, 5*time.Second, "grandchild gone", func() error {
		if err := syscall.Kill(pid, 0); err == nil {
			if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(st), ") Z ") {
				return nil // a zombie waiting for its reaper is dead
			}
			return os.ErrExist
		}
		return nil
	})
}

func TestJobLogIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	jl, err := OpenJobLog(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		_, _ = jl.Write([]byte(strings.Repeat("x", 99) + "\n"))
	}
	_, _ = jl.Write([]byte("THE END\n"))
	jl.Close()
	b, _ := os.ReadFile(path)
	if len(b) > 1000+tailBytes+200 {
		t.Fatalf("log is %d bytes", len(b))
	}
	if !strings.Contains(string(b), "bytes dropped") || !strings.HasSuffix(string(b), "THE END\n") {
		t.Fatalf("log lacks the drop note or the tail:\n%s", b[len(b)-200:])
	}
}
