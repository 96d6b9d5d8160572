package kafkasource

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/itemapi"
)

// TestRedrive: the message comes back to its topic with its key, value and
// own headers (not the dead letter's), marked with where it came from; a
// marker in the dead-letter topic makes a second redrive a NotFound.
func TestRedrive(t *testing.T) {
	c := newCluster(t).clients(t)
	topic := c.topic(t, "rd", 2)
	cfg := c.config(topic)
	cfg.DeadLetterTopic = c.topic(t, "rd-dead", 2)
	hs := []kgo.RecordHeader{{Key: "trace-id", Value: []byte("t-1")}, {Key: "trace-id", Value: []byte("t-2")}}
	names := c.produce(t, &kgo.Record{Topic: topic, Partition: 1, Key: []byte("k1"), Value: []byte(`{"job":1}`), Headers: hs})
	d := open(t, cfg)
	ctx := context.Background()
	eventually(t, "listed", func() error {
		if got := listed(t, d); len(got) != 1 {
			return fmt.Errorf("listed %v", got)
		}
		return nil
	})
	if err := d.Ack(ctx, names[0], itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	newName, err := d.Redrive(ctx, names[0])
	if err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	if newName == names[0] {
		t.Fatalf("redriven under its old name %s", newName)
	}
	eventually(t, "redriven message listed", func() error {
		if got := listed(t, d); !slices.Equal(got, []string{newName}) {
			return fmt.Errorf("listed %v, want [%s]", got, newName)
		}
		return nil
	})
	recs := consumeAll(t, c, topic)
	var again *kgo.Record
	for _, r := range recs {
		if itemName(r.Topic, r.Partition, r.Offset) == newName {
			again = r
		}
	}
	if again == nil || string(again.Key) != "k1" || string(again.Value) != `{"job":1}` {
		t.Fatalf("redriven record %+v", again)
	}
	wantHs := append(slices.Clone(hs), kgo.RecordHeader{Key: HeaderRedrivenFrom, Value: []byte(names[0])})
	if !slices.EqualFunc(again.Headers, wantHs, func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) {
		t.Fatalf("redriven headers %v, want %v", again.Headers, wantHs)
	}
	dead := consumeAll(t, c, cfg.DeadLetterTopic)
	if !slices.ContainsFunc(dead, func(r *kgo.Record) bool {
		return header(r, HeaderRedriven) == names[0] && header(r, HeaderRedrivenAs) == newName && len(r.Value) == 0
	}) {
		t.Fatalf("no redrive marker in the dead-letter topic: %d records", len(dead))
	}
	if _, err := d.Redrive(ctx, names[0]); !itemapi.IsNotFound(err) {
		t.Fatalf("second Redrive: got %v, want NotFound", err)
	}
	if _, err := d.Redrive(ctx, "other-topic/0/0"); !itemapi.IsNotFound(err) {
		t.Fatalf("Redrive of another topic's name: got %v, want NotFound", err)
	}

	// Failed again: the new dead letter does not carry the old
	// itemq-redriven-from as its own header once redriven again.
	if err := d.Ack(ctx, newName, itemapi.Failed); err != nil {
		t.Fatal(err)
	}
	third, err := d.Redrive(ctx, newName)
	if err != nil {
		t.Fatalf("Redrive of the redriven message: %v", err)
	}
	for _, r := range consumeAll(t, c, topic) {
		if itemName(r.Topic, r.Partition, r.Offset) == third && header(r, HeaderRedrivenFrom) != newName {
			t.Fatalf("third record headers %v", r.Headers)
		}
	}
}

func TestRedriveWithoutDeadLetterTopic(t *testing.T) {
	c := newCluster(t).clients(t)
	topic := c.topic(t, "rdn", 1)
	d := open(t, c.config(topic))
	if _, err := d.Redrive(context.Background(), topic+"/0/0"); !itemapi.IsMethodNotAllowed(err) {
		t.Fatalf("Redrive without a dead-letter topic: got %v, want MethodNotAllowed", err)
	}
}
