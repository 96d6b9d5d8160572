package kafkasource

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/itemapi"
)

// TestCloseWithBrokersGone: Close returns within its budget when the
// brokers went away, with an acknowledgement not yet committed.
func TestCloseWithBrokersGone(t *testing.T) {
	old := closeTimeout
	closeTimeout = time.Second
	defer func() { closeTimeout = old }()
	c := newCluster(t).clients(t)
	topic := c.topic(t, "close", 1)
	c.produce(t, &kgo.Record{Topic: topic, Value: []byte(`{"a":1}`)}, &kgo.Record{Topic: topic, Value: []byte(`{"a":2}`)})
	cfg := c.config(topic)
	cfg.CommitInterval = time.Hour // the ack below stays uncommitted
	d := open(t, cfg)
	eventually(t, "listed", func() error {
		if n := len(listed(t, d)); n != 2 {
			return fmt.Errorf("listed %d", n)
		}
		return nil
	})
	if err := d.Ack(context.Background(), listed(t, d)[0], itemapi.Succeeded); err != nil {
		t.Fatal(err)
	}
	c.prod.Close()
	c.kc.Close()
	start := time.Now()
	done := make(chan struct{})
	go func() { _ = d.Close(); close(done) }()
	select {
	case <-done:
		t.Logf("Close took %v with the brokers gone", time.Since(start).Round(time.Millisecond))
	case <-time.After(closeTimeout + 5*time.Second):
		t.Fatalf("Close still blocked after %v with the brokers gone", time.Since(start))
	}
}
