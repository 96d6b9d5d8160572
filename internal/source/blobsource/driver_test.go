package blobsource_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/blobsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

const patience = 20 * time.Second

// newDriver starts a driver over b and waits for its first listing.
func newDriver(t *testing.T, b *blob.Bucket, cfg blobsource.Config) *blobsource.Driver {
	t.Helper()
	d, err := blobsource.New(context.Background(), b, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := d.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t testing.TB, b *blob.Bucket, key, content, contentType string) {
	t.Helper()
	if err := b.WriteAll(context.Background(), key, []byte(content), &blob.WriterOptions{ContentType: contentType}); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
}

func exists(t testing.TB, b *blob.Bucket, key string) bool {
	t.Helper()
	ok, err := b.Exists(context.Background(), key)
	if err != nil {
		t.Fatalf("exists %s: %v", key, err)
	}
	return ok
}

// waitListed waits until the driver lists exactly want (sorted).
func waitListed(t testing.TB, d source.Driver, want ...string) {
	t.Helper()
	slices.Sort(want)
	src := source.New(d)
	testutil.Eventually(t, patience, "listing", func() error {
		got, err := src.ListAll(context.Background(), 0)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			return fmt.Errorf("listed %q, want %q", got, want)
		}
		return nil
	})
}

func urlConfig(bucketURL string) blobsource.Config {
	cfg := testConfig(bucketURL)
	cfg.Data = blobsource.DataURL
	cfg.Submit = false
	return cfg
}

// TestURLData: which keys are items (prefix, pattern, archives, directory
// markers), and the data of one: an object URL that opens the object.
func TestURLData(t *testing.T) {
	const bucketURL = "mem://blobsource-url-data"
	b, err := bucket.Open(context.Background(), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); bucket.DropMem("blobsource-url-data") })
	write(t, b, "in/a.mp4", "AAAA", "video/mp4")
	write(t, b, "in/sub/b c.mp4", "BB", "video/mp4")
	write(t, b, "in/c.txt", "not a match", "text/plain")
	write(t, b, "in/.done/old.mp4", "archived", "video/mp4")
	write(t, b, "in/.failed/bad.mp4", "archived", "video/mp4")
	write(t, b, "in/dir/", "", "")
	write(t, b, "other/x.mp4", "outside the prefix", "video/mp4")
	cfg := urlConfig(bucketURL)
	cfg.Pattern = "*.mp4"
	d := newDriver(t, b, cfg)
	waitListed(t, d, "a.mp4", "sub/b c.mp4")

	ctx := context.Background()
	raw, err := d.Get(ctx, "sub/b c.mp4")
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		URL, Key, ETag, ContentType string
		Size                        int64
		ModTime                     time.Time
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	if data.Key != "in/sub/b c.mp4" || data.Size != 2 || data.ContentType != "video/mp4" || data.ModTime.IsZero() || data.ETag == "" {
		t.Fatalf("data %s", raw)
	}
	if data.URL != "mem://blobsource-url-data/in/sub/b%20c.mp4" {
		t.Fatalf("url %q", data.URL)
	}
	ob, key, err := bucket.OpenObject(ctx, data.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if got, err := ob.ReadAll(ctx, key); err != nil || string(got) != "BB" {
		t.Fatalf("read %s through data.url: %q %v", data.URL, got, err)
	}
	for _, n := range []string{"c.txt", ".done/old.mp4", ".failed/bad.mp4", "dir/", "../other/x.mp4", "missing.mp4"} {
		if _, err := d.Get(ctx, n); !itemapi.IsNotFound(err) {
			t.Errorf("Get(%q) = %v, want NotFound", n, err)
		}
	}
	// An object the last poll has not seen yet is answered from the bucket.
	cfg.PollInterval = time.Hour
	d2 := newDriver(t, b, cfg)
	write(t, b, "in/late.mp4", "L", "video/mp4")
	if _, err := d2.Get(ctx, "late.mp4"); err != nil {
		t.Fatalf("Get of an object not yet polled: %v", err)
	}
}

// TestAckActions: move (done and failed archives), delete, keep.
func TestAckActions(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		onDone, onFailed string
		doneKey, failKey string // where the objects end up ("" = nowhere)
		listedAfter      []string
	}{
		{"move", "move", "in/.done/ok.json", "in/.failed/bad.json", nil},
		{"delete", "move", "", "in/.failed/bad.json", nil},
		{"keep", "delete", "in/ok.json", "", []string{"ok.json"}},
	} {
		t.Run(c.onDone+"-"+c.onFailed, func(t *testing.T) {
			b := memblob.OpenBucket(nil)
			defer b.Close()
			write(t, b, "in/ok.json", `{"a":1}`, "application/json")
			write(t, b, "in/bad.json", `{"a":2}`, "application/json")
			cfg := testConfig("mem://")
			cfg.OnDone, cfg.OnFailed = c.onDone, c.onFailed
			d := newDriver(t, b, cfg)
			waitListed(t, d, "bad.json", "ok.json")
			if err := d.Ack(ctx, "ok.json", itemapi.Succeeded); c.onDone == "keep" && !itemapi.IsMethodNotAllowed(err) {
				t.Fatalf("ack with keep: %v, want MethodNotAllowed", err)
			} else if c.onDone != "keep" && err != nil {
				t.Fatal(err)
			}
			if err := d.Ack(ctx, "bad.json", itemapi.Failed); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"in/.done/ok.json", "in/.failed/bad.json", "in/ok.json", "in/bad.json"} {
				want := k == c.doneKey || k == c.failKey
				if got := exists(t, b, k); got != want {
					t.Errorf("%s exists = %v, want %v", k, got, want)
				}
			}
			waitListed(t, d, c.listedAfter...)
			if err := d.Ack(ctx, "bad.json", itemapi.Failed); !itemapi.IsNotFound(err) {
				t.Errorf("second ack of bad.json: %v, want NotFound", err)
			}
		})
	}
}

// testCrashBetweenCopyAndDelete: an ack that stops after its copy leaves
// the object in both places (never in none); acknowledging again finishes
// the move.
func testCrashBetweenCopyAndDelete(t *testing.T, b *blob.Bucket, bucketURL string) {
	ctx := context.Background()
	write(t, b, "in/dir/x y.json", `{"x":1}`, "application/json")
	d := newDriver(t, b, testConfig(bucketURL))
	waitListed(t, d, "dir/x y.json")
	crash := errors.New("simulated crash between copy and delete")
	d.SetTestHookAfterCopy(func(string) error { return crash })
	if err := d.Ack(ctx, "dir/x y.json", itemapi.Succeeded); !errors.Is(err, crash) {
		t.Fatalf("ack with a crash after the copy: %v", err)
	}
	if !exists(t, b, "in/dir/x y.json") || !exists(t, b, "in/.done/dir/x y.json") {
		t.Fatal("after a crash between copy and delete the object must be in both places")
	}
	waitListed(t, d, "dir/x y.json") // still an item: the next ack finishes it
	d.SetTestHookAfterCopy(nil)
	if err := d.Ack(ctx, "dir/x y.json", itemapi.Succeeded); err != nil {
		t.Fatalf("ack again after the crash: %v", err)
	}
	if exists(t, b, "in/dir/x y.json") || !exists(t, b, "in/.done/dir/x y.json") {
		t.Fatal("the second ack did not finish the move")
	}
	if got, err := b.ReadAll(ctx, "in/.done/dir/x y.json"); err != nil || string(got) != `{"x":1}` {
		t.Fatalf("archived content %q %v", got, err)
	}
	waitListed(t, d)
	if err := d.Ack(ctx, "dir/x y.json", itemapi.Succeeded); !itemapi.IsNotFound(err) {
		t.Fatalf("third ack: %v, want NotFound", err)
	}
}

func TestCrashBetweenCopyAndDeleteMemblob(t *testing.T) {
	b := memblob.OpenBucket(nil)
	defer b.Close()
	testCrashBetweenCopyAndDelete(t, b, "mem://")
}

// testRecovery: a driver that starts over a bucket where a move was
// interrupted (the same bytes in the item and, newer, in the archive)
// finishes it; an item whose archive copy differs, or is older, stays.
// margin is the providers' time granularity (S3 keeps whole seconds).
func testRecovery(t *testing.T, b *blob.Bucket, bucketURL string, margin time.Duration) {
	ctx := context.Background()
	write(t, b, "in/interrupted.json", `{"n":1}`, "application/json")
	write(t, b, "in/changed.json", `{"n":2}`, "application/json")
	write(t, b, "in/.failed/changed.json", `{"n":"older run"}`, "application/json")
	write(t, b, "in/.done/again.json", `{"n":3}`, "application/json")
	waitNewer(t, b, margin, "in/.done/again.json", "in/interrupted.json")
	write(t, b, "in/again.json", `{"n":3}`, "application/json") // uploaded again after its archive copy
	if err := b.Copy(ctx, "in/.done/interrupted.json", "in/interrupted.json", nil); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, b, testConfig(bucketURL))
	waitListed(t, d, "again.json", "changed.json")
	if exists(t, b, "in/interrupted.json") || !exists(t, b, "in/.done/interrupted.json") {
		t.Fatal("recovery did not finish the interrupted move")
	}
	for _, k := range []string{"in/again.json", "in/changed.json", "in/.done/again.json", "in/.failed/changed.json"} {
		if !exists(t, b, k) {
			t.Errorf("%s was removed", k)
		}
	}
}

// TestRecoveryFileblob runs testRecovery on a directory with .attrs
// sidecars (which carry the MD5 that listings need). memblob is left out:
// its Copy keeps the source's modification time, and an in-memory bucket
// does not outlive a crash anyway.
func TestRecoveryFileblob(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testRecovery(t, b, "file:///unused", 10*time.Millisecond)
}

// waitNewer waits until the clock is margin past the modification times of
// keys, so that the next write is strictly newer on the provider.
func waitNewer(t *testing.T, b *blob.Bucket, margin time.Duration, keys ...string) {
	t.Helper()
	for _, key := range keys {
		a, err := b.Attributes(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, patience, "clock past "+key, func() error {
			if !time.Now().After(a.ModTime.Add(margin)) {
				return errors.New("not yet")
			}
			return nil
		})
	}
}

// TestSubmit: the item is listed (and announced) before Submit returns, as
// a JSON object with its content type; without BUCKET_SUBMIT it is refused.
func TestSubmit(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	cfg := testConfig("mem://")
	cfg.PollInterval = time.Hour // only the driver's own change can make it visible
	d := newDriver(t, b, cfg)
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Type != itemapi.Synced {
		t.Fatalf("first event %v", ev)
	}
	name, err := d.Submit(ctx, json.RawMessage(`{"job":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "submitted/") || !strings.HasSuffix(name, ".json") {
		t.Fatalf("name %q", name)
	}
	names, _, err := d.List(ctx, source.ListOptions{})
	if err != nil || !slices.Equal(names, []string{name}) {
		t.Fatalf("listed right after submit: %q %v", names, err)
	}
	if ev := <-ch; ev != (itemapi.WatchEvent{Type: itemapi.Added, Name: name}) {
		t.Fatalf("event %v", ev)
	}
	a, err := b.Attributes(ctx, "in/"+name)
	if err != nil || a.ContentType != "application/json" {
		t.Fatalf("submitted object: %+v %v", a, err)
	}
	if _, err := d.Submit(ctx, json.RawMessage(`{"pad":"`+strings.Repeat("x", int(cfg.MaxSubmitBytes))+`"}`)); !itemapi.IsTooLarge(err) {
		t.Fatalf("submit over the limit: %v", err)
	}

	cfg.Submit = false
	d2 := newDriver(t, b, cfg)
	if _, err := d2.Submit(ctx, json.RawMessage(`{}`)); !itemapi.IsMethodNotAllowed(err) {
		t.Fatalf("submit with BUCKET_SUBMIT=false: %v", err)
	}
}

// TestJSONDataErrors: objects that cannot be an item's data.
func TestJSONDataErrors(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	write(t, b, "in/text.json", "hello", "text/plain")
	write(t, b, "in/array.json", "[1]", "application/json")
	write(t, b, "in/big.json", `{"pad":"`+strings.Repeat("x", 200)+`"}`, "application/json")
	cfg := testConfig("mem://")
	cfg.MaxDataBytes = 100
	d := newDriver(t, b, cfg)
	for n, want := range map[string]string{"text.json": "not a JSON object", "array.json": "not a JSON object"} {
		_, err := d.Get(ctx, n)
		if itemapi.ReasonOf(err) != itemapi.ReasonInternal || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(%q) = %v, want an Internal error saying %q", n, err, want)
		}
	}
	if _, err := d.Get(ctx, "big.json"); !itemapi.IsTooLarge(err) || !strings.Contains(err.Error(), "BUCKET_MAX_DATA_BYTES") {
		t.Errorf("Get(big.json) = %v, want a TooLarge error naming BUCKET_MAX_DATA_BYTES", err)
	}
}

// TestWatchDiff: polling announces objects that appear and disappear, and
// an overwritten object is not announced again.
func TestWatchDiff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	write(t, b, "in/a.json", `{}`, "")
	d := newDriver(t, b, testConfig("mem://"))
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() itemapi.WatchEvent {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(patience):
			t.Fatal("no event")
		}
		return itemapi.WatchEvent{}
	}
	for _, want := range []itemapi.WatchEvent{{Type: itemapi.Added, Name: "a.json"}, {Type: itemapi.Synced}} {
		if ev := next(); ev != want {
			t.Fatalf("event %v, want %v", ev, want)
		}
	}
	write(t, b, "in/a.json", `{"changed":true}`, "")
	write(t, b, "in/b.json", `{}`, "")
	if ev := next(); ev != (itemapi.WatchEvent{Type: itemapi.Added, Name: "b.json"}) {
		t.Fatalf("event %v, want ADDED b.json", ev)
	}
	if err := b.Delete(ctx, "in/a.json"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev != (itemapi.WatchEvent{Type: itemapi.Deleted, Name: "a.json"}) {
		t.Fatalf("event %v, want DELETED a.json", ev)
	}
}

func TestConfig(t *testing.T) {
	base := []string{"BUCKET_URL=s3://b?endpoint=http://127.0.0.1:1&use_path_style=true"}
	cfg, err := blobsource.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PollInterval != 15*time.Second || cfg.Data != "url" || cfg.OnDone != "move" || cfg.DonePrefix != ".done/" ||
		cfg.FailedPrefix != ".failed/" || cfg.Submit || cfg.MaxSubmitBytes != itemapi.MaxDataBytes || cfg.MaxDataBytes != itemapi.MaxDataBytes || cfg.ListPageSize != 1000 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg, _ := blobsource.ParseConfig([]string{"BUCKET_URL=file:///tmp"}); cfg.ListPageSize != 100000 {
		t.Fatalf("file:// page size %d", cfg.ListPageSize)
	}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{nil, "BUCKET_URL"},
		{[]string{"BUCKET_URL=s3://AKIA:secret@b"}, "credentials"},
		{[]string{"BUCKET_URL=ftp://b"}, "unsupported scheme"},
		{[]string{"BUCKET_URL=s3://b/path"}, "no path"},
		{append(base, "BUCKET_DATA=xml"), "BUCKET_DATA"},
		{append(base, "BUCKET_POLL_INTERVAL=0s"), "BUCKET_POLL_INTERVAL"},
		{append(base, "BUCKET_ON_DONE=archive"), "BUCKET_ON_DONE"},
		{append(base, "BUCKET_PATTERN=[x"), "BUCKET_PATTERN"},
		{append(base, "BUCKET_SUBMIT=true", "BUCKET_PATTERN=*.mp4"), "does not match submitted"},
		{append(base, "BUCKET_SUBMIT=true", "BUCKET_SUBMIT_PREFIX=.done/x/"), "inside an archive"},
		{append(base, "BUCKET_MAX_SUBMIT_BYTES=2000000"), "BUCKET_MAX_SUBMIT_BYTES"},
	} {
		_, err := blobsource.ParseConfig(c.env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseConfig(%q) = %v, want an error about %s", c.env, err, c.want)
		}
	}
}
