package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Headers of redrive. A redriven message carries HeaderRedrivenFrom (the
// name it had before). A dead letter cannot be deleted, so redriving one
// appends a marker to the dead-letter topic: no key, no value, and
// HeaderRedriven (the name redriven) and HeaderRedrivenAs (its new name).
const (
	HeaderRedrivenFrom = "itemq-redriven-from"
	HeaderRedriven     = "itemq-redriven"
	HeaderRedrivenAs   = "itemq-redriven-as"
)

// driverHeaders are the headers the driver adds; they are not the
// message's own, and a redrive drops them.
var driverHeaders = []string{
	HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset, HeaderSourceTimestamp,
	HeaderItem, HeaderOutcome, HeaderReason, HeaderGroup, HeaderRedrivenFrom,
}

// scanIdle ends a scan of the dead-letter topic that has read nothing for
// this long before reaching the end offsets it started with (the end may be
// a transaction marker, which is never returned as a record).
var scanIdle = 5 * time.Second

var _ source.Redriver = (*Driver)(nil)

// Redrive produces a dead-lettered message again to the topic it came
// from — key, value and own headers, plus HeaderRedrivenFrom — and answers
// its new name, <topic>/<partition>/<offset>; then it appends a marker to
// the dead-letter topic, so that a second redrive of the name is a
// NotFound. It reads the whole dead-letter topic to find the message.
func (d *Driver) Redrive(ctx context.Context, name string) (string, error) {
	dlq := d.cfg.DeadLetterTopic
	if dlq == "" {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "redrive: no dead-letter topic (KAFKA_DEAD_LETTER_TOPIC is unset): failed messages are not kept")
	}
	k, _, ok := parseName(name)
	if !ok || !slices.Contains(d.cfg.Topics, k.topic) {
		return "", notDead(name, dlq)
	}
	d.redriveMu.Lock()
	defer d.redriveMu.Unlock()
	rec, err := d.findDeadLetter(ctx, dlq, name)
	if err != nil {
		return "", err
	}
	if rec == nil {
		return "", notDead(name, dlq)
	}
	again := &kgo.Record{Topic: k.topic, Key: rec.Key, Value: rec.Value, Headers: ownHeaders(rec.Headers)}
	again.Headers = append(again.Headers, kgo.RecordHeader{Key: HeaderRedrivenFrom, Value: []byte(name)})
	if err := d.cl.ProduceSync(ctx, again).FirstErr(); err != nil {
		return "", kafkaError(fmt.Errorf("redrive %s: produce to %s: %w", name, k.topic, err))
	}
	newName := itemName(again.Topic, again.Partition, again.Offset)
	marker := &kgo.Record{Topic: dlq, Headers: []kgo.RecordHeader{
		{Key: HeaderRedriven, Value: []byte(name)},
		{Key: HeaderRedrivenAs, Value: []byte(newName)},
		{Key: HeaderGroup, Value: []byte(d.cfg.Group)},
	}}
	if err := d.cl.ProduceSync(ctx, marker).FirstErr(); err != nil {
		// The message is back; only a second redrive of the name would
		// produce it once more.
		d.log.Warn("redriven, but the marker could not be written to the dead-letter topic", "item", name, "as", newName, "err", err)
	}
	d.log.Info("redriven", "item", name, "as", newName, "dead_letter_topic", dlq)
	return newName, nil
}

func notDead(name, dlq string) error {
	return source.Errorf(itemapi.ReasonNotFound, "redrive: the dead-letter topic %s holds no message of item %q that was not redriven already", dlq, name)
}

func ownHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs)+1)
	for _, h := range hs {
		if !slices.Contains(driverHeaders, h.Key) {
			out = append(out, h)
		}
	}
	return out
}

// findDeadLetter reads the dead-letter topic from its start to the end
// offsets it has now, and answers the dead letter of the item, or nil when
// there is none or a marker says it was redriven.
func (d *Driver) findDeadLetter(ctx context.Context, dlq, name string) (*kgo.Record, error) {
	ends, starts, err := d.dlqOffsets(ctx, dlq)
	if err != nil {
		return nil, err
	}
	parts := map[int32]kgo.Offset{}
	remaining := map[int32]int64{}
	for p, end := range ends {
		if start := starts[p]; end > start {
			parts[p] = kgo.NewOffset().At(start)
			remaining[p] = end
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	opts, err := d.cfg.connOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.WithLogger(kgoLogger{d.log}),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{dlq: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("redrive: kafka client to read %s: %w", dlq, err)
	}
	defer cl.Close()
	var found *kgo.Record
	redriven := false
	for len(remaining) > 0 {
		pctx, cancel := context.WithTimeout(ctx, scanIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fs.NumRecords() == 0 && pctx.Err() != nil {
			d.log.Warn("redrive: stopped reading the dead-letter topic before its end offsets: nothing more came", "topic", dlq, "partitions_left", len(remaining))
			break
		}
		if err := fetchError(fs); err != nil {
			return nil, kafkaError(fmt.Errorf("redrive: read %s: %w", dlq, err))
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset >= end-1 {
				delete(remaining, r.Partition)
			}
			switch {
			case header(r, HeaderRedriven) == name:
				redriven = true
			case header(r, HeaderItem) == name && found == nil:
				found = r
			}
		})
	}
	if redriven {
		return nil, nil
	}
	return found, nil
}

// dlqOffsets are the end and start offsets of each partition of the topic.
func (d *Driver) dlqOffsets(ctx context.Context, dlq string) (ends, starts map[int32]int64, err error) {
	adm := kadm.NewClient(d.cl)
	e, err := adm.ListEndOffsets(ctx, dlq)
	if err == nil {
		err = e.Error()
	}
	if err != nil {
		return nil, nil, kafkaError(fmt.Errorf("redrive: end offsets of %s: %w", dlq, err))
	}
	s, err := adm.ListStartOffsets(ctx, dlq)
	if err == nil {
		err = s.Error()
	}
	if err != nil {
		return nil, nil, kafkaError(fmt.Errorf("redrive: start offsets of %s: %w", dlq, err))
	}
	ends, starts = map[int32]int64{}, map[int32]int64{}
	e.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	s.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	return ends, starts, nil
}

func fetchError(fs kgo.Fetches) error {
	var first error
	fs.EachError(func(_ string, _ int32, err error) {
		if first == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			first = err
		}
	})
	return first
}

// header is the value of a record's last header of that key, or "".
func header(r *kgo.Record, key string) string {
	v := ""
	for _, h := range r.Headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}
