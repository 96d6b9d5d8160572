package main_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// chaosScript is the user's script of the chaos run: it holds an flock on
// its item for as long as it runs (a second attempt of the same item that
// finds it held records an overlap; the kernel releases it when the
// process dies, however it dies), traps SIGTERM (and dawdles before it
// exits), fails at random (about 10 % of runs), and records each start,
// each completion, and a start after the item's _SUCCESS.json was written
// (a completed item run again).
const chaosScript = `#!/bin/sh
exec 9>"$LOG_DIR/$ITEMQ_JOB_NAME.lock"
if ! flock -n 9; then echo "$ITEM_NAME" >> "$LOG_DIR/overlaps.log"; fi
trap 'sleep 0.2; exit 143' TERM
[ -e "$OUT_ROOT/$ITEM_NAME/_SUCCESS.json" ] && echo "$ITEM_NAME" >> "$LOG_DIR/after-done.log"
echo "$ITEM_NAME" >> "$LOG_DIR/chaos-starts.log"
sleep 0.0$(od -An -N1 -tu1 /dev/urandom | tr -d ' ' | cut -c1)
if [ "$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')" -lt 26 ]; then exit 1; fi
cp "$WORK_ITEM_FILE" "$OUTPUT_DIR/item.json"
echo "$ITEM_NAME" >> "$LOG_DIR/done.log"
`

// TestChaos (issue 13): items through itemq-dir → itemq-manager →
// itemq-script while the manager, the ambassador and executors are
// SIGKILLed at random, with a script that traps SIGTERM, random failures
// and a resync short enough to race the acknowledgements. At the end: no
// item lost (each archived once, in .done/ or .failed/), none completed
// twice (one _SUCCESS.json, written once), no two attempts of an item at
// once, every finished job in the status API, no process or attempt
// directory left. ITEMQ_CHAOS_ITEMS sets the size (make test: 200; make
// chaos: 2,000).
func TestChaos(t *testing.T) {
	n := 200
	if v := os.Getenv("ITEMQ_CHAOS_ITEMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("ITEMQ_CHAOS_ITEMS=%q", v)
		}
	}
	r := newRig(t, "DIR_POLL_INTERVAL=500ms")
	if err := os.WriteFile(r.script, []byte(chaosScript), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	r.extraEnv = []string{"MANAGER_RESYNC=300ms", "MANAGER_MAX_ATTEMPTS=3", "MANAGER_WORK_DIR=" + work,
		"MANAGER_GRACE=1s", "MANAGER_JOB_ENV_EXECUTOR_GRACE=500ms"}
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("c%05d.json", i)
	}
	r.put(items...)
	mgr := r.manager()
	ambAddr := r.amb.Addr
	var oldLogs []string // of the killed managers and ambassadors, for a failure's story
	start := time.Now()
	kills := map[string]int{}
	archived := func() int {
		k := 0
		for _, it := range items {
			if exists(filepath.Join(r.root, ".done", it)) || exists(filepath.Join(r.root, ".failed", it)) {
				k++
			}
		}
		return k
	}
	deadline := time.Now().Add(time.Duration(60+n/5) * time.Second)
	for archived() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d items archived after %v; kills %v", archived(), n, time.Since(start).Round(time.Second), kills)
		}
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		if archived() > n*9/10 {
			continue // let the run finish
		}
		switch rand.IntN(4) {
		case 0:
			oldLogs = append(oldLogs, mgr.Logs())
			mgr.Kill()
			kills["manager"]++
			mgr = r.manager()
		case 1:
			oldLogs = append(oldLogs, r.amb.Logs())
			r.amb.Kill()
			kills["ambassador"]++
			r.amb = testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR",
				"DIR_ROOT="+r.root, "DIR_SETTLE=50ms", "DIR_POLL_INTERVAL=500ms", "ITEMQ_ADDR="+ambAddr)
		default:
			if pids := processesWith(testutil.Binary(t, "executors/script")); len(pids) > 0 {
				pid, _ := strconv.Atoi(pids[rand.IntN(len(pids))])
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					kills["executor"]++
				}
			}
		}
	}
	t.Logf("%d items archived in %v with kills %v", n, time.Since(start).Round(time.Millisecond), kills)

	// No item lost, none archived twice.
	for _, it := range items {
		done, failed := exists(filepath.Join(r.root, ".done", it)), exists(filepath.Join(r.root, ".failed", it))
		if done == failed || exists(filepath.Join(r.root, it)) {
			t.Errorf("%s: in .done %v, in .failed %v, still listed %v", it, done, failed, exists(filepath.Join(r.root, it)))
		}
		for _, d := range []string{".done", ".failed"} {
			if exists(filepath.Join(r.root, d, it+".1")) {
				t.Errorf("%s archived twice in %s", it, d)
			}
		}
		if done && !exists(filepath.Join(r.out, it, "_SUCCESS.json")) {
			t.Errorf("%s done without its _SUCCESS.json", it)
		}
	}
	// None completed twice: the script never ran once its item's results
	// were uploaded.
	if again := readLines(t, filepath.Join(r.logs, "after-done.log")); len(again) > 0 {
		t.Errorf("run again after they had succeeded: %v", again)
	}
	if o := readLines(t, filepath.Join(r.logs, "overlaps.log")); len(o) > 0 {
		t.Errorf("two attempts of one item ran at once: %v", o)
	}
	// Every finished job is in the status API.
	jobs, err := itemapi.NewJobsClient(mgr.URL())
	if err != nil {
		t.Fatal(err)
	}
	check := func() (string, error) {
		for _, it := range items {
			st, err := jobs.Get(context.Background(), it)
			if err != nil {
				return it, err
			}
			if st.State != itemapi.StateSucceeded && st.State != itemapi.StateDead {
				return it, fmt.Errorf("%s is %s", it, st.State)
			}
		}
		return "", nil
	}
	missing, err := check()
	for end := time.Now().Add(30 * time.Second); err != nil && time.Now().Before(end); missing, err = check() {
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		// The item's story across every manager and ambassador of the run.
		for i, l := range append(oldLogs, r.amb.Logs(), mgr.Logs()) {
			for _, line := range strings.Split(l, "\n") {
				if strings.Contains(line, `"`+missing+`"`) {
					t.Logf("process %d: %s", i, line)
				}
			}
		}
		t.Fatalf("a finished job is not in the status API: %s: %v", missing, err)
	}
	// Nothing left behind once the manager stops.
	if err := mgr.Stop(); err != nil {
		t.Errorf("manager stop: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "no leftover processes or attempt directories", func() error {
		if pids := processesWith(r.script); len(pids) > 0 {
			return fmt.Errorf("processes still running %s: %v", r.script, pids)
		}
		ents, _ := os.ReadDir(work)
		if len(ents) > 0 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			slices.Sort(names)
			return fmt.Errorf("attempt directories left in MANAGER_WORK_DIR: %v", names)
		}
		return nil
	})
}
