package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// TestRestartTakesPartitionsBackAtOnce: an ambassador killed with messages
// listed and not acknowledged, restarted with the same KAFKA_INSTANCE_ID,
// lists them again at once, not after KAFKA_SESSION_TIMEOUT (30 s here;
// 44 s were measured with the 45 s default and dynamic membership). Its
// /metrics show the partitions' lag and window fill.
func TestRestartTakesPartitionsBackAtOnce(t *testing.T) {
	k := newKafka(t)
	const topic, group, partitions, n = "static", "static", 3, 30
	const session = 30 * time.Second
	k.createTopic(t, topic, partitions)
	k.produceIDs(t, topic, partitions, n)
	env := k.ambassadorEnv(topic, group, "KAFKA_SESSION_TIMEOUT="+session.String(), "KAFKA_INSTANCE_ID=itemq-kafka-0", "KAFKA_MAX_PENDING=20")
	listedAll := func(url string) func() error {
		return func() error {
			c, err := itemapi.NewClient(url, itemapi.WithRetries(0))
			if err != nil {
				return err
			}
			names, err := c.List(context.Background())
			if err != nil {
				return err
			}
			if len(names) != n {
				return fmt.Errorf("%d listed, want %d", len(names), n)
			}
			return nil
		}
	}
	a := startAmbassador(t, env...)
	testutil.Eventually(t, time.Minute, "A lists every message", listedAll(a.URL()))

	resp, err := http.Get(a.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`itemq_kafka_partition_lag{partition="0",topic="static"} 10`, `itemq_kafka_window_messages{partition="0",topic="static"} 10`,
		`itemq_kafka_window_fill_ratio{partition="0",topic="static"} 0.5`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lack %q", want)
		}
	}

	a.Kill() // no LeaveGroup: the group still holds its partitions
	start := time.Now()
	b := startAmbassador(t, env...)
	testutil.Eventually(t, session, "B lists every message again", listedAll(b.URL()))
	if took := time.Since(start); took > session/3 {
		t.Fatalf("the restarted ambassador listed the messages after %v: it waited for the session timeout (%v)", took, session)
	} else {
		t.Logf("restarted ambassador listed every unacknowledged message %v after its start", took.Round(time.Millisecond))
	}
}
