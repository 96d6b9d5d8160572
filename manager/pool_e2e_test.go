package main_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// The pool execution model end to end, with the real binaries: itemq-manager
// (MANAGER_EXECUTION=pool) keeps itemq-script processes as its workers
// (ITEMQ_POOL_URL makes the executor a worker, which runs itself for each
// item); every item runs once, retries and permanent failures as with a
// process per item; the status API and the job log tell where each ran.
func TestEndToEndPool(t *testing.T) {
	r := newRig(t)
	ok := names("item", 50)
	flaky := names("flaky", 5)
	bad := names("bad", 2)
	all := slices.Concat(ok, flaky, bad)
	r.put(all...)
	mgr := r.manager("MANAGER_EXECUTION=pool", "MANAGER_POOL_TOKEN=e2e-pool-token-0123456789", "MANAGER_POOL_LEASE_TTL=2s",
		"MANAGER_MIN_ACTIVE=1", "MANAGER_MAX_ACTIVE=3", "MANAGER_TARGET_WAIT=1s")
	r.waitArchived(all, bad, 3*time.Minute)

	// MANAGER_TARGET_WAIT reaches the scaler: c by Erlang C, the pool's
	// scale-down delay with a target wait.
	var sc itemapi.Scaling
	getJSON(t, mgr.URL()+"/v1/scaling", &sc)
	if sc.TargetWaitSeconds != 1 || sc.ScaleDownDelaySeconds != 4 || !strings.HasPrefix(sc.Reason, "Erlang C") {
		t.Errorf("GET /v1/scaling with MANAGER_TARGET_WAIT=1s: target wait %v s, scale-down delay %v s, reason %q", sc.TargetWaitSeconds, sc.ScaleDownDelaySeconds, sc.Reason)
	}

	count := map[string]int{}
	for _, n := range testutil.ReadLines(t, filepath.Join(r.logs, "done.log")) {
		count[n]++
	}
	for _, n := range slices.Concat(ok, flaky) {
		if count[n] != 1 || !exists(filepath.Join(r.out, n, "_SUCCESS.json")) {
			t.Errorf("%s completed %d times (outputs: %v), want once", n, count[n], exists(filepath.Join(r.out, n, "_SUCCESS.json")))
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
	}
	var st itemapi.JobStatus
	getJSON(t, mgr.URL()+"/v1/jobs/"+itemapi.EscapeName(flaky[0]), &st)
	if st.State != "succeeded" || st.Attempts != 2 {
		t.Errorf("status of %s: %+v", flaky[0], st)
	}
	workers := map[string]bool{}
	for _, n := range all {
		var h itemapi.JobStatus
		getJSON(t, mgr.URL()+"/v1/jobs/"+itemapi.EscapeName(n), &h)
		if len(h.History) == 0 {
			t.Errorf("%s: no history", n)
		}
		for _, a := range h.History {
			if !strings.HasPrefix(a.Where, "worker worker-") {
				t.Errorf("%s attempt %d ran at %q, want on a worker of the pool", n, a.Number, a.Where)
			}
			workers[a.Where] = true
		}
	}
	// Workers come and go with c (a worker fewer per second while fewer are
	// needed): their number over the run is not bounded by MANAGER_MAX_ACTIVE,
	// only how many run at once, which TestIntegrationPool checks.
	if len(workers) < 1 {
		t.Errorf("no worker ran the items")
	}
	// The job's log has the executor's own output, sent by its worker.
	resp := getText(t, mgr.URL()+"/v1/logs/"+itemapi.EscapeName(ok[0]))
	if !strings.Contains(resp, "taken by worker") || !strings.Contains(resp, `"phase":"done"`) {
		t.Errorf("the job's log lacks the worker's note or the executor's output:\n%s", resp)
	}
	if err := mgr.Stop(); err != nil {
		t.Errorf("manager did not stop cleanly on SIGTERM: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "no worker outlived the manager", func() error {
		if pids := testutil.ProcessesWith(r.script); len(pids) > 0 {
			return fmt.Errorf("processes still running %s: %v", r.script, pids)
		}
		return nil
	})
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}
