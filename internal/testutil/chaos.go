package testutil

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ChaosScript is the user's script of the chaos runs (issue 13; the dir run
// in manager/, the Kafka run in ambassadors/kafka): it holds an flock on
// its job for as long as it runs (a second attempt of the same item that
// finds it held records an overlap; the kernel releases it when the
// process dies, however it dies), traps SIGTERM (and dawdles before it
// exits), fails at random (about 10 % of runs) and always when the item's
// document holds "fail":true, and records each start,
// each completion, and a start after the item's _SUCCESS.json was written
// (a completed item run again). It needs LOG_DIR and OUT_ROOT (the
// directory of a file:// OUTPUT_URL) in its environment, and item names
// whose item key is the name itself.
const ChaosScript = `#!/bin/sh
exec 9>"$LOG_DIR/$ITEMQ_JOB_NAME.lock"
if ! flock -n 9; then echo "$ITEM_NAME" >> "$LOG_DIR/overlaps.log"; fi
trap 'sleep 0.2; exit 143' TERM
[ -e "$OUT_ROOT/$ITEM_NAME/_SUCCESS.json" ] && echo "$ITEM_NAME" >> "$LOG_DIR/after-done.log"
echo "$ITEM_NAME" >> "$LOG_DIR/chaos-starts.log"
sleep 0.0$(od -An -N1 -tu1 /dev/urandom | tr -d ' ' | cut -c1)
if [ "$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')" -lt 26 ]; then exit 1; fi
if grep -q '"fail":true' "$WORK_ITEM_FILE"; then exit 1; fi
cp "$WORK_ITEM_FILE" "$OUTPUT_DIR/item.json"
echo "$ITEM_NAME" >> "$LOG_DIR/done.log"
`

// ChaosItems is the size of a chaos run: def, or ITEMQ_CHAOS_ITEMS (make
// chaos).
func ChaosItems(t testing.TB, def int) int {
	t.Helper()
	v := os.Getenv("ITEMQ_CHAOS_ITEMS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("ITEMQ_CHAOS_ITEMS=%q: want a positive number", v)
	}
	return n
}

// ChaosKill is one kind of kill of a chaos run: Do kills (and restarts
// what must come back) and reports whether it killed anything.
type ChaosKill struct {
	Name string
	Do   func() bool
}

// ChaosRun is a chaos run's kill loop.
type ChaosRun struct {
	Total    int           // items
	Finished func() int    // how many are finished for good
	Every    time.Duration // the mean interval between kills
	Timeout  time.Duration // for the whole run
	Kills    []ChaosKill   // one is picked at random for each kill
	// Stuck, when set, tells what is not finished when the run times out.
	Stuck func() string
}

// Run kills at random, at intervals drawn evenly from [Every/3,
// 5·Every/3], one of Kills, until Finished() reaches Total; it stops
// killing once 90 % are finished, to let the run end. The test fails when
// the run has not finished within Timeout. It returns how often each kind
// killed.
func (c ChaosRun) Run(t testing.TB) map[string]int {
	t.Helper()
	count := map[string]int{}
	start := time.Now()
	deadline := start.Add(c.Timeout)
	for c.Finished() < c.Total {
		if time.Now().After(deadline) {
			stuck := ""
			if c.Stuck != nil {
				stuck = "; " + c.Stuck()
			}
			t.Fatalf("%d of %d items finished after %v; kills %v%s", c.Finished(), c.Total, time.Since(start).Round(time.Second), count, stuck)
		}
		time.Sleep(c.Every/3 + rand.N(4*c.Every/3))
		if c.Finished() > c.Total*9/10 {
			continue
		}
		k := c.Kills[rand.IntN(len(c.Kills))]
		if k.Do() {
			count[k.Name]++
		}
	}
	t.Logf("%d items finished in %v with kills %v", c.Total, time.Since(start).Round(time.Millisecond), count)
	return count
}

// KillOneOf SIGKILLs one process, at random, whose command line contains
// s; false when there is none.
func KillOneOf(s string) bool {
	pids := ProcessesWith(s)
	if len(pids) == 0 {
		return false
	}
	pid, _ := strconv.Atoi(pids[rand.IntN(len(pids))])
	return syscall.Kill(pid, syscall.SIGKILL) == nil
}

// ProcessesWith lists the pids whose command line contains s.
func ProcessesWith(s string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, d.Name())
		}
	}
	return out
}
