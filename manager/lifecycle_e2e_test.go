package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager/webhook"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// itemqCLI runs bin/itemq against a manager and returns its exit code and
// output.
func itemqCLI(t *testing.T, mgr *testutil.Process, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(t, "cmd/itemq"), args...)
	cmd.Env = append(os.Environ(), "ITEMQ_MANAGER_URL="+mgr.URL(), "ITEMQ_TOKEN=tok")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// The job lifecycle through the itemq command, with the real manager, dir
// ambassador and script executor: submit --wait and its exit codes,
// Idempotency-Key, cancel of a running job, bulk retry (redrive) of dead
// items, logs, outputs, top.
func TestLifecycleWithItemqCommand(t *testing.T) {
	r := newRig(t, "DIR_SUBMIT=true", "DIR_DATA=json")
	mgr := r.manager("MANAGER_TOKEN=tok")

	// submit --wait: exit 0 with the job's status as JSON.
	code, out, errOut := itemqCLI(t, mgr, "", "submit", "--data", `{"frames":[1]}`, "--key", "k-1", "--wait", "-o", "json")
	var st itemapi.JobStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != itemapi.StateSucceeded {
		t.Fatalf("submit --wait: exit %d, %s %s", code, out, errOut)
	}
	// The same key again: the same job, no second run.
	code, out, _ = itemqCLI(t, mgr, `{"frames":[1]}`, "submit", "-f", "-", "--key", "k-1", "-o", "json")
	var again itemapi.JobStatus
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || again.Item != st.Item {
		t.Fatalf("replayed key: exit %d, %s (first %s)", code, out, st.Item)
	}
	if code, _, errOut := itemqCLI(t, mgr, "", "submit", "--data", `{"frames":[2]}`, "--key", "k-1"); code != 2 || !strings.Contains(errOut, "different body") {
		t.Fatalf("the key with another body: exit %d, %s", code, errOut)
	}
	// Across a crash of the manager too.
	mgr.Kill()
	mgr = r.manager("MANAGER_TOKEN=tok")
	code, out, _ = itemqCLI(t, mgr, "", "submit", "--data", `{"frames":[1]}`, "--key", "k-1", "-o", "json")
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || again.Item != st.Item {
		t.Fatalf("replayed key after a restart: exit %d, %s (first %s)", code, out, st.Item)
	}
	if n := strings.Count(strings.Join(testutil.ReadLines(t, filepath.Join(r.logs, "done.log")), "\n"), st.Item); n != 1 {
		t.Fatalf("the keyed job ran %d times", n)
	}
	// A priority needs the manager's priority field: a clear error, exit 2.
	if code, _, errOut := itemqCLI(t, mgr, "", "submit", "--data", `{"frames":[3]}`, "--priority", "5"); code != 2 || !strings.Contains(errOut, "MANAGER_PRIORITY_FIELD") {
		t.Fatalf("submit --priority without MANAGER_PRIORITY_FIELD: exit %d, %s", code, errOut)
	}
	// A job that fails: exit 3.
	if code, _, errOut := itemqCLI(t, mgr, "", "submit", "--data", `{"fail":true}`, "--wait"); code != 3 {
		t.Fatalf("submit --wait of a failing job: exit %d, %s", code, errOut)
	}

	// Results through the manager.
	code, out, _ = itemqCLI(t, mgr, "", "outputs", st.Item)
	if code != 0 || !strings.Contains(out, "result.txt") || !strings.Contains(out, "SHA256") {
		t.Fatalf("outputs: exit %d, %s", code, out)
	}
	if code, out, errOut := itemqCLI(t, mgr, "", "get-output", st.Item, "result.txt", "-O", "-"); code != 0 || out != "processed\n" {
		t.Fatalf("get-output: exit %d, %q %s", code, out, errOut)
	}
	if code, out, _ := itemqCLI(t, mgr, "", "logs", "--tail", "50", st.Item); code != 0 || !strings.Contains(out, "attempt 1") {
		t.Fatalf("logs: exit %d, %s", code, out)
	}
	// The job's attempts: where each ran, how it ended.
	if code, out, _ := itemqCLI(t, mgr, "", "job", st.Item); code != 0 || !strings.Contains(out, "Attempts:") ||
		!strings.Contains(out, "pid ") || !strings.Contains(out, "succeeded") {
		t.Fatalf("job: exit %d, %s", code, out)
	}

	// Cancel a running job: it stops, is dead-lettered, never runs again.
	r.put("slow1.json")
	testutil.Eventually(t, time.Minute, "slow job running", func() error {
		_, out, _ := itemqCLI(t, mgr, "", "job", "slow1.json", "-o", "json")
		if !strings.Contains(out, `"state": "running"`) {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	start := time.Now()
	if code, out, errOut := itemqCLI(t, mgr, "", "cancel", "slow1.json"); code != 0 || !strings.Contains(out, "1 done") {
		t.Fatalf("cancel: exit %d, %s %s", code, out, errOut)
	}
	r.waitArchived([]string{"slow1.json"}, []string{"slow1.json"}, 30*time.Second)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the cancelled job stopped after %v", took)
	}
	code, out, _ = itemqCLI(t, mgr, "", "jobs", "--state", "cancelled", "-o", "json")
	if code != 0 || !strings.Contains(out, `"item": "slow1.json"`) {
		t.Fatalf("jobs --state cancelled: exit %d, %s", code, out)
	}

	// Dead items, redriven in bulk once fixed: each runs again, once.
	bad := names("bad", 50)
	r.put(bad...)
	r.waitArchived(bad, bad, 2*time.Minute)
	testutil.Eventually(t, 30*time.Second, "all dead", func() error {
		_, out, _ := itemqCLI(t, mgr, "", "jobs", "--state", "dead", "--prefix", "bad", "-o", "json")
		var l itemapi.JobStatusList
		if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Items) != len(bad) {
			return fmt.Errorf("%d dead (%v)", len(l.Items), err)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(r.logs, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = itemqCLI(t, mgr, "", "retry", "--state", "dead", "--prefix", "bad", "-o", "json")
	var res itemapi.ActionResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Done != len(bad) {
		t.Fatalf("retry --state dead: exit %d, %s %s", code, out, errOut)
	}
	r.waitArchived(bad, nil, 2*time.Minute)
	starts := r.starts()
	for _, n := range bad {
		if starts[n] != 2 {
			t.Errorf("%s started %d times, want 2 (dead, then retried)", n, starts[n])
		}
	}

	// The live view, once.
	code, out, _ = itemqCLI(t, mgr, "", "top", "--once")
	if code != 0 || !strings.Contains(out, "SUCCEEDED") || !strings.Contains(out, "λ") {
		t.Fatalf("top: exit %d, %s", code, out)
	}
	// Unknown jobs and bad usage: exit 2.
	if code, _, _ := itemqCLI(t, mgr, "", "job", "nope"); code != 2 {
		t.Errorf("job of an unknown item: exit %d", code)
	}
	if code, _, _ := itemqCLI(t, mgr, "", "cancel"); code != 2 {
		t.Errorf("cancel without a selector: exit %d", code)
	}
}

// hookReceiver accepts signed completion events, failing every other
// request, and records which (type, item) pairs arrived.
type hookReceiver struct {
	mu    sync.Mutex
	got   map[string]int // "type item" → deliveries accepted
	bad   int
	calls int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if err := webhook.Verify("hook-secret", r.Header, body, 5*time.Minute); err != nil {
		h.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if h.calls%2 == 0 {
		http.Error(w, "flaky receiver", http.StatusServiceUnavailable)
		return
	}
	var ev webhook.CloudEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		h.bad++
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.got[ev.Type+" "+ev.Subject]++
}

func (h *hookReceiver) missing(want []string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, w := range want {
		if h.got[w] == 0 {
			out = append(out, w)
		}
	}
	return out
}

// Completion webhooks to a receiver that fails half the time, with the
// manager SIGKILLed while deliveries and a bulk redrive are in flight:
// every event arrives, signed; no item runs twice after its redrive.
func TestWebhooksAndRedriveSurviveKills(t *testing.T) {
	r := newRig(t)
	hooks := &hookReceiver{got: map[string]int{}}
	recv := httptest.NewServer(hooks)
	defer recv.Close()
	r.extraEnv = []string{"MANAGER_TOKEN=tok", "MANAGER_WEBHOOK_URL=" + recv.URL, "MANAGER_WEBHOOK_SECRET=hook-secret",
		"MANAGER_WEBHOOK_BACKOFF_MAX=300ms", "MANAGER_JOB_ENV_WORK_SECONDS=0.02"}
	ok, bad := names("item", 40), names("bad", 120)
	r.put(slices.Concat(ok, bad)...)
	mgr := r.manager()
	r.waitArchived(slices.Concat(ok, bad), bad, 3*time.Minute)
	// Killed while events are still being delivered.
	mgr.Kill()
	mgr = r.manager()
	var want []string
	for _, n := range ok {
		want = append(want, webhook.TypeSucceeded+" "+n)
	}
	for _, n := range bad {
		want = append(want, webhook.TypeFailed+" "+n, webhook.TypeDead+" "+n)
	}
	testutil.Eventually(t, 2*time.Minute, "every event delivered", func() error {
		if m := hooks.missing(want); len(m) > 0 {
			return fmt.Errorf("%d events missing, e.g. %s", len(m), m[0])
		}
		return nil
	})

	// A bulk redrive, with the manager killed while it runs; run again
	// after the restart, it finishes the job.
	if err := os.WriteFile(filepath.Join(r.logs, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	retried := make(chan struct{})
	go func() {
		defer close(retried)
		itemqCLI(t, mgr, "", "retry", "--state", "dead")
	}()
	time.Sleep(30 * time.Millisecond)
	mgr.Kill()
	<-retried
	mgr = r.manager()
	testutil.Eventually(t, 2*time.Minute, "every bad item retried", func() error {
		code, out, errOut := itemqCLI(t, mgr, "", "retry", "--state", "dead", "-o", "json")
		if code != 0 {
			return fmt.Errorf("retry: exit %d %s %s", code, out, errOut)
		}
		var res itemapi.ActionResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Items) > 0 {
			return fmt.Errorf("still dead: %d (%v)", len(res.Items), err)
		}
		return nil
	})
	r.waitArchived(bad, nil, 3*time.Minute)
	starts := r.starts()
	for _, n := range bad {
		if starts[n] != 2 {
			t.Errorf("%s started %d times, want 2 (dead, then redriven once)", n, starts[n])
		}
	}
	for _, n := range bad {
		want = append(want, webhook.TypeSucceeded+" "+n)
	}
	testutil.Eventually(t, time.Minute, "the retried jobs' events delivered", func() error {
		if m := hooks.missing(want); len(m) > 0 {
			return fmt.Errorf("%d events missing, e.g. %s", len(m), m[0])
		}
		return nil
	})
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if hooks.bad != 0 {
		t.Errorf("%d deliveries had a bad signature or body", hooks.bad)
	}
}
