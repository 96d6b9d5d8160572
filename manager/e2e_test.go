package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// userScript is the "user's script" the script executor runs. It records
// every start (and whether the item's _SUCCESS.json already existed, which
// must never happen) and every completion, fails on the first attempt for
// items whose name starts with "flaky", and fails permanently (code 3,
// listed in SCRIPT_PERMANENT_EXIT_CODES) for items starting with "bad"
// until $LOG_DIR/fixed exists, and for items whose data holds
// "fail":true; items starting with "slow" run for a minute.
const userScript = `#!/bin/sh
set -eu
key="$ITEM_NAME"
seen=no
[ -e "$OUT_ROOT/$key/_SUCCESS.json" ] && seen=yes
echo "$ITEM_NAME $seen" >> "$LOG_DIR/starts.log"
case "$ITEM_NAME" in
flaky*)
  if mkdir "$LOG_DIR/first-$ITEM_NAME" 2>/dev/null; then exit 1; fi ;;
bad*) [ -e "$LOG_DIR/fixed" ] || exit 3 ;;
slow*) sleep 60 ;;
esac
if grep -q '"fail":true' "$WORK_ITEM_FILE"; then exit 3; fi
sleep "${WORK_SECONDS:-0}"
cp "$WORK_ITEM_FILE" "$OUTPUT_DIR/item.json"
echo processed > "$OUTPUT_DIR/result.txt"
echo "$ITEM_NAME" >> "$LOG_DIR/done.log"
`

type rig struct {
	t        *testing.T
	root     string // the directory the dir ambassador serves
	out      string // OUTPUT_URL's directory
	logs     string
	state    string
	script   string
	amb      *testutil.Process
	extraEnv []string
}

func newRig(t *testing.T, ambEnv ...string) *rig {
	t.Helper()
	base := t.TempDir()
	r := &rig{t: t, root: filepath.Join(base, "in"), out: filepath.Join(base, "out"), logs: filepath.Join(base, "logs"),
		state: filepath.Join(base, "state"), script: filepath.Join(base, "work.sh")}
	for _, d := range []string{r.root, r.out, r.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(r.script, []byte(userScript), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append([]string{"DIR_ROOT=" + r.root, "DIR_SETTLE=50ms", "DIR_POLL_INTERVAL=2s"}, ambEnv...)
	r.amb = testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR", env...)
	return r
}

func (r *rig) put(names ...string) {
	for _, n := range names {
		tmp := filepath.Join(r.root, "."+n+".part")
		if err := os.WriteFile(tmp, []byte(fmt.Sprintf(`{"name":%q}`, n)), 0o644); err != nil {
			r.t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(r.root, n)); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) manager(env ...string) *testutil.Process {
	r.t.Helper()
	script := testutil.Binary(r.t, "executors/script")
	cmd, _ := json.Marshal([]string{script, "--", r.script})
	base := []string{
		"MANAGER_SOURCE=" + r.amb.URL(),
		"MANAGER_INPUT_ALLOW=file://" + r.root + "/",
		"MANAGER_COMMAND=" + string(cmd),
		"MANAGER_STATE_DIR=" + r.state,
		"MANAGER_MAX_ACTIVE=4",
		"MANAGER_MIN_ACTIVE=4",
		"MANAGER_RETRY_BACKOFF=50ms",
		"MANAGER_RESYNC=2s",
		"MANAGER_GRACE=2s",
		"MANAGER_JOB_ENV_OUTPUT_URL=file://" + r.out,
		"MANAGER_JOB_ENV_SCRIPT_PERMANENT_EXIT_CODES=3",
		"MANAGER_JOB_ENV_LOG_DIR=" + r.logs,
		"MANAGER_JOB_ENV_OUT_ROOT=" + r.out,
	}
	return testutil.StartServer(r.t, testutil.Binary(r.t, "manager"), "MANAGER_ADDR", append(append(base, r.extraEnv...), env...)...)
}

// starts counts the user script's starts per item, and reports an item that
// ran after it had succeeded (its _SUCCESS.json existed).
func (r *rig) starts() map[string]int {
	r.t.Helper()
	starts := map[string]int{}
	for _, l := range testutil.ReadLines(r.t, filepath.Join(r.logs, "starts.log")) {
		name, seen, _ := strings.Cut(l, " ")
		starts[name]++
		if seen == "yes" {
			r.t.Errorf("%s ran after it had succeeded", name)
		}
	}
	return starts
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitArchived waits until every item is under .done/ (or .failed/ for the
// ones in failed) and gone from the root.
func (r *rig) waitArchived(items, failed []string, timeout time.Duration) {
	r.t.Helper()
	testutil.Eventually(r.t, timeout, "every item archived", func() error {
		for _, n := range items {
			dir := ".done"
			if slices.Contains(failed, n) {
				dir = ".failed"
			}
			if !exists(filepath.Join(r.root, dir, n)) || exists(filepath.Join(r.root, n)) {
				return fmt.Errorf("%s is not (only) in %s/", n, dir)
			}
		}
		return nil
	})
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d.json", prefix, i)
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	r := newRig(t)
	ok := names("item", 176)
	flaky := names("flaky", 20) // 10 % fail on their first attempt
	bad := names("bad", 4)      // exit 3, listed as permanent → never retried
	all := slices.Concat(ok, flaky, bad)
	r.put(all[:100]...)
	mgr := r.manager()
	r.put(all[100:]...)
	r.waitArchived(all, bad, 3*time.Minute)

	done := testutil.ReadLines(t, filepath.Join(r.logs, "done.log"))
	count := map[string]int{}
	for _, n := range done {
		count[n]++
	}
	for _, n := range slices.Concat(ok, flaky) {
		if count[n] != 1 {
			t.Errorf("%s completed %d times, want 1", n, count[n])
		}
		if !exists(filepath.Join(r.out, n, "_SUCCESS.json")) || !exists(filepath.Join(r.out, n, "result.txt")) {
			t.Errorf("%s: no outputs under %s", n, r.out)
		}
	}
	starts := r.starts()
	for _, n := range flaky {
		if starts[n] != 2 {
			t.Errorf("flaky %s started %d times, want 2", n, starts[n])
		}
	}
	for _, n := range bad {
		if starts[n] != 1 {
			t.Errorf("bad %s started %d times, want 1 (exit 3 is permanent)", n, starts[n])
		}
		if count[n] != 0 || exists(filepath.Join(r.out, n, "_SUCCESS.json")) {
			t.Errorf("bad %s has outputs", n)
		}
	}
	// The status API agrees.
	var st struct {
		State, Error string
		Attempts     int
	}
	getJSON(t, mgr.URL()+"/v1/jobs/"+itemapi.EscapeName(bad[0]), &st)
	if st.State != "dead" || st.Attempts != 1 {
		t.Errorf("status of %s: %+v", bad[0], st)
	}
	getJSON(t, mgr.URL()+"/v1/jobs/"+itemapi.EscapeName(flaky[0]), &st)
	if st.State != "succeeded" || st.Attempts != 2 {
		t.Errorf("status of %s: %+v", flaky[0], st)
	}
	if err := mgr.Stop(); err != nil {
		t.Errorf("manager did not stop cleanly on SIGTERM: %v", err)
	}
}

// TestKilledManager kills the manager with SIGKILL at random moments of a
// run, five times, restarting it each time: no item is lost, and no item
// runs again once it has succeeded.
func TestKilledManager(t *testing.T) {
	r := newRig(t)
	r.extraEnv = []string{"MANAGER_JOB_ENV_WORK_SECONDS=0.05"}
	all := slices.Concat(names("item", 140), names("flaky", 10))
	r.put(all...)
	for i := 0; i < 5; i++ {
		mgr := r.manager()
		time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
		mgr.Kill()
	}
	r.manager()
	r.waitArchived(all, nil, 3*time.Minute)
	r.starts()
	for _, n := range all {
		if !exists(filepath.Join(r.out, n, "_SUCCESS.json")) {
			t.Errorf("%s: no _SUCCESS.json", n)
		}
	}
	// No executor or user script outlived the killed managers.
	testutil.Eventually(t, 10*time.Second, "no leftover processes", func() error {
		if pids := testutil.ProcessesWith(r.script); len(pids) > 0 {
			return fmt.Errorf("processes still running %s: %v", r.script, pids)
		}
		return nil
	})
}

func TestSubmitAndPoll(t *testing.T) {
	r := newRig(t, "DIR_SUBMIT=true", "DIR_DATA=json")
	mgr := r.manager("MANAGER_TOKEN=tok")
	req, _ := http.NewRequest("POST", mgr.URL()+"/v1/jobs", strings.NewReader(`{"frames":[1,2,3],"title":"x"}`))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("submit: %s, Location %q", resp.Status, loc)
	}
	var st struct{ Item, State, OutputURL string }
	testutil.Eventually(t, time.Minute, "submitted job succeeded", func() error {
		getJSON(t, mgr.URL()+loc, &st)
		if st.State != "succeeded" {
			return fmt.Errorf("state %q", st.State)
		}
		return nil
	})
	if !strings.HasPrefix(st.OutputURL, "file://"+r.out+"/") {
		t.Fatalf("outputURL %q", st.OutputURL)
	}
	dir := strings.TrimPrefix(st.OutputURL, "file://")
	got, err := os.ReadFile(filepath.Join(dir, "item.json"))
	if err != nil {
		t.Fatalf("fetch the output: %v", err)
	}
	var it itemapi.Item
	if err := json.Unmarshal(got, &it); err != nil || it.Name != st.Item || !strings.Contains(string(it.Data), `"frames":[1,2,3]`) {
		t.Fatalf("output item.json = %s", got)
	}
}

// TestMinimalAmbassador runs the manager against a third-party ambassador
// that serves only GET /v1/items (no paging) and GET /v1/items/{name}: no
// watch, no ack. The manager polls, and its own record keeps finished items
// from running again.
func TestMinimalAmbassador(t *testing.T) {
	items := map[string]string{}
	for _, n := range names("m", 12) {
		items[n] = fmt.Sprintf(`{"kind":"Item","apiVersion":"v1","name":%q,"data":{"n":%q}}`, n, n)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.Method == "GET" && req.URL.Path == "/v1/items":
			var ns []string
			for n := range items {
				ns = append(ns, n)
			}
			slices.Sort(ns)
			b, _ := json.Marshal(map[string]any{"kind": "ItemList", "apiVersion": "v1", "items": ns})
			w.Write(b)
		case req.Method == "GET" && strings.HasPrefix(req.URL.Path, "/v1/items/"):
			if doc, ok := items[strings.TrimPrefix(req.URL.Path, "/v1/items/")]; ok {
				io.WriteString(w, doc)
				return
			}
			http.NotFound(w, req)
		default:
			http.Error(w, "no", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	r := newRig(t)
	mgr := r.manager("MANAGER_SOURCE="+srv.URL, "MANAGER_RESYNC=200ms")
	testutil.Eventually(t, time.Minute, "all succeeded", func() error {
		var l struct {
			Items []struct{ Item, State string }
		}
		getJSON(t, mgr.URL()+"/v1/jobs?limit=0", &l)
		n := 0
		for _, j := range l.Items {
			if j.State == "succeeded" {
				n++
			}
		}
		if n != len(items) {
			return fmt.Errorf("%d of %d succeeded", n, len(items))
		}
		return nil
	})
	time.Sleep(time.Second) // several polls later…
	starts := testutil.ReadLines(t, filepath.Join(r.logs, "starts.log"))
	if len(starts) != len(items) {
		t.Fatalf("%d runs for %d items: %v", len(starts), len(items), starts)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// What a hostile submitter tried (issue 13): jobs whose data names the
// executor's secrets or an internal URL. Each job is dead-lettered at once
// (exit 2, no retry), the user's script never runs, nothing of those
// inputs reaches the outputs, and the job's log says which setting refused
// it.
func TestHostileInputsRefused(t *testing.T) {
	r := newRig(t, "DIR_SUBMIT=true", "DIR_DATA=json")
	mgr := r.manager("MANAGER_TOKEN=tok")
	jobs, err := itemapi.NewJobsClient(mgr.URL(), itemapi.WithBearerToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var items []string
	for _, data := range []string{
		`{"url":"file:///etc/passwd"}`,
		`{"path":"/proc/self/environ"}`,
		`{"url":"file://` + r.root + `/../state/x"}`,
		`{"url":"` + mgr.URL() + `/v1/summary"}`,
	} {
		st, err := jobs.Submit(ctx, json.RawMessage(data))
		if err != nil {
			t.Fatalf("submit %s: %v", data, err)
		}
		items = append(items, st.Item)
	}
	for _, it := range items {
		testutil.Eventually(t, time.Minute, it+" dead", func() error {
			st, err := jobs.Get(ctx, it)
			if err != nil || st.State != itemapi.StateDead {
				return fmt.Errorf("%+v %v", st, err)
			}
			if st.Attempts != 1 {
				t.Errorf("%s: %d attempts, want 1 (a refused input is not retried)", it, st.Attempts)
			}
			return nil
		})
		rc, err := jobs.Logs(ctx, it, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		log, _ := io.ReadAll(rc)
		rc.Close()
		if !strings.Contains(string(log), "EXECUTOR_INPUT_ALLOW") {
			t.Errorf("%s: the log does not name the setting:\n%s", it, log)
		}
	}
	if starts := r.starts(); len(starts) != 0 {
		t.Errorf("the user's script ran: %v", starts)
	}
	filepath.WalkDir(r.out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "root:") || strings.Contains(string(b), "MANAGER_") {
				t.Errorf("%s holds what the item named", p)
			}
		}
		return nil
	})
}
