package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// pipeline is kfake + the Kafka ambassador + the manager running the
// script executor on each message: the executor copies the item document
// into its output, which lands under out/<item key>/ next to _SUCCESS.json
// (uploads), or, without an OUTPUT_URL, the script copies it to
// marks/<job name>.json (no bucket helper started per run: a fifth of the
// CPU per message, for the 10k run).
type pipeline struct {
	k          *kafka
	topic      string
	group      string
	partitions int32
	ambAddr    string // fixed, so that a restarted ambassador is found again
	ambEnv     []string
	mgrEnv     []string
	out        string
	marks      string // "" when the outputs are uploaded
	amb, mgr   *testutil.Process
}

func newPipeline(t *testing.T, topic string, partitions int32, uploads bool) *pipeline {
	t.Helper()
	k := newKafka(t)
	k.createTopic(t, topic, partitions)
	p := &pipeline{k: k, topic: topic, group: "mgr-" + topic, partitions: partitions, ambAddr: testutil.FreeAddr(t), out: t.TempDir()}
	// Windows of 100 per partition: fewer than the messages of each
	// partition, so that back-pressure is part of every run, and an item
	// the manager never acknowledges stalls its partition (the test then
	// fails instead of passing with a message left behind).
	p.ambEnv = k.ambassadorEnv(topic, p.group, "ITEMQ_ADDR="+p.ambAddr, "KAFKA_MAX_PENDING=100",
		"KAFKA_COMMIT_INTERVAL=200ms", "KAFKA_SESSION_TIMEOUT=2s")
	script := testutil.Binary(t, "executors/script")
	argv, _ := json.Marshal([]string{script, "--", "/bin/sh", "-c", `cp "$WORK_ITEM_FILE" "$OUTPUT_DIR/item.json"`})
	output := "MANAGER_JOB_ENV_OUTPUT_URL=file://" + p.out
	if !uploads {
		// The shell sees the job's name (a hash), not item data.
		p.marks = t.TempDir()
		argv, _ = json.Marshal([]string{script, "--", "/bin/sh", "-c", `cp "$WORK_ITEM_FILE" "$MARKS/$ITEMQ_JOB_NAME.json"`})
		output = "MANAGER_JOB_ENV_MARKS=" + p.marks
	}
	state := t.TempDir()
	p.mgrEnv = []string{
		"MANAGER_QUEUE=kafka-e2e",
		"MANAGER_SOURCE=http://" + p.ambAddr,
		"MANAGER_COMMAND=" + string(argv),
		"MANAGER_STATE_DIR=" + filepath.Join(state, "state"),
		"MANAGER_WORK_DIR=" + filepath.Join(state, "work"),
		"MANAGER_STATE_FSYNC=false", // SIGKILL of a process, not of the machine
		"MANAGER_MIN_ACTIVE=8",
		"MANAGER_MAX_ACTIVE=8",
		"MANAGER_RETRY_BACKOFF=100ms",
		"MANAGER_RESYNC=2s",
		output,
		"MANAGER_JOB_ENV_EXECUTOR_LOG_LEVEL=warn",
		"ITEMQ_LOG_LEVEL=info", // StartServer waits for the "listening" line
	}
	return p
}

func (p *pipeline) startAmbassador(t *testing.T) {
	p.amb = startAmbassador(t, p.ambEnv...)
}

func (p *pipeline) startManager(t *testing.T) {
	p.mgr = testutil.StartServer(t, testutil.Binary(t, "manager"), "MANAGER_ADDR", p.mgrEnv...)
}

// done reports whether an item's output is complete.
func (p *pipeline) done(name string) bool {
	done := filepath.Join(p.out, filepath.FromSlash(itemapi.ItemKey(name)), "_SUCCESS.json")
	if p.marks != "" {
		done = p.itemCopy(name)
	}
	_, err := os.Stat(done)
	return err == nil
}

// itemCopy is where the executor's copy of an item's document lands.
func (p *pipeline) itemCopy(name string) string {
	if p.marks != "" {
		return filepath.Join(p.marks, runner.JobName("kafka-e2e", name)+".json")
	}
	return filepath.Join(p.out, filepath.FromSlash(itemapi.ItemKey(name)), "item.json")
}

// outputs returns how many messages have a complete output.
func (p *pipeline) outputs(n int) int {
	count := 0
	for i := range n {
		if p.done(fmt.Sprintf("%s/%d/%d", p.topic, int32(i)%p.partitions, i/int(p.partitions))) {
			count++
		}
	}
	return count
}

// checkNoSkip checks, right after a crash, that every message below a
// committed offset has its output: the manager acknowledges only finished
// items, and the ambassador never commits past an unacknowledged message.
func (p *pipeline) checkNoSkip(t *testing.T) {
	t.Helper()
	total := int64(0)
	for part, c := range p.k.committed(t, p.group, p.topic) {
		for o := int64(0); o < c; o++ {
			if name := fmt.Sprintf("%s/%d/%d", p.topic, part, o); !p.done(name) {
				t.Fatalf("partition %d is committed to %d, but %s has no output", part, c, name)
			}
		}
		total += c
	}
	t.Logf("at the crash: %d messages committed", total)
}

// waitAll waits until every message is acknowledged and committed, then
// checks each has its output, holding the message's own id.
func (p *pipeline) waitAll(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	ends := p.k.endOffsets(t, p.topic)
	testutil.Eventually(t, timeout, "every message processed and committed", func() error {
		got := p.k.committed(t, p.group, p.topic)
		for part, end := range ends {
			if got[part] != end {
				return fmt.Errorf("committed %v of %v; %d of %d outputs", got, ends, p.outputs(len(ids)), len(ids))
			}
		}
		return nil
	})
	for i, id := range ids {
		name := fmt.Sprintf("%s/%d/%d", p.topic, int32(i)%p.partitions, i/int(p.partitions))
		b, err := os.ReadFile(p.itemCopy(name))
		if err != nil {
			t.Fatalf("%s (%s): %v", name, id, err)
		}
		var it struct {
			Name string `json:"name"`
			Data struct {
				ID    string         `json:"id"`
				Kafka map[string]any `json:"_kafka"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &it); err != nil || it.Name != name || it.Data.ID != id || it.Data.Kafka["offset"] != float64(i/int(p.partitions)) {
			t.Fatalf("output of %s: %s (%v)", name, b, err)
		}
	}
}

// messages is how many messages a pipeline test produces: n, or 300 with
// -short. Each costs an executor process (itemq-script starts in about
// 65 ms of CPU), so the default sizes keep `make test` in minutes.
func messages(n int) int {
	if testing.Short() {
		return 300
	}
	return n
}

// timeoutFor bounds a pipeline run of n messages generously (a loaded
// 2-core machine runs about 10 executors a second).
func timeoutFor(n int) time.Duration { return 2*time.Minute + time.Duration(n)*150*time.Millisecond }

// TestThroughManager runs 10,000 messages over 6 partitions through the
// manager and itemq-script (ITEMQ_KAFKA_E2E_MESSAGES sets another count).
func TestThroughManager(t *testing.T) {
	n := messages(10000)
	if v := os.Getenv("ITEMQ_KAFKA_E2E_MESSAGES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 6 {
			t.Fatalf("ITEMQ_KAFKA_E2E_MESSAGES=%q: want a number ≥ 6", v)
		}
	}
	p := newPipeline(t, "e2e", 6, false)
	ids := p.k.produceIDs(t, p.topic, p.partitions, n)
	start := time.Now()
	p.startAmbassador(t)
	p.startManager(t)
	p.waitAll(t, ids, timeoutFor(n))
	t.Logf("%d messages through the manager and the script executor in %v", len(ids), time.Since(start).Round(time.Millisecond))
}

// waitOutputs waits until at least n messages have their output.
func (p *pipeline) waitOutputs(t *testing.T, total, n int) {
	t.Helper()
	testutil.Eventually(t, timeoutFor(total), strconv.Itoa(n)+" outputs", func() error {
		if got := p.outputs(total); got < n {
			return fmt.Errorf("%d outputs", got)
		}
		return nil
	})
}

func TestKillManagerMidRun(t *testing.T) {
	p := newPipeline(t, "killmgr", 6, true)
	ids := p.k.produceIDs(t, p.topic, p.partitions, messages(1200))
	p.startAmbassador(t)
	p.startManager(t)
	p.waitOutputs(t, len(ids), len(ids)/3)
	p.mgr.Kill() // jobs running, acks outstanding
	p.checkNoSkip(t)
	p.startManager(t)
	p.waitAll(t, ids, timeoutFor(len(ids)))
}

func TestKillAmbassadorUnderManager(t *testing.T) {
	p := newPipeline(t, "killamb", 6, true)
	ids := p.k.produceIDs(t, p.topic, p.partitions, messages(1200))
	p.startAmbassador(t)
	p.startManager(t)
	p.waitOutputs(t, len(ids), len(ids)/3)
	p.amb.Kill() // items listed and running, acks not yet committed
	p.checkNoSkip(t)
	p.startAmbassador(t) // same address: the manager's watch reconnects
	p.waitAll(t, ids, timeoutFor(len(ids)))
}
