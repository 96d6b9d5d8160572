// Package kafkasource is the Kafka driver of internal/source, over
// github.com/twmb/franz-go: the messages of the consumed topics are the items,
// named <topic>/<partition>/<offset>, and acknowledging an item commits the
// group's offset past it once every earlier message of its partition is
// acknowledged too (at-least-once: a crash never skips a message).
//
// The driver consumes in a consumer group with auto-commit off and holds, per
// assigned partition, a window of at most MaxPending messages starting at the
// lowest one not yet acknowledged; a full window pauses fetching from its
// partition (back-pressure, not memory growth). The items are the window's
// unacknowledged messages. A periodic committer, the revoke callback and
// Close commit each partition's acknowledged prefix; nothing else commits
// (franz-go commits nothing by itself with auto-commit disabled). See
// docs/kafka.md.
package kafkasource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Headers the driver adds to a dead-lettered message (besides the
// message's own key, value and headers).
const (
	HeaderSourceTopic     = "itemq-source-topic"
	HeaderSourcePartition = "itemq-source-partition"
	HeaderSourceOffset    = "itemq-source-offset"
	HeaderSourceTimestamp = "itemq-source-timestamp" // RFC 3339
	HeaderItem            = "itemq-item"             // the item name
	HeaderOutcome         = "itemq-outcome"          // "failed"
	HeaderReason          = "itemq-reason"           // why it was dead-lettered, in words
	HeaderGroup           = "itemq-group"            // the consumer group that gave up on it
)

// commitTimeout bounds one offset commit, so that a revoke or a shutdown
// against unreachable brokers does not hang.
const commitTimeout = 10 * time.Second

// closeTimeout bounds Close: the final commit and leaving the group (a
// variable for tests).
var closeTimeout = 10 * time.Second

// Driver is the Kafka driver. Create one with New; it consumes until Close.
type Driver struct {
	cfg Config
	log *slog.Logger
	cl  *kgo.Client
	idx *source.Index[*message]

	// commitMu serializes commits with revokes, so that the offsets of a
	// partition are never committed after it was given up. Order: commitMu,
	// then mu.
	commitMu sync.Mutex
	mu       sync.Mutex
	parts    map[tp]*window
	// assigned: the group has assigned this member its partitions at
	// least once (before that, any name may turn out to be ours).
	assigned bool

	// redriveMu serialises redrives, so that two of one name cannot both
	// find its dead letter unmarked.
	redriveMu sync.Mutex

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ source.Driver       = (*Driver)(nil)
	_ source.Watcher      = (*Driver)(nil)
	_ source.Submitter    = (*Driver)(nil)
	_ source.Acker        = (*Driver)(nil)
	_ source.ReadyChecker = (*Driver)(nil)
	_ source.Counter      = (*Driver)(nil)
)

// Open reads the KAFKA_* configuration from environ and returns a Source
// over a new Driver; it is the ambassador's OpenFunc.
func Open(ctx context.Context, environ []string, log *slog.Logger) (*source.Source, error) {
	cfg, err := ParseConfig(environ)
	if err != nil {
		return nil, err
	}
	d, err := New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return source.New(d), nil
}

// New starts consuming with a validated configuration. The driver's
// goroutines end when ctx ends or Close is called; call Close in any case,
// as it commits the acknowledged offsets and leaves the group.
func New(ctx context.Context, cfg Config, log *slog.Logger, extra ...kgo.Opt) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		cfg:   cfg,
		log:   log.With("source", "kafka", "group", cfg.Group),
		idx:   source.NewIndex[*message](),
		parts: make(map[tp]*window),
	}
	opts, err := cfg.connOpts()
	if err != nil {
		return nil, err
	}
	hb := min(3*time.Second, cfg.SessionTimeout/3)
	opts = append(opts,
		kgo.WithLogger(kgoLogger{d.log}),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(d.onAssigned),
		kgo.OnPartitionsRevoked(d.onRevoked),
		kgo.OnPartitionsLost(d.onLost),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Let the broker's max.message.bytes decide what is too large
		// (the Source bounds submissions at 1 MiB already).
		kgo.ProducerBatchMaxBytes(16<<20),
	)
	if cfg.InstanceID != "" {
		// Static membership: a restarted ambassador with the same id takes
		// its partitions back at once, without waiting for its old
		// session to time out, and without a rebalance.
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	d.cl = cl
	d.checkTopics(ctx)

	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.consume(ctx) }()
	go func() { defer d.wg.Done(); d.commitLoop(ctx) }()
	d.log.Info("consuming", "brokers", cfg.Brokers, "topics", cfg.Topics, "max_pending", cfg.MaxPending,
		"dead_letter_topic", cfg.DeadLetterTopic, "submit_topic", cfg.SubmitTopic, "commit_interval", cfg.CommitInterval)
	return d, nil
}

// checkTopics warns (it does not fail: the brokers may come up later) when
// the brokers cannot be reached or a configured topic does not exist.
func (d *Driver) checkTopics(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.Ready(ctx); err != nil {
		d.log.Warn("kafka is not ready yet; consuming will start when it is", "err", err)
	}
}

// Client is the underlying franz-go client (for tests and tools).
func (d *Driver) Client() *kgo.Client { return d.cl }

// ---- consuming ---------------------------------------------------------

func (d *Driver) consume(ctx context.Context) {
	for {
		fetches := d.cl.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			d.cl.AllowRebalance()
			return
		}
		errs := 0
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			errs++
			d.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		if errs > 0 && fetches.NumRecords() == 0 {
			// Only errors (brokers unreachable, authentication): do not
			// spin; franz-go keeps retrying underneath.
			d.cl.AllowRebalance()
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		d.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				d.addLocked(tp{p.Topic, p.Partition}, p.Records)
			}
			if w := d.parts[tp{p.Topic, p.Partition}]; w != nil && p.Err == nil {
				w.hw = p.HighWatermark
			}
		})
		d.mu.Unlock()
		// Rebalances wait while a poll's records are being added, so a
		// revoked partition's records never reach the window after its
		// revoke.
		d.cl.AllowRebalance()
	}
}

func (d *Driver) addLocked(k tp, recs []*kgo.Record) {
	w := d.parts[k]
	if w == nil { // not announced by onAssigned (should not happen)
		w = newWindow(d.cfg.MaxPending)
		d.parts[k] = w
	}
	for _, r := range recs {
		if m := w.offer(r); m != nil {
			d.idx.Put(m.name, m)
		}
	}
	if w.full() && !w.paused {
		w.paused = true
		d.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		d.log.Debug("window full: partition paused", "topic", k.topic, "partition", k.partition)
	}
}

// onAssigned makes an empty window for each new partition. (Polls wait
// while it runs: the option BlockRebalanceOnPoll gates this callback too.)
func (d *Driver) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	d.mu.Lock()
	d.assigned = true
	for topic, ps := range assigned {
		for _, p := range ps {
			if k := (tp{topic, p}); d.parts[k] == nil {
				d.parts[k] = newWindow(d.cfg.MaxPending)
			}
		}
	}
	d.mu.Unlock()
	d.log.Info("partitions assigned", "partitions", assigned)
}

// onRevoked drops the revoked partitions from the window (watchers see
// DELETED) and commits their acknowledged prefixes before the group hands
// them to another member. It also runs on Close (every partition).
func (d *Driver) onRevoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	offsets := d.dropLocked(cl, revoked, true)
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := commitSync(ctx, cl, offsets); err != nil {
		d.log.Warn("commit on revoke failed: those messages will be delivered again", "offsets", offsets, "err", err)
		return
	}
	d.log.Info("partitions revoked", "partitions", revoked, "committed", offsets)
}

// onLost drops partitions that are already someone else's (the session
// expired): committing is pointless, the group would refuse it.
func (d *Driver) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	d.dropLocked(cl, lost, false)
	d.log.Warn("partitions lost; their unacknowledged messages go to whoever owns them now", "partitions", lost)
}

// dropLocked removes partitions and returns the offsets to commit for them.
// It takes d.mu; the caller holds commitMu.
func (d *Driver) dropLocked(cl *kgo.Client, parts map[string][]int32, wantOffsets bool) map[string]map[int32]kgo.EpochOffset {
	d.mu.Lock()
	defer d.mu.Unlock()
	var offsets map[string]map[int32]kgo.EpochOffset
	resume := map[string][]int32{}
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			w := d.parts[k]
			if w == nil {
				continue
			}
			for _, m := range w.pending() {
				d.idx.Delete(m.name)
			}
			if eo, ok := w.toCommit(); ok && wantOffsets {
				if offsets == nil {
					offsets = map[string]map[int32]kgo.EpochOffset{}
				}
				if offsets[topic] == nil {
					offsets[topic] = map[int32]kgo.EpochOffset{}
				}
				offsets[topic][p] = eo
			}
			if w.paused {
				resume[topic] = append(resume[topic], p)
			}
			delete(d.parts, k)
		}
	}
	if len(resume) > 0 {
		// Paused partitions stay paused in the client across a revoke;
		// a partition assigned again later must fetch.
		cl.ResumeFetchPartitions(resume)
	}
	return offsets
}

// ---- committing --------------------------------------------------------

func (d *Driver) commitLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Commit(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("commit failed; retrying at the next interval", "err", err)
			}
		}
	}
}

// Commit commits, for every assigned partition, the offset of its lowest
// message not yet acknowledged (or the offset after the last one consumed,
// when all are). It runs every KAFKA_COMMIT_INTERVAL, on revoke and on Close.
func (d *Driver) Commit(ctx context.Context) error {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	d.mu.Lock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for k, w := range d.parts {
		if eo, ok := w.toCommit(); ok {
			if offsets[k.topic] == nil {
				offsets[k.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[k.topic][k.partition] = eo
		}
	}
	d.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	err := commitSync(cctx, d.cl, offsets)
	if err != nil {
		return err
	}
	d.mu.Lock()
	for topic, ps := range offsets {
		for p, eo := range ps {
			if w := d.parts[tp{topic, p}]; w != nil && eo.Offset > w.committed {
				w.committed = eo.Offset
			}
		}
	}
	d.mu.Unlock()
	d.log.Debug("committed", "offsets", offsets)
	return nil
}

// commitSync commits offsets and waits; any partition's error fails it.
func commitSync(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					rerr = errors.Join(rerr, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
				}
			}
		}
	})
	if rerr != nil {
		return fmt.Errorf("commit offsets: %w", rerr)
	}
	return nil
}

// ---- the item API -----------------------------------------------------------

func (d *Driver) List(_ context.Context, opts source.ListOptions) ([]string, string, error) {
	return d.idx.List(opts)
}

func (d *Driver) Get(_ context.Context, name string) (json.RawMessage, error) {
	d.mu.Lock()
	m, ok := d.idx.Get(name)
	var rec *kgo.Record
	if ok {
		rec = m.rec
	}
	if rec == nil {
		err := d.notFoundLocked(name)
		d.mu.Unlock()
		return nil, err
	}
	d.mu.Unlock()
	data, err := itemData(rec)
	if err != nil {
		return nil, fmt.Errorf("item %q: %w", name, err)
	}
	return data, nil
}

func (d *Driver) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	return d.idx.Watch(ctx)
}

func (d *Driver) Len() int { return d.idx.Len() }

// Submit produces data to KAFKA_SUBMIT_TOPIC (acks=all) and returns the name
// of the resulting message. It appears as an item when the submit topic is
// one of KAFKA_TOPICS (and this member is assigned its partition).
func (d *Driver) Submit(ctx context.Context, data json.RawMessage) (string, error) {
	if d.cfg.SubmitTopic == "" {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "submissions are disabled: KAFKA_SUBMIT_TOPIC is not set")
	}
	r := &kgo.Record{Topic: d.cfg.SubmitTopic, Value: append([]byte(nil), data...)}
	if err := d.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return "", kafkaError(fmt.Errorf("produce to %s: %w", d.cfg.SubmitTopic, err))
	}
	return itemName(r.Topic, r.Partition, r.Offset), nil
}

// Ack marks a message done. With outcome=failed and a dead-letter topic, the
// message is produced there first (acks=all); if that fails, the message
// stays pending and the error is returned. A message of a partition this
// member no longer holds (revoked, or never assigned) is NotFound.
func (d *Driver) Ack(ctx context.Context, name string, outcome itemapi.Outcome) error {
	k, _, ok := parseName(name)
	if !ok {
		return source.NotFound(name)
	}
	d.mu.Lock()
	m, ok := d.idx.Get(name)
	if !ok || m.done {
		err := source.NotFound(name)
		if !ok {
			err = d.notFoundLocked(name)
		}
		d.mu.Unlock()
		return err
	}
	if m.acking {
		d.mu.Unlock()
		return source.Errorf(itemapi.ReasonConflict, "item %q is being acknowledged by another request", name)
	}
	if outcome == itemapi.Failed && d.cfg.DeadLetterTopic != "" {
		m.acking = true
		rec := m.rec
		d.mu.Unlock()
		err := d.deadLetter(ctx, rec, name)
		d.mu.Lock()
		m.acking = false
		if err != nil {
			d.mu.Unlock()
			return err
		}
		if cur, ok := d.idx.Get(name); !ok || cur != m {
			d.mu.Unlock()
			d.log.Warn("partition revoked while dead-lettering: the new owner will deliver the message again", "item", name)
			return source.Errorf(itemapi.ReasonNotFound, "item %q: its partition was revoked while it was dead-lettered; it will be delivered again", name)
		}
	}
	d.doneLocked(k, m)
	d.mu.Unlock()
	return nil
}

// notFoundLocked is the answer for a name the window does not hold:
// NotFound, or Unavailable while it may still come — before the group
// assigned this member its partitions, or for a message of a partition it
// holds that it has not consumed (or admitted) yet, at or after the
// group's committed offset and below the high watermark. A restarted
// ambassador reads its unacknowledged messages again from the commit point;
// a manager's acknowledgement that arrives first is then retried instead
// of taken for an item gone (which made the manager run it again when it
// came back).
func (d *Driver) notFoundLocked(name string) error {
	k, off, ok := parseName(name)
	if !ok || !slices.Contains(d.cfg.Topics, k.topic) {
		return source.NotFound(name)
	}
	if !d.assigned {
		return source.Errorf(itemapi.ReasonUnavailable, "item %q is not known yet: the ambassador has not been given its partitions; try again", name)
	}
	w := d.parts[k]
	if w == nil || (w.hw >= 0 && off >= w.hw) {
		return source.NotFound(name) // another member's, or no such message
	}
	if w.next >= 0 && off < w.next && !w.inOverflow(off) {
		return source.NotFound(name) // consumed and done (or never listed)
	}
	if c, ok := d.cl.CommittedOffsets()[k.topic][k.partition]; ok && off < c.Offset {
		return source.NotFound(name) // done before the commit point
	}
	return source.Errorf(itemapi.ReasonUnavailable, "item %q is not consumed yet (its partition is read again from the commit point); try again", name)
}

// doneLocked marks m (of partition k) done: it leaves the listing, the
// commit point moves, waiting messages are admitted and a paused partition
// resumes when there is room again.
func (d *Driver) doneLocked(k tp, m *message) {
	w := d.parts[k]
	d.idx.Delete(m.name)
	for _, a := range w.markDone(m) {
		d.idx.Put(a.name, a)
	}
	if w.paused && w.canResume() {
		w.paused = false
		d.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		d.log.Debug("window has room: partition resumed", "topic", k.topic, "partition", k.partition)
	}
}

func (d *Driver) deadLetter(ctx context.Context, r *kgo.Record, name string) error {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+8)
	hs = append(hs, r.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderSourceTimestamp, Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
		kgo.RecordHeader{Key: HeaderItem, Value: []byte(name)},
		kgo.RecordHeader{Key: HeaderOutcome, Value: []byte(itemapi.Failed)},
		kgo.RecordHeader{Key: HeaderReason, Value: []byte("acknowledged with outcome=failed: processing failed past its retries")},
		kgo.RecordHeader{Key: HeaderGroup, Value: []byte(d.cfg.Group)},
	)
	dl := &kgo.Record{Topic: d.cfg.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: hs}
	if err := d.cl.ProduceSync(ctx, dl).FirstErr(); err != nil {
		return kafkaError(fmt.Errorf("dead-letter to %s: %w", d.cfg.DeadLetterTopic, err))
	}
	d.log.Info("dead-lettered", "item", name, "topic", d.cfg.DeadLetterTopic, "partition", dl.Partition, "offset", dl.Offset)
	return nil
}

// Ready asks the brokers for the metadata of every configured topic: the
// brokers are reachable and the topics exist.
func (d *Driver) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	topics := append([]string(nil), d.cfg.Topics...)
	for _, t := range []string{d.cfg.DeadLetterTopic, d.cfg.SubmitTopic} {
		if t != "" {
			topics = append(topics, t)
		}
	}
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, d.cl)
	if err != nil {
		return source.Errorf(itemapi.ReasonUnavailable, "kafka metadata request to %v: %v", d.cfg.Brokers, err)
	}
	var errs []error
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			errs = append(errs, fmt.Errorf("topic %s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return source.Errorf(itemapi.ReasonUnavailable, "%v", errors.Join(errs...))
	}
	return nil
}

// ErrorReason classifies errors that did not carry a reason already.
func (d *Driver) ErrorReason(err error) itemapi.Reason { return reasonOf(err) }

func reasonOf(err error) itemapi.Reason {
	var ke *kerr.Error
	var ne net.Error
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return itemapi.ReasonTooLarge
	case errors.Is(err, kgo.ErrClientClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries), errors.As(err, &ke), errors.As(err, &ne):
		return itemapi.ReasonUnavailable
	}
	return itemapi.ReasonInternal
}

// kafkaError classifies an error of a Kafka call once.
func kafkaError(err error) error {
	return &source.Error{Reason: reasonOf(err), Err: err}
}

// Close stops consuming, commits every partition's acknowledged prefix,
// leaves the group (which revokes every partition: watchers see DELETED)
// and ends the watch streams.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		d.wg.Wait()
		// One budget for the final commit and leaving the group, so that
		// Close returns in closeTimeout even with the brokers unreachable.
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if err := d.Commit(ctx); err != nil {
			d.log.Warn("final commit failed: messages acknowledged since the last commit will be delivered again", "err", err)
		}
		// Leave the group (a dynamic member; a static one keeps its
		// partitions for its restart). onRevoked commits once more.
		if err := d.cl.LeaveGroupContext(ctx); err != nil {
			d.log.Warn("leaving the group did not finish; the group notices when the session times out", "err", err)
		}
		cancel()
		d.cl.Close()
		d.idx.Close()
		d.log.Info("closed")
	})
	return nil
}

// kgoLogger sends franz-go's log lines to slog (warnings and errors only,
// unless the logger is at debug level).
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelWarn
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo:
		lv = slog.LevelInfo
	}
	l.log.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}
