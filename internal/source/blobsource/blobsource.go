// Package blobsource is the source driver over a bucket of any gocloud.dev
// blob provider (S3 and S3-compatible servers, GCS, Azure Blob, local files,
// memory): the objects under BUCKET_PREFIX whose base names match
// BUCKET_PATTERN are the items, named by their keys relative to the prefix.
//
// The driver keeps an index of the item names and a few list attributes
// (size, modification time, MD5), refreshed by polling the provider's paged
// listing every BUCKET_POLL_INTERVAL; watch streams the differences. Get reads
// the object's attributes (or, with BUCKET_DATA=json, its content) from the
// bucket itself. Acknowledging an item archives it by copy-then-delete under
// BUCKET_DONE_PREFIX or BUCKET_FAILED_PREFIX, deletes it, or keeps it.
package blobsource

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// Driver is the bucket driver. Create one with New or Open.
type Driver struct {
	cfg       Config
	b         *blob.Bucket
	ownBucket bool
	log       *slog.Logger
	idx       *source.Index[attrs]
	health    health

	// mu orders the poll's changes to the index against the driver's own
	// (submit, ack, get of a vanished object); see poll.
	mu      sync.Mutex
	gen     uint32
	recent  map[string]struct{}
	pollErr error

	synced     atomic.Bool
	recovered  atomic.Bool
	ifNotExist atomic.Bool // the provider accepts conditional writes
	kick       chan struct{}
	cancel     context.CancelFunc
	done       chan struct{}
	closeOnce  sync.Once
	locks      [64]sync.Mutex // serialise acks of one name

	// testHookAfterCopy, when set, runs between the copy and the delete of
	// a move; an error stops the ack there (a simulated crash).
	testHookAfterCopy func(key string) error
}

// attrs is what the index holds per item: enough for a cheap diff.
type attrs struct {
	size int64
	mod  int64  // modification time, Unix nanoseconds
	md5  string // raw MD5 digest, "" when the provider gives none
	gen  uint32 // the poll that last saw it (or the driver change that made it)
}

var (
	_ source.Driver       = (*Driver)(nil)
	_ source.Watcher      = (*Driver)(nil)
	_ source.Submitter    = (*Driver)(nil)
	_ source.Acker        = (*Driver)(nil)
	_ source.ReadyChecker = (*Driver)(nil)
	_ source.Counter      = (*Driver)(nil)
)

// Open reads the BUCKET_* configuration from environ, opens the bucket and
// returns the source over it. The source polls until ctx ends or it is
// closed. Credentials come from the provider's usual environment, which
// gocloud reads from the process environment.
func Open(ctx context.Context, environ []string, log *slog.Logger) (*source.Source, error) {
	cfg, err := ParseConfig(environ)
	if err != nil {
		return nil, err
	}
	b, err := openBucket(ctx, cfg.URL)
	if err != nil {
		// gocloud refuses the URL itself (an unknown parameter, a file://
		// directory that does not exist): a configuration error. Nothing
		// is sent to the provider before the first listing.
		return nil, config.Invalid(err)
	}
	d, err := New(ctx, b, cfg, log)
	if err != nil {
		b.Close()
		return nil, err
	}
	d.ownBucket = true
	log.Info("bucket source", "bucket", cfg.URL, "prefix", cfg.Prefix, "pattern", cfg.Pattern, "data", cfg.Data,
		"pollInterval", cfg.PollInterval.String(), "onDone", cfg.OnDone, "onFailed", cfg.OnFailed, "submit", cfg.Submit)
	return source.New(d, source.WithMaxSubmitBytes(cfg.MaxSubmitBytes)), nil
}

// New returns a driver over an open bucket (which the caller keeps and
// closes) and starts polling it in the background until ctx ends or the
// driver is closed. Until the first listing succeeds, List and Watch answer
// Unavailable; WaitSynced waits for it.
func New(ctx context.Context, b *blob.Bucket, cfg Config, log *slog.Logger) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		cfg:    cfg,
		b:      b,
		log:    log,
		idx:    source.NewIndex[attrs](),
		health: health{log: log, bucket: cfg.URL},
		recent: make(map[string]struct{}),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	d.ifNotExist.Store(true)
	ctx, d.cancel = context.WithCancel(ctx)
	go d.loop(ctx)
	return d, nil
}

// WaitSynced waits until the first listing of the bucket has succeeded.
func (d *Driver) WaitSynced(ctx context.Context) error {
	for !d.synced.Load() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the first listing of %s: %w (last error: %v)", d.cfg.URL, ctx.Err(), d.lastPollErr())
		case <-d.done:
			return errors.New("driver closed")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Bucket is the bucket the driver lists.
func (d *Driver) Bucket() *blob.Bucket { return d.b }

// Config is the driver's configuration.
func (d *Driver) Config() Config { return d.cfg }

// nameOf returns the item name of a key, and whether the key is an item.
func (d *Driver) nameOf(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, d.cfg.Prefix)
	if !ok || name == "" || strings.HasSuffix(key, "/") || d.cfg.isArchived(key) {
		return "", false
	}
	if d.cfg.Pattern != "" {
		if ok, _ := path.Match(d.cfg.Pattern, path.Base(key)); !ok {
			return "", false
		}
	}
	if itemapi.ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

// keyOf returns the key of an item name, and whether that key is an item.
func (d *Driver) keyOf(name string) (string, bool) {
	key := d.cfg.Prefix + name
	if n, ok := d.nameOf(key); !ok || n != name {
		return "", false
	}
	return key, true
}

func (d *Driver) notSynced(op string) error {
	if err := d.lastPollErr(); err != nil {
		return source.Errorf(itemapi.ReasonUnavailable, "%s: the bucket has not been listed yet: %w", op, err)
	}
	return source.Errorf(itemapi.ReasonUnavailable, "%s: the bucket has not been listed yet", op)
}

// List pages through the index of the last listing (and the driver's own
// changes since).
func (d *Driver) List(_ context.Context, opts source.ListOptions) ([]string, string, error) {
	if !d.synced.Load() {
		return nil, "", d.notSynced("list")
	}
	return d.idx.List(opts)
}

// objectData is an item's data with BUCKET_DATA=url.
type objectData struct {
	URL         string    `json:"url"`
	Key         string    `json:"key"`
	Size        int64     `json:"size"`
	ETag        string    `json:"etag,omitempty"`
	ModTime     time.Time `json:"modTime"`
	ContentType string    `json:"contentType,omitempty"`
}

// Get reads the object from the bucket (attributes, or content with
// BUCKET_DATA=json), so that it answers for objects the last poll has not
// seen yet, and NotFound at once for objects that are gone.
func (d *Driver) Get(ctx context.Context, name string) (json.RawMessage, error) {
	key, ok := d.keyOf(name)
	if !ok {
		return nil, source.NotFound(name)
	}
	if d.cfg.Data == DataJSON {
		return d.getJSON(ctx, name, key)
	}
	a, err := d.b.Attributes(ctx, key)
	if err != nil {
		return nil, d.objectError(name, "read attributes of "+key, err)
	}
	u, err := itemapi.JoinObjectURL(d.cfg.URL, key)
	if err != nil {
		return nil, err
	}
	return json.Marshal(objectData{URL: u, Key: key, Size: a.Size, ETag: a.ETag, ModTime: a.ModTime.UTC(), ContentType: a.ContentType})
}

func (d *Driver) getJSON(ctx context.Context, name, key string) (json.RawMessage, error) {
	r, err := d.b.NewReader(ctx, key, nil)
	if err != nil {
		return nil, d.objectError(name, "read "+key, err)
	}
	defer r.Close()
	if r.Size() > d.cfg.MaxDataBytes {
		return nil, source.Errorf(itemapi.ReasonTooLarge, "item %q: the object is %d bytes, more than BUCKET_MAX_DATA_BYTES=%d", name, r.Size(), d.cfg.MaxDataBytes)
	}
	b, err := io.ReadAll(io.LimitReader(r, d.cfg.MaxDataBytes+1))
	if err != nil {
		return nil, d.objectError(name, "read "+key, err)
	}
	if int64(len(b)) > d.cfg.MaxDataBytes {
		return nil, source.Errorf(itemapi.ReasonTooLarge, "item %q: the object is more than BUCKET_MAX_DATA_BYTES=%d", name, d.cfg.MaxDataBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, source.Errorf(itemapi.ReasonInternal, "item %q: the object is not a JSON object, which BUCKET_DATA=json needs", name)
	}
	return b, nil
}

// objectError classifies an error of an operation on one object; a missing
// object leaves the index at once.
func (d *Driver) objectError(name, what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if gcerrors.Code(err) == gcerrors.NotFound && classify(err) != problemAuth && !isBucketMissing(err) {
		d.forget(name)
		return source.NotFound(name)
	}
	p := classify(err)
	if p == problemAuth || p == problemMissing || p == problemUnreachable {
		return source.Errorf(itemapi.ReasonUnavailable, "%s: %s: %w", what, hint(p), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func isBucketMissing(err error) bool {
	var apiErr interface{ ErrorCode() string }
	if errors.As(err, &apiErr) {
		c := apiErr.ErrorCode()
		return c == "NoSuchBucket" || c == "ContainerNotFound"
	}
	return false
}

// Watch streams the index's changes.
func (d *Driver) Watch(ctx context.Context) (<-chan itemapi.WatchEvent, error) {
	if !d.synced.Load() {
		return nil, d.notSynced("watch")
	}
	return d.idx.Watch(ctx)
}

// Submit writes data as a new JSON object and adds it to the index before
// returning, so that the item is listed as soon as the client has its name.
func (d *Driver) Submit(ctx context.Context, data json.RawMessage) (string, error) {
	if !d.cfg.Submit {
		return "", source.Errorf(itemapi.ReasonMethodNotAllowed, "submit: this bucket source does not accept submissions (BUCKET_SUBMIT=false)")
	}
	if int64(len(data)) > d.cfg.MaxSubmitBytes {
		return "", source.Errorf(itemapi.ReasonTooLarge, "submit: body is %d bytes, more than BUCKET_MAX_SUBMIT_BYTES=%d", len(data), d.cfg.MaxSubmitBytes)
	}
	name := d.cfg.SubmitPrefix + source.NewName("", ".json")
	key := d.cfg.Prefix + name
	opts := &blob.WriterOptions{ContentType: "application/json", IfNotExist: d.ifNotExist.Load()}
	err := d.b.WriteAll(ctx, key, data, opts)
	if err != nil && opts.IfNotExist && gcerrors.Code(err) == gcerrors.Unimplemented {
		// The provider cannot write conditionally; the name is unique anyway.
		d.ifNotExist.Store(false)
		opts.IfNotExist = false
		err = d.b.WriteAll(ctx, key, data, opts)
	}
	if err != nil {
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return "", source.Errorf(itemapi.ReasonConflict, "submit: object %s already exists", key)
		}
		return "", d.objectError(name, "write "+key, err)
	}
	sum := md5.Sum(data)
	d.localPut(name, attrs{size: int64(len(data)), mod: time.Now().UnixNano(), md5: string(sum[:])})
	return name, nil
}

// Ack archives, deletes or keeps the item's object (keep answers
// MethodNotAllowed, as the contract asks of a source that does not archive). A move copies first and
// deletes second, so that a crash in between leaves the object in both
// places; acknowledging again (the copy overwrites with the same content)
// or the recovery of the next start finishes it.
func (d *Driver) Ack(ctx context.Context, name string, outcome itemapi.Outcome) error {
	key, ok := d.keyOf(name)
	if !ok {
		return source.NotFound(name)
	}
	mu := &d.locks[lockIndex(name)]
	mu.Lock()
	defer mu.Unlock()

	action, archive := d.cfg.OnDone, d.cfg.Prefix+d.cfg.DonePrefix
	if outcome == itemapi.Failed {
		action, archive = d.cfg.OnFailed, d.cfg.Prefix+d.cfg.FailedPrefix
	}
	if _, err := d.b.Attributes(ctx, key); err != nil {
		return d.objectError(name, "read attributes of "+key, err)
	}
	switch action {
	case ActionKeep:
		// By the contract, 405 tells the manager to keep its own record of
		// the finished item (the object stays listed).
		return source.Errorf(itemapi.ReasonMethodNotAllowed, "ack: the object stays in place (BUCKET_ON_%s=keep)", strings.ToUpper(map[itemapi.Outcome]string{itemapi.Succeeded: "done", itemapi.Failed: "failed"}[outcome]))
	case ActionDelete:
		if err := d.b.Delete(ctx, key); err != nil {
			return d.objectError(name, "delete "+key, err)
		}
	case ActionMove:
		dst := archive + name
		if err := d.b.Copy(ctx, dst, key, nil); err != nil {
			return d.objectError(name, fmt.Sprintf("copy %s to %s", key, dst), err)
		}
		if h := d.testHookAfterCopy; h != nil {
			if err := h(key); err != nil {
				return err
			}
		}
		if err := d.b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			// Gone already: a concurrent ack finished the move.
			return d.objectError(name, fmt.Sprintf("delete %s (copied to %s)", key, dst), err)
		}
		d.log.Debug("archived", "item", name, "to", dst)
	}
	d.forget(name)
	return nil
}

func lockIndex(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % 64)
}

// Ready checks that the bucket is reachable and listable with the given
// credentials, and that the last poll succeeded. A change of state is
// logged once.
func (d *Driver) Ready(ctx context.Context) error {
	ok, err := d.b.IsAccessible(ctx)
	if err == nil && !ok {
		err = errBucketMissing
	}
	if err != nil {
		if ctx.Err() != nil {
			return source.Errorf(itemapi.ReasonUnavailable, "bucket %s: readiness check: %w", d.cfg.URL, ctx.Err())
		}
		return d.health.report(err)
	}
	if perr := d.lastPollErr(); perr != nil {
		// The bucket answers again: list now rather than after the backoff.
		d.kickPoll()
		return source.Errorf(itemapi.ReasonUnavailable, "bucket %s: the last listing failed: %w", d.cfg.URL, perr)
	}
	if !d.synced.Load() {
		return source.Errorf(itemapi.ReasonUnavailable, "bucket %s: the first listing has not finished", d.cfg.URL)
	}
	return d.health.report(nil)
}

// Len is the number of items in the index.
func (d *Driver) Len() int { return d.idx.Len() }

// ErrorReason classifies errors the driver did not classify itself.
func (d *Driver) ErrorReason(err error) itemapi.Reason {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound:
		return itemapi.ReasonNotFound
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return itemapi.ReasonConflict
	case gcerrors.InvalidArgument:
		return itemapi.ReasonBadRequest
	case gcerrors.ResourceExhausted, gcerrors.DeadlineExceeded, gcerrors.PermissionDenied:
		return itemapi.ReasonUnavailable
	}
	switch classify(err) {
	case problemAuth, problemMissing, problemUnreachable:
		return itemapi.ReasonUnavailable
	}
	return itemapi.ReasonInternal
}

// Close stops polling, ends the watch streams and closes the bucket if the
// driver opened it.
func (d *Driver) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.cancel()
		<-d.done
		d.idx.Close()
		if d.ownBucket {
			err = d.b.Close()
		}
	})
	return err
}

// localPut and forget are the driver's own changes to the index. They are
// remembered until the next poll starts, so that a poll whose listing began
// before them does not undo them (see poll).
func (d *Driver) localPut(name string, a attrs) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a.gen = d.gen
	d.recent[name] = struct{}{}
	d.idx.Put(name, a)
}

func (d *Driver) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recent[name] = struct{}{}
	d.idx.Delete(name)
}

func (d *Driver) lastPollErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pollErr
}

func (d *Driver) kickPoll() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func md5Hex(s string) string { return hex.EncodeToString([]byte(s)) }
