package deploy_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
)

// notYetExported are the metrics the alert rules (and one dashboard panel)
// need that the manager does not export yet (none now; the test fails on a
// listed name that has appeared, so the list cannot go stale).
var notYetExported = map[string]string{}

// promcheck runs hack/promcheck (Prometheus's rulefmt and PromQL parser):
// the rules pass what `promtool check rules` checks, every dashboard query
// parses, and it returns the metric names they use.
func promcheck(t *testing.T, mode, file string) []string {
	t.Helper()
	bin := testutil.Need(t, "ITEMQ_PROMCHECK")
	out, err := exec.Command(bin, mode, file).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("promcheck %s %s: %v\n%s", mode, file, err, stderr)
	}
	var res struct {
		Rules       int      `json:"rules"`
		Expressions int      `json:"expressions"`
		Metrics     []string `json:"metrics"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.Expressions == 0 || len(res.Metrics) == 0 {
		t.Fatalf("promcheck %s %s found nothing: %s", mode, file, out)
	}
	t.Logf("%s: %d rules, %d expressions, metrics %v", filepath.Base(file), res.Rules, res.Expressions, res.Metrics)
	return res.Metrics
}

// exposed reads the metric names of a Prometheus text exposition: every
// sample's name (histograms give _bucket, _sum and _count) and every family.
func exposed(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(rest)[0]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// Every metric an alert or a dashboard panel uses exists on a running
// itemq-manager's /metrics (with an itemq-dir ambassador as its source, as
// the chart runs them) or on the ambassador's, except the named ones above.
func TestIntegrationDashboardAndRulesUseExportedMetrics(t *testing.T) {
	root := testutil.ModuleRoot(t)
	used := map[string][]string{}
	for _, m := range promcheck(t, "rules", filepath.Join(root, "deploy", "prometheus", "rules.yaml")) {
		used[m] = append(used[m], "rules.yaml")
	}
	for _, m := range promcheck(t, "dashboard", filepath.Join(root, "deploy", "grafana", "itemq.json")) {
		used[m] = append(used[m], "itemq.json")
	}

	// The real binaries: a directory ambassador and a manager (local runner)
	// that processes one item, so that every histogram has observations.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	amb := testutil.StartServer(t, testutil.Binary(t, "ambassadors/dir"), "ITEMQ_ADDR", "DIR_ROOT="+dir, "DIR_SETTLE=0s")
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	mgr := testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR",
		"MANAGER_SOURCE="+amb.URL(), "MANAGER_COMMAND="+truePath, "MANAGER_STATE_DIR="+t.TempDir(), "MANAGER_RESYNC=1s")
	testutil.Eventually(t, time.Minute, "the item processed", func() error {
		_, err := os.Stat(filepath.Join(dir, ".done", "a.txt"))
		return err
	})
	// One more resync, so that its histogram has a sample.
	time.Sleep(1500 * time.Millisecond)
	have := exposed(t, mgr.URL())
	for n := range exposed(t, amb.URL()) {
		have[n] = true
	}

	var missing []string
	for m, where := range used {
		_, pending := notYetExported[m]
		switch {
		case have[m] && pending:
			t.Errorf("%s is exported now: remove it from notYetExported", m)
		case !have[m] && !pending:
			missing = append(missing, m+" (used by "+strings.Join(where, ", ")+")")
		case !have[m] && pending:
			t.Logf("NOT YET EXPORTED, tolerated: %s — %s", m, notYetExported[m])
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no such metric on a running manager or ambassador: %s", m)
	}
	for m := range notYetExported {
		if _, ok := used[m]; !ok {
			t.Errorf("notYetExported lists %s, which nothing uses", m)
		}
	}
}
