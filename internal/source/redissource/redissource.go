// Package redissource is the Redis driver of internal/source, over
// github.com/redis/go-redis/v9 (a UniversalClient: standalone, Sentinel or
// Cluster). It has two modes, both in one driver:
//
//   - Streams (REDIS_STREAMS): entries are read in a consumer group with
//     XREADGROUP; an item is named <stream>/<entry id>. outcome=succeeded is
//     XACK; outcome=failed copies the entry to <stream>:dead and acknowledges
//     it in one script. A restarted ambassador (same REDIS_CONSUMER) reads
//     its own pending entries first; entries idle longer than
//     REDIS_CLAIM_IDLE in other (dead) consumers are taken over with
//     XAUTOCLAIM, and this driver refreshes its own held entries well within
//     that time so that live consumers are not robbed.
//   - Lists (REDIS_LISTS): the reliable-queue pattern. A script moves values
//     from the list into this consumer's processing list
//     (<list>:processing:<consumer>), tagging each with a number from
//     <list>:seq so that equal values are distinct items; an item is named
//     <list>/<number>. succeeded removes it from the processing list;
//     failed moves its value to <list>:dead in one script; at start the
//     processing list is recovered.
//
// Items read but not yet acknowledged (over every key) are at most
// REDIS_MAX_PENDING: nothing more is read while the window is full. Entries
// too large or not decodable are dead-lettered at once with the reason.
// See docs/redis.md.
package redissource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Fields the driver adds to a dead-lettered stream entry (before the
// entry's own fields).
const (
	FieldStream   = "itemq-stream"   // the stream it was read from
	FieldID       = "itemq-id"       // its entry id there
	FieldReason   = "itemq-reason"   // why it was dead-lettered, in words
	FieldGroup    = "itemq-group"    // the consumer group
	FieldConsumer = "itemq-consumer" // the consumer that gave up on it
)

// listTag starts every value of a processing list: itemq1:<number>:<value>.
const listTag = "itemq1:"

// item is one held entry or list value.
type item struct {
	name   string
	key    string
	stream bool
	// Streams: the entry id and its fields (flat, sorted by field name).
	id     string
	fields []string
	// Lists: the processing-list element (tagged) and the value.
	elem  string
	value string
	// touched is when this consumer last claimed or read it (streams),
	// in Unix nanoseconds.
	touched atomic.Int64
}

// Driver is the Redis driver. Create one with New; it reads until Close.
type Driver struct {
	cfg Config
	log *slog.Logger
	rdb redis.UniversalClient
	idx *source.Index[*item]
	// acks keeps a read's stale answer from admitting an entry
	// acknowledged since it was sent.
	acks *ackLog

	streams map[string]bool // key → is a stream (else a list)
	// recovering counts the streams and lists whose pending items of an
	// earlier run (own pending entries, the processing list) are not all
	// read back yet: until then an unknown name may be one of them, so Get
	// and Ack answer Unavailable (retry) rather than NotFound (which a
	// manager takes as "already acknowledged").
	recovering atomic.Int32

	mu      sync.Mutex
	wake    chan struct{} // closed when room is made in the window
	lastErr map[string]loopErr

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type loopErr struct {
	err error
	at  time.Time
}

var (
	_ source.Driver       = (*Driver)(nil)
	_ source.Watcher      = (*Driver)(nil)
	_ source.Submitter    = (*Driver)(nil)
	_ source.Acker        = (*Driver)(nil)
	_ source.ReadyChecker = (*Driver)(nil)
	_ source.Counter      = (*Driver)(nil)
	_ source.Redriver     = (*Driver)(nil)
)

// Open reads the REDIS_* configuration from environ and returns a Source
// over a new Driver; it is the ambassador's OpenFunc.
func Open(ctx context.Context, environ []string, log *slog.Logger) (*source.Source, error) {
	cfg, err := ParseConfig(environ)
	if err != nil {
		return nil, err
	}
	if log != nil {
		// go-redis's own messages (reconnects, failovers) go to the log.
		redis.SetLogger(redisLogger{log.With("source", "redis")})
	}
	d, err := New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return source.New(d, source.WithMaxSubmitBytes(int64(cfg.MaxItemBytes))), nil
}

// New starts reading with a validated configuration. The driver's
// goroutines end when ctx ends or Close is called; call Close in any case.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	d := &Driver{
		cfg:     cfg,
		log:     log.With("source", "redis", "consumer", cfg.Consumer),
		rdb:     redis.NewUniversalClient(opts),
		idx:     source.NewIndex[*item](),
		acks:    newAckLog(),
		streams: map[string]bool{},
		wake:    make(chan struct{}),
		lastErr: map[string]loopErr{},
	}
	for _, s := range cfg.Streams {
		d.streams[s] = true
	}
	for _, l := range cfg.Lists {
		d.streams[l] = false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := d.Ready(cctx); err != nil {
		d.log.Warn("redis is not ready yet; reading will start when it is", "err", err)
	}
	cancel()

	ctx, d.cancel = context.WithCancel(ctx)
	d.recovering.Store(int32(len(cfg.Streams) + len(cfg.Lists)))
	for _, s := range cfg.Streams {
		d.wg.Add(2)
		go func() { defer d.wg.Done(); d.readStream(ctx, s) }()
		go func() { defer d.wg.Done(); d.claimLoop(ctx, s) }()
	}
	for _, l := range cfg.Lists {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.readList(ctx, l) }()
	}
	d.log.Info("reading", "addrs", cfg.Addrs, "streams", cfg.Streams, "lists", cfg.Lists, "group", cfg.Group,
		"max_pending", cfg.MaxPending, "claim_idle", cfg.ClaimIdle)
	return d, nil
}

// Client is the underlying go-redis client (for tests and tools).
func (d *Driver) Client() redis.UniversalClient { return d.rdb }

// DeadLetterKey is the dead-letter stream or list of a key.
func (d *Driver) DeadLetterKey(key string) string { return key + d.cfg.DeadLetterSuffix }

// DeadLetterNamesKey is the hash beside a list's dead-letter list that
// maps the number of each dead-lettered value (its item name's last
// segment) to the value, so that Redrive can find it by name.
func (d *Driver) DeadLetterNamesKey(list string) string { return d.DeadLetterKey(list) + ":names" }

// ProcessingList is this consumer's processing list of a list.
func (d *Driver) ProcessingList(list string) string {
	return list + ":processing:" + d.cfg.Consumer
}

func seqKey(list string) string { return list + ":seq" }

// ---- the window -------------------------------------------------------------

// room is how many more items may be read now.
func (d *Driver) room() int { return d.cfg.MaxPending - d.idx.Len() }

// waitRoom waits until the window has room or ctx ends.
func (d *Driver) waitRoom(ctx context.Context) bool {
	for {
		d.mu.Lock()
		w := d.wake
		d.mu.Unlock()
		if d.room() > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-w:
		case <-time.After(time.Second):
		}
	}
}

func (d *Driver) release() {
	d.mu.Lock()
	close(d.wake)
	d.wake = make(chan struct{})
	d.mu.Unlock()
}

// setErr records (or, with nil, clears) the error of a reading loop; Ready
// reports it.
func (d *Driver) setErr(key string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		delete(d.lastErr, key)
		return
	}
	d.lastErr[key] = loopErr{err, time.Now()}
}

// pause sleeps after an error, or returns false when ctx ended.
func pause(ctx context.Context, dt time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(dt):
		return true
	}
}

// ---- streams ----------------------------------------------------------------

// ensureGroup creates the group (and with REDIS_CREATE the stream).
func (d *Driver) ensureGroup(ctx context.Context, s string) error {
	var err error
	if d.cfg.Create {
		err = d.rdb.XGroupCreateMkStream(ctx, s, d.cfg.Group, d.cfg.Start).Err()
	} else {
		err = d.rdb.XGroupCreate(ctx, s, d.cfg.Group, d.cfg.Start).Err()
	}
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return d.explain(fmt.Errorf("create group %s on stream %s: %w", d.cfg.Group, s, err), s)
	}
	return nil
}

func (d *Driver) readStream(ctx context.Context, s string) {
	log := d.log.With("stream", s)
	backoff := func(err error) bool {
		d.setErr(s, err)
		if ctx.Err() == nil {
			log.Warn("read failed; retrying", "err", err)
		}
		return pause(ctx, time.Second)
	}
	for ctx.Err() == nil {
		if err := d.ensureGroup(ctx, s); err != nil {
			if !backoff(err) {
				return
			}
			continue
		}
		break
	}
	// First this consumer's own pending entries (from an earlier run),
	// then new ones.
	history, cursor := true, "0"
	recovered := false
	for ctx.Err() == nil {
		if !d.waitRoom(ctx) {
			return
		}
		args := &redis.XReadGroupArgs{Group: d.cfg.Group, Consumer: d.cfg.Consumer, Count: int64(d.room())}
		if history {
			args.Streams = []string{s, cursor}
		} else {
			args.Streams = []string{s, ">"}
			args.Block = d.cfg.Block
		}
		start := d.acks.begin()
		res, err := d.rdb.XReadGroup(ctx, args).Result()
		if err != nil {
			d.acks.end(start)
		}
		if errors.Is(err, redis.Nil) {
			d.setErr(s, nil)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// The stream or group is gone (deleted, or a server restarted
				// without persistence): create it again and read from the start.
				log.Warn("group missing: creating it again", "err", err)
				if err := d.ensureGroup(ctx, s); err != nil {
					if !backoff(err) {
						return
					}
				}
				history, cursor = true, "0"
				continue
			}
			if !backoff(d.explain(fmt.Errorf("XREADGROUP %s: %w", s, err), s)) {
				return
			}
			continue
		}
		d.setErr(s, nil)
		var msgs []redis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if history && len(msgs) == 0 {
			d.acks.end(start)
			if !recovered {
				recovered = true
				d.recovering.Add(-1)
			}
			history = false
			continue
		}
		for _, m := range msgs {
			if history {
				cursor = m.ID
			}
			d.admitEntry(ctx, s, m, start)
		}
		d.acks.end(start)
	}
}

// admitEntry puts a read entry in the window, or dead-letters it when it is
// too large, not decodable, or gone from the stream (trimmed while pending).
// start is what d.acks.begin returned before the read that answered m.
func (d *Driver) admitEntry(ctx context.Context, s string, m redis.XMessage, start uint64) {
	name := s + "/" + m.ID
	if d.acks.stale(name, start) {
		return // acknowledged since the read was sent
	}
	if cur, ok := d.idx.Get(name); ok {
		cur.touched.Store(time.Now().UnixNano()) // claimed again: ours already
		return
	}
	it := &item{name: name, key: s, stream: true, id: m.ID}
	it.touched.Store(time.Now().UnixNano())
	size := 0
	for k, v := range m.Values {
		sv := fmt.Sprint(v)
		it.fields = append(it.fields, k, sv)
		size += len(k) + len(sv)
	}
	sortPairs(it.fields)
	var reason string
	switch {
	case m.Values == nil:
		reason = "the entry was deleted or trimmed from the stream before it was processed; its fields are lost"
	case size > d.cfg.MaxItemBytes:
		reason = fmt.Sprintf("the entry is %d bytes, more than REDIS_MAX_ITEM_BYTES=%d", size, d.cfg.MaxItemBytes)
	default:
		if _, err := d.streamData(it); err != nil {
			reason = "the entry is not decodable: " + err.Error()
		}
	}
	if reason != "" {
		ok, err := d.deadLetterEntry(ctx, it, reason)
		switch {
		case err != nil:
			// It stays pending: XAUTOCLAIM hands it back after REDIS_CLAIM_IDLE.
			d.log.Warn("dead-lettering a bad entry failed; it will be tried again", "item", name, "reason", reason, "err", err)
		case ok:
			d.log.Warn("dead-lettered a bad entry", "item", name, "reason", reason, "dead_letter", d.DeadLetterKey(s))
		}
		return
	}
	d.idx.Put(name, it)
}

func sortPairs(kv []string) {
	n := len(kv) / 2
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return kv[2*idx[a]] < kv[2*idx[b]] })
	out := make([]string, 0, len(kv))
	for _, i := range idx {
		out = append(out, kv[2*i], kv[2*i+1])
	}
	copy(kv, out)
}

// streamData is an entry's item data: the JSON object in REDIS_JSON_FIELD
// when the entry has that field, else the fields as a JSON object of strings.
func (d *Driver) streamData(it *item) (json.RawMessage, error) {
	if f := d.cfg.JSONField; f != "" {
		for i := 0; i < len(it.fields); i += 2 {
			if it.fields[i] == f {
				raw := json.RawMessage(it.fields[i+1])
				var obj map[string]json.RawMessage
				if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
					return nil, fmt.Errorf("field %s does not hold a JSON object", f)
				}
				return raw, nil
			}
		}
	}
	obj := make(map[string]string, len(it.fields)/2)
	for i := 0; i < len(it.fields); i += 2 {
		obj[it.fields[i]] = it.fields[i+1]
	}
	return json.Marshal(obj)
}

// dlStream copies a pending entry to the dead-letter stream and
// acknowledges it, atomically; it answers 0 when the entry is not pending.
var dlStream = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return 0 end
local args = {'XADD', KEYS[2], '*', 'itemq-stream', KEYS[1], 'itemq-id', ARGV[2], 'itemq-reason', ARGV[3], 'itemq-group', ARGV[1], 'itemq-consumer', ARGV[4]}
for i = 5, #ARGV do args[#args+1] = ARGV[i] end
redis.call(unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

func (d *Driver) deadLetterEntry(ctx context.Context, it *item, reason string) (bool, error) {
	args := make([]any, 0, 4+len(it.fields))
	args = append(args, d.cfg.Group, it.id, reason, d.cfg.Consumer)
	for _, f := range it.fields {
		args = append(args, f)
	}
	n, err := dlStream.Run(ctx, d.rdb, []string{it.key, d.DeadLetterKey(it.key)}, args...).Int()
	if err != nil {
		return false, redisError(fmt.Errorf("dead-letter %s to %s: %w", it.name, d.DeadLetterKey(it.key), err))
	}
	return n == 1, nil
}

// claimLoop refreshes this consumer's held entries (so that no other
// consumer takes them over) and takes over entries idle longer than
// REDIS_CLAIM_IDLE (those of dead consumers, and its own that could not be
// dead-lettered).
func (d *Driver) claimLoop(ctx context.Context, s string) {
	every := max(d.cfg.ClaimIdle/4, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.refresh(ctx, s, every); err != nil && ctx.Err() == nil {
			d.log.Warn("refreshing held entries failed", "stream", s, "err", err)
		}
		if err := d.autoclaim(ctx, s); err != nil && ctx.Err() == nil {
			d.log.Warn("XAUTOCLAIM failed", "stream", s, "err", err)
		}
	}
}

// refresh claims again (resetting their idle time) the held entries of
// stream s not touched for a while. An entry that is no longer this
// consumer's (another one took it over while this one was stalled, or it
// was acknowledged elsewhere) leaves the window.
func (d *Driver) refresh(ctx context.Context, s string, every time.Duration) error {
	var ids []string
	byID := map[string]*item{}
	now := time.Now()
	d.idx.Ascend(func(_ string, it *item) bool {
		if it.stream && it.key == s && now.Sub(time.Unix(0, it.touched.Load())) >= every {
			ids = append(ids, it.id)
			byID[it.id] = it
		}
		return true
	})
	for len(ids) > 0 {
		batch := ids[:min(len(ids), 500)]
		ids = ids[len(batch):]
		got, err := d.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
			Stream: s, Group: d.cfg.Group, Consumer: d.cfg.Consumer, MinIdle: every / 2, Messages: batch,
		}).Result()
		if err != nil {
			return redisError(fmt.Errorf("XCLAIM %s: %w", s, err))
		}
		claimed := map[string]bool{}
		for _, id := range got {
			claimed[id] = true
		}
		for _, id := range batch {
			it := byID[id]
			if claimed[id] {
				it.touched.Store(now.UnixNano())
				continue
			}
			if cur, ok := d.idx.Get(it.name); !ok || cur != it {
				continue // acknowledged meanwhile
			}
			d.log.Warn("held entry is no longer this consumer's (taken over or acknowledged elsewhere)", "item", it.name)
			d.idx.Delete(it.name)
			d.release()
		}
	}
	return nil
}

func (d *Driver) autoclaim(ctx context.Context, s string) error {
	start := "0-0"
	for ctx.Err() == nil {
		room := d.room()
		if room <= 0 {
			return nil
		}
		read := d.acks.begin()
		msgs, next, err := d.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s, Group: d.cfg.Group, Consumer: d.cfg.Consumer, MinIdle: d.cfg.ClaimIdle, Start: start, Count: int64(room),
		}).Result()
		if err != nil {
			d.acks.end(read)
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				return nil // the reader recreates it
			}
			return redisError(fmt.Errorf("XAUTOCLAIM %s: %w", s, err))
		}
		for _, m := range msgs {
			if _, ok := d.idx.Get(s + "/" + m.ID); !ok {
				d.log.Info("took over an idle entry", "item", s+"/"+m.ID)
			}
			d.admitEntry(ctx, s, m, read)
		}
		d.acks.end(read)
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
	return nil
}

// ---- lists ------------------------------------------------------------------

// moveList moves up to ARGV[1] values from the list to the processing
// list, tagging each with a number from the sequence (values submitted
// through the API are tagged already).
var moveList = redis.NewScript(`
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LPOP', KEYS[1])
  if not v then break end
  if not string.match(v, '^itemq1:%d+:') then
    v = 'itemq1:' .. redis.call('INCR', KEYS[3]) .. ':' .. v
  end
  redis.call('RPUSH', KEYS[2], v)
  out[#out+1] = v
end
return out
`)

// retagList tags an untagged element of a processing list in place.
var retagList = redis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return false end
local v = 'itemq1:' .. redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('RPUSH', KEYS[1], v)
return v
`)

// failList moves an element of the processing list to the dead-letter
// list (its value, untagged, as before) and records the value under its
// number in the dead letter's names hash, where Redrive finds it; 0 when
// the element is not there.
var failList = redis.NewScript(`
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
redis.call('LREM', KEYS[1], 1, ARGV[1])
return 1
`)

// submitList pushes a tagged value and answers its number.
var submitList = redis.NewScript(`
local n = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], 'itemq1:' .. n .. ':' .. ARGV[1])
return n
`)

// parseElem splits a processing-list element into its number and value.
func parseElem(elem string) (uint64, string, bool) {
	rest, ok := strings.CutPrefix(elem, listTag)
	if !ok {
		return 0, "", false
	}
	num, value, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return n, value, true
}

// listName is the item name of a list value: <list>/<number>, the number
// zero-padded so that names sort in arrival order.
func listName(list string, n uint64) string { return fmt.Sprintf("%s/%012d", list, n) }

func (d *Driver) readList(ctx context.Context, l string) {
	log := d.log.With("list", l)
	proc := d.ProcessingList(l)
	backoff := func(err error) bool {
		d.setErr(l, err)
		if ctx.Err() == nil {
			log.Warn("read failed; retrying", "err", err)
		}
		return pause(ctx, time.Second)
	}
	// Recover the processing list of an earlier run.
	for ctx.Err() == nil {
		elems, err := d.rdb.LRange(ctx, proc, 0, -1).Result()
		if err != nil {
			if !backoff(d.explain(fmt.Errorf("LRANGE %s: %w", proc, err), l)) {
				return
			}
			continue
		}
		for _, e := range elems {
			if _, _, ok := parseElem(e); !ok {
				v, err := retagList.Run(ctx, d.rdb, []string{proc, seqKey(l)}, e).Text()
				if err != nil {
					log.Warn("tagging a foreign value in the processing list failed", "err", err)
					continue
				}
				e = v
			}
			d.admitValue(ctx, l, e)
		}
		if len(elems) > 0 {
			log.Info("recovered the processing list", "processing_list", proc, "values", len(elems))
		}
		d.recovering.Add(-1)
		d.setErr(l, nil)
		break
	}
	for ctx.Err() == nil {
		if !d.waitRoom(ctx) {
			return
		}
		elems, err := moveList.Run(ctx, d.rdb, []string{l, proc, seqKey(l)}, d.room()).StringSlice()
		if err != nil && !errors.Is(err, redis.Nil) {
			if ctx.Err() != nil {
				return
			}
			if !backoff(d.explain(fmt.Errorf("move from %s to %s: %w", l, proc, err), l)) {
				return
			}
			continue
		}
		d.setErr(l, nil)
		for _, e := range elems {
			d.admitValue(ctx, l, e)
		}
		if len(elems) > 0 {
			continue
		}
		// Nothing there: wait for a value without taking it (the head moves
		// to the head of the same list).
		err = d.rdb.BLMove(ctx, l, l, "LEFT", "LEFT", d.cfg.Block).Err()
		if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
			if !backoff(d.explain(fmt.Errorf("BLMOVE %s: %w", l, err), l)) {
				return
			}
		}
	}
}

func (d *Driver) admitValue(ctx context.Context, l, elem string) {
	n, value, _ := parseElem(elem)
	it := &item{name: listName(l, n), key: l, elem: elem, value: value}
	if len(value) > d.cfg.MaxItemBytes {
		reason := fmt.Sprintf("the value is %d bytes, more than REDIS_MAX_ITEM_BYTES=%d", len(value), d.cfg.MaxItemBytes)
		if _, err := d.deadLetterValue(ctx, it); err != nil {
			d.log.Warn("dead-lettering a bad value failed; it stays in the processing list until a restart", "item", it.name, "reason", reason, "err", err)
			return
		}
		d.log.Warn("dead-lettered a bad value", "item", it.name, "reason", reason, "dead_letter", d.DeadLetterKey(l))
		return
	}
	d.idx.Put(it.name, it)
}

func (d *Driver) deadLetterValue(ctx context.Context, it *item) (bool, error) {
	num, _ := splitNumber(it.name)
	keys := []string{d.ProcessingList(it.key), d.DeadLetterKey(it.key), d.DeadLetterNamesKey(it.key)}
	n, err := failList.Run(ctx, d.rdb, keys, it.elem, it.value, num).Int()
	if err != nil {
		return false, redisError(fmt.Errorf("dead-letter %s to %s: %w", it.name, d.DeadLetterKey(it.key), err))
	}
	return n == 1, nil
}

// listData is a list value's item data: the value when it is a JSON
// object, else {"value": "<the value>"}.
func listData(value string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if v := strings.TrimLeft(value, " \t\r\n"); strings.HasPrefix(v, "{") && json.Unmarshal([]byte(value), &obj) == nil && obj != nil {
		return json.RawMessage(value), nil
	}
	return json.Marshal(map[string]string{"value": value})
}

// ---- the item API -----------------------------------------------------------

func (d *Driver) List(_ context.Context, opts source.ListOptions) ([]string, string, error) {
	return d.idx.List(opts)
}

func (d *Driver) Get(_ context.Context, name string) (json.RawMessage, error) {
	it, ok := d.idx.Get(name)
	if !ok {
		return nil, d.notFound(name)
	}
	if it.stream {
		return d.streamData(it)
	}
	return listData(it.value)
}

func (d *Driver) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	return d.idx.Watch(ctx)
}

func (d *Driver) Len() int { return d.idx.Len() }

// Submit adds data to the first stream (XADD) or, with no streams, to the
// first list (RPUSH, tagged with its number), and returns the new item's name.
func (d *Driver) Submit(ctx context.Context, data json.RawMessage) (string, error) {
	if !d.cfg.Submit {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "submissions are disabled: REDIS_SUBMIT=false")
	}
	if len(d.cfg.Streams) > 0 {
		s := d.cfg.Streams[0]
		values, err := d.entryFields(data)
		if err != nil {
			return "", err
		}
		id, err := d.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: values}).Result()
		if err != nil {
			return "", redisError(fmt.Errorf("XADD %s: %w", s, err))
		}
		return s + "/" + id, nil
	}
	l := d.cfg.Lists[0]
	n, err := submitList.Run(ctx, d.rdb, []string{l, seqKey(l)}, string(data)).Uint64()
	if err != nil {
		return "", redisError(fmt.Errorf("RPUSH %s: %w", l, err))
	}
	return listName(l, n), nil
}

// entryFields are the fields of a submitted entry: the body in
// REDIS_JSON_FIELD, or one field per member (strings as they are, other
// values as JSON text).
func (d *Driver) entryFields(data json.RawMessage) ([]string, error) {
	if d.cfg.JSONField != "" {
		return []string{d.cfg.JSONField, string(data)}, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, source.Errorf(itemapi.ReasonBadRequest, "body is not a JSON object: %v", err)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil, source.Errorf(itemapi.ReasonBadRequest, "an empty object makes no stream entry: set REDIS_JSON_FIELD or give at least one field")
	}
	out := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		v := obj[k]
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v)
		}
		out = append(out, k, s)
	}
	return out, nil
}

// notFound is the answer for a name the window does not hold: NotFound,
// or Unavailable while pending items of an earlier run are being read back
// (the name may be one of them).
func (d *Driver) notFound(name string) error {
	if d.recovering.Load() > 0 {
		return source.Errorf(itemapi.ReasonUnavailable, "item %q is not known yet: the ambassador is reading back the pending items of its earlier run; try again", name)
	}
	return source.NotFound(name)
}

// Ack acknowledges an item: succeeded → XACK (or LREM from the processing
// list); failed → to the dead-letter stream or list and acknowledged, in
// one script.
func (d *Driver) Ack(ctx context.Context, name string, outcome itemapi.Outcome) error {
	it, ok := d.idx.Get(name)
	if !ok {
		return d.ackUnknown(ctx, name)
	}
	var done bool
	var err error
	switch {
	case it.stream && outcome == itemapi.Failed:
		done, err = d.deadLetterEntry(ctx, it, "acknowledged with outcome=failed: processing failed past its retries")
	case it.stream:
		var n int64
		n, err = d.rdb.XAck(ctx, it.key, d.cfg.Group, it.id).Result()
		if err != nil {
			err = redisError(fmt.Errorf("XACK %s %s: %w", it.key, it.id, err))
		}
		done = n == 1
	case outcome == itemapi.Failed:
		done, err = d.deadLetterValue(ctx, it)
	default:
		var n int64
		n, err = d.rdb.LRem(ctx, d.ProcessingList(it.key), 1, it.elem).Result()
		if err != nil {
			err = redisError(fmt.Errorf("LREM %s: %w", d.ProcessingList(it.key), err))
		}
		done = n == 1
	}
	if err != nil {
		return err
	}
	if it.stream && done {
		d.acks.record(name) // before it leaves the window: see ackLog
	}
	if cur, ok := d.idx.Get(name); ok && cur == it {
		d.idx.Delete(name)
		d.release()
	}
	if !done {
		return source.Errorf(itemapi.ReasonNotFound, "item %q is no longer pending for this consumer", name)
	}
	if outcome == itemapi.Failed {
		d.log.Info("dead-lettered", "item", name, "dead_letter", d.DeadLetterKey(it.key))
	}
	return nil
}

// ackUnknown answers the acknowledgement of an item the driver does not
// hold. A stream entry its group has not read yet (a redriven entry, whose
// new name the redrive answered at once; one behind a full window), or that
// this consumer has read and is still admitting, is held soon:
// Unavailable, so that the caller tries again rather than
// take it for gone (it would then run, or stay pending, beside a cancel
// that was never carried out). Anything else is NotFound.
func (d *Driver) ackUnknown(ctx context.Context, name string) error {
	key, id := splitName(name)
	if stream, ok := d.streams[key]; !ok || !stream || d.recovering.Load() > 0 {
		return d.notFound(name)
	}
	// Read by this consumer, and not held: being admitted right now (the
	// read has returned, the window does not have it yet).
	pend, err := d.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: key, Group: d.cfg.Group, Start: id, End: id, Count: 1, Consumer: d.cfg.Consumer}).Result()
	if err != nil {
		return redisError(fmt.Errorf("XPENDING %s %s: %w", key, id, err))
	}
	if len(pend) == 1 {
		if _, ok := d.idx.Get(name); !ok {
			return source.Errorf(itemapi.ReasonUnavailable, "item %q is being read; try again", name)
		}
		return source.Errorf(itemapi.ReasonUnavailable, "item %q was read meanwhile; try again", name)
	}
	groups, err := d.rdb.XInfoGroups(ctx, key).Result()
	if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
		return d.notFound(name) // an ACL without XINFO: as before it was asked
	}
	if err != nil {
		return redisError(fmt.Errorf("XINFO GROUPS %s: %w", key, err))
	}
	for _, g := range groups {
		if g.Name != d.cfg.Group || !idAfter(id, g.LastDeliveredID) {
			continue
		}
		ms, err := d.rdb.XRangeN(ctx, key, id, id, 1).Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
			return d.notFound(name)
		}
		if err != nil {
			return redisError(fmt.Errorf("XRANGE %s %s: %w", key, id, err))
		}
		if len(ms) == 1 {
			return source.Errorf(itemapi.ReasonUnavailable, "item %q is not read yet (the group %s has read up to %s); try again", name, g.Name, g.LastDeliveredID)
		}
	}
	return d.notFound(name)
}

// idAfter reports whether the stream entry id a comes after b ("ms-seq").
func idAfter(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ams, _ := strconv.ParseUint(am, 10, 64)
	bms, _ := strconv.ParseUint(bm, 10, 64)
	if ams != bms {
		return ams > bms
	}
	aseq, _ := strconv.ParseUint(as, 10, 64)
	bseq, _ := strconv.ParseUint(bs, 10, 64)
	return aseq > bseq
}

// Ready checks that the server answers, the credentials are accepted, and
// each stream's group (with REDIS_CREATE=false, the stream itself) exists
// and may be read; it also reports a reading loop's recent error.
func (d *Driver) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.rdb.Ping(ctx).Err(); err != nil {
		return source.Errorf(itemapi.ReasonUnavailable, "%v", d.explain(fmt.Errorf("PING: %w", err), ""))
	}
	for _, s := range d.cfg.Streams {
		err := d.rdb.XPending(ctx, s, d.cfg.Group).Err()
		if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") && d.cfg.Create {
			err = d.ensureGroup(ctx, s)
		}
		if err != nil {
			return source.Errorf(itemapi.ReasonUnavailable, "%v", d.explain(fmt.Errorf("XPENDING %s %s: %w", s, d.cfg.Group, err), s))
		}
	}
	for _, l := range d.cfg.Lists {
		n, err := d.rdb.Exists(ctx, l).Result()
		if err == nil && n == 0 && !d.cfg.Create {
			err = fmt.Errorf("list %s does not exist and REDIS_CREATE=false", l)
		}
		if err == nil {
			err = d.rdb.LLen(ctx, d.ProcessingList(l)).Err()
		}
		if err != nil {
			return source.Errorf(itemapi.ReasonUnavailable, "%v", d.explain(fmt.Errorf("list %s: %w", l, err), l))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for key, e := range d.lastErr {
		if time.Since(e.at) < 30*time.Second {
			return source.Errorf(itemapi.ReasonUnavailable, "reading %s: %v", key, e.err)
		}
	}
	return nil
}

// explain adds what a user should check to the errors a user can fix.
func (d *Driver) explain(err error, key string) error {
	msg := err.Error()
	var ne net.Error
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "invalid password"):
		return fmt.Errorf("redis at %v rejected the credentials (check REDIS_USERNAME and REDIS_PASSWORD): %w", d.cfg.Addrs, err)
	case strings.Contains(msg, "NOPERM"):
		return fmt.Errorf("the ACL of user %q forbids a command the ambassador needs on %s (it needs XREADGROUP XACK XADD XCLAIM XAUTOCLAIM XPENDING XGROUP EVALSHA EVAL for streams, and XRANGE XREVRANGE XDEL to redrive; LPOP RPUSH LREM LPOS LRANGE BLMOVE INCR HSET for lists, and HGET HDEL to redrive): %w", d.cfg.Username, key, err)
	case strings.HasPrefix(msg, "NOGROUP") || strings.Contains(msg, "NOGROUP") || strings.Contains(msg, "requires the key to exist"):
		return fmt.Errorf("stream %s or its group %s does not exist (REDIS_CREATE=%v): %w", key, d.cfg.Group, d.cfg.Create, err)
	case errors.As(err, &ne), strings.Contains(msg, "connection refused"), errors.Is(err, io.EOF):
		return fmt.Errorf("redis at %v is unreachable: %w", d.cfg.Addrs, err)
	}
	return err
}

// ErrorReason classifies errors that did not carry a reason already.
func (d *Driver) ErrorReason(err error) itemapi.Reason { return reasonOf(err) }

func reasonOf(err error) itemapi.Reason {
	var ne net.Error
	var re redis.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrClosed),
		errors.Is(err, io.EOF), errors.As(err, &ne):
		return itemapi.ReasonUnavailable
	case errors.As(err, &re):
		msg := re.Error()
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOPERM", "WRONGPASS", "NOAUTH", "BUSY", "OOM"} {
			if strings.HasPrefix(msg, p) {
				return itemapi.ReasonUnavailable
			}
		}
	}
	return itemapi.ReasonInternal
}

func redisError(err error) error {
	return &source.Error{Reason: reasonOf(err), Err: err}
}

// Close stops reading, closes the client and ends the watch streams. Held
// entries stay pending in Redis (and list values in the processing list):
// a restart with the same REDIS_CONSUMER reads them again.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		d.wg.Wait()
		_ = d.rdb.Close()
		d.idx.Close()
		d.log.Info("closed")
	})
	return nil
}

// splitName splits an item name into its key and the entry id (or the
// list value's number).
func splitName(name string) (key, id string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// redisLogger sends go-redis's log lines to slog at info level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.InfoContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}
