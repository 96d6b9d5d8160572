package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

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
	n := testutil.ChaosItems(t, 200)
	r := newRig(t, "DIR_POLL_INTERVAL=500ms")
	if err := os.WriteFile(r.script, []byte(testutil.ChaosScript), 0o755); err != nil {
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
	archived := func() int {
		k := 0
		for _, it := range items {
			if exists(filepath.Join(r.root, ".done", it)) || exists(filepath.Join(r.root, ".failed", it)) {
				k++
			}
		}
		return k
	}
	testutil.ChaosRun{Total: n, Finished: archived, Every: 900 * time.Millisecond, Timeout: time.Duration(60+n/5) * time.Second,
		Kills: []testutil.ChaosKill{
			{Name: "manager", Do: func() bool {
				oldLogs = append(oldLogs, mgr.Logs())
				mgr.Kill()
				mgr = r.manager()
				return true
			}},
			{Name: "ambassador", Do: func() bool {
				oldLogs = append(oldLogs, r.amb.Logs())
				r.amb.Kill()
				r.amb = testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR",
					"DIR_ROOT="+r.root, "DIR_SETTLE=50ms", "DIR_POLL_INTERVAL=500ms", "ITEMQ_ADDR="+ambAddr)
				return true
			}},
			{Name: "executor", Do: func() bool { return testutil.KillOneOf(testutil.Binary(t, "executors/script")) }},
			{Name: "executor", Do: func() bool { return testutil.KillOneOf(testutil.Binary(t, "executors/script")) }},
		}}.Run(t)

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
	if again := testutil.ReadLines(t, filepath.Join(r.logs, "after-done.log")); len(again) > 0 {
		t.Errorf("run again after they had succeeded: %v", again)
	}
	if o := testutil.ReadLines(t, filepath.Join(r.logs, "overlaps.log")); len(o) > 0 {
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
		if pids := testutil.ProcessesWith(r.script); len(pids) > 0 {
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
