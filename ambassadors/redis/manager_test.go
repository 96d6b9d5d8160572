package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
	"github.com/itemq/itemq/itemapi"
)

// TestThroughManager runs entries of a stream through itemq-redis →
// itemq-manager (local runner) → itemq-script, killing (SIGKILL) the manager
// and the ambassador mid-run, and checks that every entry has its output,
// holding its own data, and that the group ends with nothing pending.
//
// make test runs 1,000 entries with one kill of each; the full run
// (10,000 entries, each process killed twice) is `make redis-e2e`, or
// ITEMQ_REDIS_E2E_ENTRIES=10000 ITEMQ_REDIS_E2E_KILLS=2.
func TestThroughManager(t *testing.T) {
	n, kills := 1000, 1
	if testing.Short() {
		n = 300
	}
	for env, p := range map[string]*int{"ITEMQ_REDIS_E2E_ENTRIES": &n, "ITEMQ_REDIS_E2E_KILLS": &kills} {
		if v := os.Getenv(env); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 0 {
				t.Fatalf("%s=%q: want a number", env, v)
			}
			*p = x
		}
	}
	srv := redisserver.Start(t, redisserver.Options{})
	c := srv.Client(t)
	names := addIDs(t, c, "e2e", n)

	out, marks, state := t.TempDir(), t.TempDir(), t.TempDir()
	ambAddr := testutil.FreeAddr(t)
	ambEnv := ambassadorEnv(srv, "e2e", "ITEMQ_ADDR="+ambAddr, "REDIS_MAX_PENDING=100")
	script := testutil.Binary(t, "executors/script")
	// Each run of the script leaves a mark (the shell sees the job's name,
	// a hash, never item data).
	argv, _ := json.Marshal([]string{script, "--", "/bin/sh", "-c",
		`cp "$WORK_ITEM_FILE" "$OUTPUT_DIR/item.json" && mktemp "$MARKS/$ITEMQ_JOB_NAME.XXXXXX" >/dev/null`})
	mgrEnv := []string{
		"MANAGER_QUEUE=redis-e2e",
		"MANAGER_SOURCE=http://" + ambAddr,
		"MANAGER_COMMAND=" + string(argv),
		"MANAGER_STATE_DIR=" + filepath.Join(state, "state"),
		"MANAGER_WORK_DIR=" + filepath.Join(state, "work"),
		"MANAGER_STATE_FSYNC=false",
		"MANAGER_MIN_ACTIVE=8",
		"MANAGER_MAX_ACTIVE=8",
		"MANAGER_RETRY_BACKOFF=100ms",
		"MANAGER_RESYNC=2s",
		"MANAGER_JOB_ENV_OUTPUT_URL=file://" + out,
		"MANAGER_JOB_ENV_MARKS=" + marks,
		"MANAGER_JOB_ENV_EXECUTOR_LOG_LEVEL=warn",
		"ITEMQ_LOG_LEVEL=info",
	}
	done := func(name string) bool {
		_, err := os.Stat(filepath.Join(out, filepath.FromSlash(itemapi.ItemKey(name)), "_SUCCESS.json"))
		return err == nil
	}
	outputs := func() int {
		k := 0
		for _, name := range names {
			if done(name) {
				k++
			}
		}
		return k
	}
	timeout := 2*time.Minute + time.Duration(n)*150*time.Millisecond
	waitOutputs := func(k int) {
		testutil.Eventually(t, timeout, strconv.Itoa(k)+" outputs", func() error {
			if got := outputs(); got < k {
				return fmt.Errorf("%d outputs", got)
			}
			return nil
		})
	}
	start := time.Now()
	amb := startAmbassador(t, ambEnv...)
	mgr := testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR", mgrEnv...)
	steps := 2*kills + 1
	for k := range kills {
		waitOutputs(n * (2*k + 1) / steps)
		mgr.Kill()
		mgr = testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR", mgrEnv...)
		waitOutputs(n * (2*k + 2) / steps)
		amb.Kill()
		amb = startAmbassador(t, ambEnv...)
	}
	waitOutputs(n)
	testutil.Eventually(t, time.Minute, "nothing pending", func() error {
		gs, err := c.XInfoGroups(context.Background(), "e2e").Result()
		if err != nil || len(gs) != 1 {
			return fmt.Errorf("groups %v: %v", gs, err)
		}
		if gs[0].Pending != 0 || gs[0].Lag != 0 {
			return fmt.Errorf("pending %d, lag %d", gs[0].Pending, gs[0].Lag)
		}
		return nil
	})
	elapsed := time.Since(start)
	for i, name := range names {
		b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(itemapi.ItemKey(name)), "item.json"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var it struct {
			Name string `json:"name"`
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &it); err != nil || it.Name != name || it.Data.ID != fmt.Sprintf("m%d", i) {
			t.Fatalf("output of %s: %s (%v)", name, b, err)
		}
	}
	if dead, _ := c.XLen(context.Background(), "e2e:dead").Result(); dead != 0 {
		t.Errorf("%d entries dead-lettered", dead)
	}
	// Runs of the script per job: more than one only for a job a kill
	// interrupted (its output not complete, so it ran again).
	runs := map[string]int{}
	ents, _ := os.ReadDir(marks)
	for _, e := range ents {
		job, _, _ := strings.Cut(e.Name(), ".")
		runs[job]++
	}
	again := 0
	for _, r := range runs {
		if r > 1 {
			again++
		}
	}
	if len(runs) != n {
		t.Errorf("%d jobs ran, want %d", len(runs), n)
	}
	if limit := 2 * kills * 8; again > limit {
		t.Errorf("%d items ran more than once; at most the %d in flight at the kills may", again, limit)
	}
	if os.Getenv("ITEMQ_TEST_LOG") != "" {
		t.Log(amb.Logs(), mgr.Logs())
	}
	t.Logf("%d entries through itemq-redis, the manager and itemq-script, each killed %d times, in %v; 0 lost; %d runs interrupted by a kill and run again",
		n, kills, elapsed.Round(time.Millisecond), again)
}
