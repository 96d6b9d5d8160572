package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/servers"
	"github.com/itemq/itemq/itemapi"
)

// TestS3 drives the real binary over a versitygw bucket: list, get, watch,
// ack (move to .done/ and .failed/), submit.
func TestS3(t *testing.T) {
	srv := servers.VersityGW(t)
	b, bucketURL := newS3Bucket(t, srv)
	b.put("in/a.mp4", "AAAA", "video/mp4")
	b.put("in/sub/b c.mp4", "BB", "video/mp4")
	b.put("in/notes.txt", "not an item", "text/plain")
	b.put("in/.done/old.mp4", "archived before", "video/mp4")
	a := startAmb(t, srv, false, "BUCKET_URL="+bucketURL, "BUCKET_PREFIX=in/",
		"BUCKET_SUBMIT=true", "BUCKET_SUBMIT_PREFIX=jobs/", "BUCKET_MAX_SUBMIT_BYTES=1000",
		"ITEMQ_WATCH_HEARTBEAT=100ms")
	a.waitListed("a.mp4", "notes.txt", "sub/b c.mp4")

	// Get: the data names the object so that an executor can open it.
	code, _, body := a.do("GET", "/v1/items/"+itemapi.EscapeName("sub/b c.mp4"), "")
	if code != 200 {
		t.Fatalf("get: %d %s", code, body)
	}
	var it struct {
		Name string
		Data struct {
			URL, Key, ETag, ContentType string
			Size                        int64
			ModTime                     time.Time
		}
	}
	if err := json.Unmarshal([]byte(body), &it); err != nil {
		t.Fatal(err)
	}
	d := it.Data
	if it.Name != "sub/b c.mp4" || d.Key != "in/sub/b c.mp4" || d.Size != 2 || d.ContentType != "video/mp4" || d.ETag == "" || d.ModTime.IsZero() {
		t.Fatalf("item %s", body)
	}
	bu, key, err := itemapi.SplitObjectURL(d.URL)
	if err != nil || bu != bucketURL || key != "in/sub/b c.mp4" {
		t.Fatalf("data.url %q splits into %q %q (%v), want %q and the key", d.URL, bu, key, err, bucketURL)
	}
	if code, _, body := a.do("GET", "/v1/items/missing.mp4", ""); code != 404 {
		t.Fatalf("get missing: %d %s", code, body)
	}
	if code, _, body := a.do("GET", "/v1/items/"+itemapi.EscapeName(".done/old.mp4"), ""); code != 404 {
		t.Fatalf("get archived: %d %s", code, body)
	}

	// Watch: the snapshot, then an upload and a removal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL()+"/v1/items?watch=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := make(chan itemapi.WatchEvent, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev itemapi.WatchEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type != itemapi.Heartbeat {
				events <- ev
			}
		}
		close(events)
	}()
	expect := func(want ...itemapi.WatchEvent) {
		t.Helper()
		for _, w := range want {
			select {
			case ev := <-events:
				if ev.Item != nil && (ev.Type != itemapi.Added || ev.Item.Name != ev.Name) {
					t.Fatalf("watch event %v carries the document of %q", ev, ev.Item.Name)
				}
				ev.Item = nil // compared by type and name
				if ev != w {
					t.Fatalf("watch event %v, want %v", ev, w)
				}
			case <-time.After(wait):
				t.Fatalf("no watch event; want %v", w)
			}
		}
	}
	expect(itemapi.WatchEvent{Type: itemapi.Added, Name: "a.mp4"}, itemapi.WatchEvent{Type: itemapi.Added, Name: "notes.txt"},
		itemapi.WatchEvent{Type: itemapi.Added, Name: "sub/b c.mp4"}, itemapi.WatchEvent{Type: itemapi.Synced})
	b.put("in/new.mp4", "N", "video/mp4")
	expect(itemapi.WatchEvent{Type: itemapi.Added, Name: "new.mp4"})
	b.del("in/notes.txt")
	expect(itemapi.WatchEvent{Type: itemapi.Deleted, Name: "notes.txt"})

	// Ack: moves, keeping the relative key.
	if code, _, body := a.do("DELETE", "/v1/items/"+itemapi.EscapeName("sub/b c.mp4")+"?outcome=succeeded", ""); code != 204 {
		t.Fatalf("ack: %d %s", code, body)
	}
	expect(itemapi.WatchEvent{Type: itemapi.Deleted, Name: "sub/b c.mp4"})
	if code, _, body := a.do("DELETE", "/v1/items/new.mp4?outcome=failed", ""); code != 204 {
		t.Fatalf("ack failed: %d %s", code, body)
	}
	expect(itemapi.WatchEvent{Type: itemapi.Deleted, Name: "new.mp4"})
	if got, _, ok := b.get("in/.done/sub/b c.mp4"); !ok || got != "BB" {
		t.Fatalf("archived object: %q %v", got, ok)
	}
	if got, _, ok := b.get("in/.failed/new.mp4"); !ok || got != "N" {
		t.Fatalf("failed object: %q %v", got, ok)
	}
	for _, k := range []string{"in/sub/b c.mp4", "in/new.mp4"} {
		if _, _, ok := b.get(k); ok {
			t.Fatalf("%s still there after the ack", k)
		}
	}
	if code, _, body := a.do("DELETE", "/v1/items/new.mp4?outcome=failed", ""); code != 404 {
		t.Fatalf("second ack: %d %s", code, body)
	}

	// Submit: listed before 201 returns, a JSON object with its content type.
	code, hdr, body := a.do("POST", "/v1/items", `{"job":"render","frames":[1,2]}`)
	if code != 201 {
		t.Fatalf("submit: %d %s", code, body)
	}
	var sub itemapi.Item
	if err := json.Unmarshal([]byte(body), &sub); err != nil || !strings.HasPrefix(sub.Name, "jobs/") || hdr.Get("Location") != itemapi.ItemPath(sub.Name) {
		t.Fatalf("submit answered %s %v", body, hdr)
	}
	names, err := a.list()
	if err != nil || !contains(names, sub.Name) {
		t.Fatalf("submitted %q not listed right after 201: %q %v", sub.Name, names, err)
	}
	if got, ct, ok := b.get("in/" + sub.Name); !ok || got != `{"job":"render","frames":[1,2]}` || ct != "application/json" {
		t.Fatalf("submitted object: %q %q %v", got, ct, ok)
	}
	expect(itemapi.WatchEvent{Type: itemapi.Added, Name: sub.Name})
	if code, _, body := a.do("POST", "/v1/items", `{"pad":"`+strings.Repeat("x", 2000)+`"}`); code != 413 {
		t.Fatalf("submit over the limit: %d %s", code, body)
	}
	a.waitListed("a.mp4", sub.Name)
	a.Alive()
}

func contains(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// TestS3WrongCredentials: the ambassador starts, says clearly and once
// that access was denied, is not ready, and does not crash.
func TestS3WrongCredentials(t *testing.T) {
	srv := servers.VersityGW(t)
	_, bucketURL := newS3Bucket(t, srv)
	for _, c := range []struct{ name, env string }{
		{"secret", "AWS_SECRET_ACCESS_KEY=wrong-secret"},
		{"key-id", "AWS_ACCESS_KEY_ID=nobody"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := startAmb(t, srv, true, "BUCKET_URL="+bucketURL, c.env)
			body := a.waitReady(503, "access to the bucket was denied")
			if !strings.Contains(body, "AWS_ACCESS_KEY_ID") {
				t.Errorf("/readyz does not say which credentials: %s", body)
			}
			if code, _, body := a.do("GET", "/v1/items", ""); code != 503 {
				t.Fatalf("list before any listing succeeded: %d %s", code, body)
			}
			a.waitRetries(3)
			for i := 0; i < 3; i++ {
				a.waitReady(503, "denied")
			}
			if n := a.logCount("bucket not usable", "access denied"); n != 1 {
				t.Fatalf("%d log records of the auth error, want 1\n%s", n, a.Logs())
			}
			a.Alive()
		})
	}
}

// TestS3MissingBucket: not ready with a clear error until the bucket is
// created, then ready without a restart.
func TestS3MissingBucket(t *testing.T) {
	srv := servers.VersityGW(t)
	const name = "itemq-created-later"
	a := startAmb(t, srv, true, "BUCKET_URL="+srv.BucketURL(name))
	a.waitReady(503, "the bucket does not exist")
	a.waitRetries(3)
	a.waitReady(503, "does not exist")
	if n := a.logCount("bucket not usable", "bucket missing"); n != 1 {
		t.Fatalf("%d log records of the missing bucket, want 1\n%s", n, a.Logs())
	}
	if err := srv.CreateBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	a.waitReady(200, "ready")
	a.waitListed()
	if a.logCount("bucket is reachable again", "") != 1 {
		t.Fatalf("no log record of the recovery\n%s", a.Logs())
	}
}

// TestS3ServerDownAndUp: while the server is down the ambassador keeps its
// last listing, is not ready, logs the outage once and does not crash; when
// the server is back it is ready again and nothing was lost.
func TestS3ServerDownAndUp(t *testing.T) {
	srv := servers.VersityGW(t)
	b, bucketURL := newS3Bucket(t, srv)
	b.put("x.json", `{"x":1}`, "application/json")
	b.put("y.json", `{"y":1}`, "application/json")
	a := startAmb(t, srv, false, "BUCKET_URL="+bucketURL)
	a.waitListed("x.json", "y.json")

	srv.Stop(t)
	a.waitReady(503, "unreachable")
	a.waitRetries(2) // each takes the SDK's own retries (about 3 s)
	a.waitReady(503, "unreachable")
	if names, err := a.list(); err != nil || len(names) != 2 {
		t.Fatalf("listing while the server is down: %q %v (the last good listing must be kept)", names, err)
	}
	if code, _, body := a.do("GET", "/v1/items/x.json", ""); code != 503 {
		t.Fatalf("get while the server is down: %d %s", code, body)
	}
	if code, _, body := a.do("DELETE", "/v1/items/x.json", ""); code != 503 {
		t.Fatalf("ack while the server is down: %d %s", code, body)
	}
	if n := a.logCount("bucket not usable", "unreachable"); n != 1 {
		t.Fatalf("%d log records of the outage, want 1\n%s", n, a.Logs())
	}

	srv.Start(t)
	a.waitReady(200, "ready")
	b.put("z.json", `{"z":1}`, "application/json")
	a.waitListed("x.json", "y.json", "z.json")
	if code, _, body := a.do("DELETE", "/v1/items/x.json", ""); code != 204 {
		t.Fatalf("ack after the restart: %d %s", code, body)
	}
	if got, _, ok := b.get(".done/x.json"); !ok || got != `{"x":1}` {
		t.Fatalf("archived x.json: %q %v", got, ok)
	}
	a.waitListed("y.json", "z.json")
	if a.logCount("bucket is reachable again", "") != 1 {
		t.Fatalf("no log record of the recovery\n%s", a.Logs())
	}
	a.Alive()
}

// TestConfigErrors: a bad configuration stops the binary at once, exit
// code 2, with a message naming the problem.
func TestConfigErrors(t *testing.T) {
	bin := testutil.Binary(t, "ambassadors/bucket")
	for _, c := range []struct{ url, want string }{
		{"s3://AKIAKEY:secret@bucket", "must not carry credentials"},
		{"s3://bucket?no_such_param=1", "no_such_param"},
		{"ftp://bucket", "unsupported scheme"},
		{"file:///nonexistent/itemq/dir", "nonexistent"},
		{"s3://bucket\nBUCKET_POLL_INTERVAL=soon", `BUCKET_POLL_INTERVAL="soon"`},
	} {
		cmd := exec.Command(bin)
		url, extra, _ := strings.Cut(c.url, "\n")
		cmd.Env = []string{"ITEMQ_ADDR=127.0.0.1:0", "BUCKET_URL=" + url, "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		if extra != "" {
			cmd.Env = append(cmd.Env, extra)
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) {
			t.Errorf("BUCKET_URL=%s: %v\n%s\nwant exit code 2 and a message with %q", c.url, err, out, c.want)
		}
		if strings.Contains(string(out), "secret") && strings.Contains(c.url, "secret") && !strings.Contains(string(out), "REDACTED") {
			t.Errorf("the secret of %s is in the output:\n%s", c.url, out)
		}
	}
}
