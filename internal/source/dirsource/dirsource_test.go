package dirsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

const wait = 20 * time.Second

// newDriver opens a driver over root (a new temporary directory when
// empty) with the given DIR_* settings, and waits for its initial scan.
func newDriver(t testing.TB, root string, env ...string) (*Driver, string) {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	var cfg Config
	if err := config.Parse(&cfg, append([]string{"DIR_ROOT=" + root}, env...)); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	testutil.Eventually(t, wait, "initial scan", func() error {
		if !d.scanned.Load() {
			return errors.New("not yet")
		}
		return nil
	})
	return d, root
}

func listed(t *testing.T, d *Driver) []string {
	t.Helper()
	names, _, err := d.List(context.Background(), source.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func waitListed(t *testing.T, d *Driver, want ...string) {
	t.Helper()
	slices.Sort(want)
	testutil.Eventually(t, wait, "listing", func() error {
		if got := listed(t, d); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			return fmt.Errorf("listed %q, want %q", got, want)
		}
		return nil
	})
}

func write(t *testing.T, root, name, content string) string {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeOld writes a file whose mtime is an hour ago: settled at once.
func writeOld(t *testing.T, root, name, content string) string {
	t.Helper()
	p := write(t, root, name, content)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitRescan waits until a full scan that started after the call is done.
func waitRescan(t *testing.T, d *Driver) {
	t.Helper()
	n := d.scans.Load()
	d.requestRescan()
	testutil.Eventually(t, wait, "rescan", func() error {
		if d.scans.Load() < n+2 {
			d.requestRescan()
			return errors.New("not yet")
		}
		return nil
	})
}

func reasonOf(err error) itemapi.Reason { return itemapi.ReasonOf(err) }

// collect reads a watch stream in the background.
type collector struct {
	mu  sync.Mutex
	evs []itemapi.WatchEvent
	at  []time.Time
}

func watch(t *testing.T, d *Driver) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	go func() {
		for ev := range ch {
			c.mu.Lock()
			c.evs = append(c.evs, ev)
			c.at = append(c.at, time.Now())
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) events() ([]itemapi.WatchEvent, []time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs), slices.Clone(c.at)
}

func (c *collector) addedAt(name string) (time.Time, bool) {
	evs, at := c.events()
	for i, ev := range evs {
		if ev.Type == itemapi.Added && ev.Name == name {
			return at[i], true
		}
	}
	return time.Time{}, false
}

func TestCheckName(t *testing.T) {
	d := &Driver{cfg: Config{Pattern: "*", Recursive: true}, excluded: []string{"archive/done"}}
	for _, tc := range []struct {
		name   string
		reason itemapi.Reason
	}{
		{"a.mp4", ""},
		{"dir/sub/a b é.mp4", ""},
		{"archive/x", ""},
		{"/etc/passwd", itemapi.ReasonBadRequest},
		{"../etc/passwd", itemapi.ReasonBadRequest},
		{"a/../../b", itemapi.ReasonBadRequest},
		{"a/./b", itemapi.ReasonBadRequest},
		{".", itemapi.ReasonBadRequest},
		{"..", itemapi.ReasonBadRequest},
		{"a//b", itemapi.ReasonBadRequest},
		{"a/", itemapi.ReasonBadRequest},
		{`..\x`, itemapi.ReasonBadRequest},
		{`a\b`, itemapi.ReasonBadRequest},
		{"a\x00b", itemapi.ReasonBadRequest},
		{"", itemapi.ReasonBadRequest},
		{"\xff", itemapi.ReasonBadRequest},
		{strings.Repeat("x", itemapi.MaxNameBytes+1), itemapi.ReasonBadRequest},
		{".hidden", itemapi.ReasonNotFound},
		{".done/a", itemapi.ReasonNotFound},
		{"a/.git/config", itemapi.ReasonNotFound},
		{"a.tmp", itemapi.ReasonNotFound},
		{"a.part", itemapi.ReasonNotFound},
		{"x.tmp/a", ""}, // only files are temporary by suffix
		{"archive/done", itemapi.ReasonNotFound},
		{"archive/done/a", itemapi.ReasonNotFound},
	} {
		err := d.checkName(tc.name)
		if got := reasonOf(err); got != tc.reason {
			t.Errorf("checkName(%q) = %v (reason %q), want reason %q", tc.name, err, got, tc.reason)
		}
	}
	d.cfg.Pattern = "*.mp4"
	if err := d.checkName("a.mov"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Errorf("checkName of a file DIR_PATTERN does not match: %v", err)
	}
	d.cfg.Recursive = false
	if err := d.checkName("a/b.mp4"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Errorf("checkName of a file in a subdirectory, not recursive: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	root := t.TempDir()
	file := write(t, t.TempDir(), "f", "x")
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"DIR_ROOT=" + root, "DIR_PATTERN=["}, "DIR_PATTERN"},
		{[]string{"DIR_ROOT=" + root, "DIR_PATTERN=a/*.mp4"}, "DIR_PATTERN"},
		{[]string{"DIR_ROOT=" + root, "DIR_DATA=xml"}, "DIR_DATA"},
		{[]string{"DIR_ROOT=" + root, "DIR_ON_DONE=archive"}, "DIR_ON_DONE"},
		{[]string{"DIR_ROOT=" + root, "DIR_POLL_INTERVAL=0s"}, "DIR_POLL_INTERVAL"},
		{[]string{"DIR_ROOT=" + root, "DIR_SETTLE=-1s"}, "DIR_SETTLE"},
		{[]string{"DIR_ROOT=" + root, "DIR_SUBMIT=true", "DIR_PATTERN=*.mp4"}, "does not match submitted files"},
		{[]string{"DIR_ROOT=" + root, "DIR_SUBMIT=true", "DIR_SUBMIT_SUBDIR=../x"}, "DIR_SUBMIT_SUBDIR"},
		{[]string{"DIR_ROOT=" + root, "DIR_SUBMIT=true", "DIR_SUBMIT_SUBDIR=.in"}, "DIR_SUBMIT_SUBDIR"},
		{[]string{"DIR_ROOT=" + root, "DIR_SUBMIT=true", "DIR_SUBMIT_SUBDIR=in", "DIR_RECURSIVE=false"}, "DIR_RECURSIVE"},
		{[]string{"DIR_ROOT=" + root, "DIR_SUBMIT=true", "DIR_DONE_DIR=archive", "DIR_SUBMIT_SUBDIR=archive/in"}, "inside an archive"},
		{[]string{"DIR_ROOT=" + root, "DIR_DONE_DIR=../elsewhere"}, "DIR_DONE_DIR"},
		{[]string{"DIR_ROOT=" + root, "DIR_FAILED_DIR=" + root}, "DIR_FAILED_DIR"},
		{[]string{"DIR_ROOT=" + filepath.Join(root, "missing")}, "DIR_ROOT"},
		{[]string{"DIR_ROOT=" + file}, "DIR_ROOT"},
	} {
		var cfg Config
		if err := config.Parse(&cfg, tc.env); err != nil {
			t.Fatal(err)
		}
		d, err := New(context.Background(), cfg, nil)
		if err == nil {
			d.Close()
			t.Errorf("New(%q) succeeded", tc.env)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want it to mention %q", tc.env, err, tc.want)
		}
	}
	var cfg Config
	if err := config.Parse(&cfg, nil); err == nil || !strings.Contains(err.Error(), "DIR_ROOT") {
		t.Errorf("no DIR_ROOT: %v", err)
	}
}

// TestArchiveOnAnotherFilesystem: moves are renames, so an archive
// directory on another filesystem is refused at start-up.
func TestArchiveOnAnotherFilesystem(t *testing.T) {
	root := t.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "itemq-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(shm)
	a, _ := os.Stat(root)
	b, _ := os.Stat(shm)
	if sameDevice(a, b) {
		t.Skip("/dev/shm is on the same filesystem as the temporary directory")
	}
	var cfg Config
	_ = config.Parse(&cfg, []string{"DIR_ROOT=" + root, "DIR_DONE_DIR=" + filepath.Join(shm, "done")})
	if _, err := New(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "another filesystem") {
		t.Fatalf("archive on another filesystem: %v", err)
	}
}

func TestIgnoredNames(t *testing.T) {
	root := t.TempDir()
	outside := write(t, t.TempDir(), "secret.txt", "root:x:0:0")
	for _, n := range []string{"ok.txt", "sub/ok.txt", ".hidden", ".dir/x.txt", "sub/.x.txt", "a.tmp", "b.part",
		".done/old.txt", ".failed/bad.txt", "sub/deeper/.git/config", "x.tmp/in-dir-named-tmp.txt"} {
		writeOld(t, root, n, "x")
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link-in": "ok.txt", "link-out": outside, "link-up": "../" + filepath.Base(filepath.Dir(outside)) + "/secret.txt",
		"link-etc": "/etc", "link-dir": "sub", "dangling": "nope", "link-loop": "link-loop",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := newDriver(t, root, "DIR_SETTLE=0", "DIR_POLL_INTERVAL=1h")
	want := []string{"link-in", "ok.txt", "sub/ok.txt", "x.tmp/in-dir-named-tmp.txt"}
	waitListed(t, d, want...)
	ctx := context.Background()
	for _, n := range []string{".hidden", ".dir/x.txt", "sub/.x.txt", "a.tmp", "b.part", ".done/old.txt", "fifo",
		"link-out", "link-up", "link-etc/passwd", "link-dir/ok.txt", "dangling", "link-loop"} {
		data, err := d.Get(ctx, n)
		if reasonOf(err) != itemapi.ReasonNotFound {
			t.Errorf("Get(%q) = %s, %v; want NotFound", n, data, err)
		}
	}
	for _, n := range []string{"../" + filepath.Base(filepath.Dir(outside)) + "/secret.txt", outside, "sub/../ok.txt"} {
		if _, err := d.Get(ctx, n); reasonOf(err) != itemapi.ReasonBadRequest {
			t.Errorf("Get(%q) = %v; want BadRequest", n, err)
		}
	}

	// Only files matching the pattern; not recursive.
	root2 := t.TempDir()
	for _, n := range []string{"a.mp4", "b.MP4", "c.mov", "sub/d.mp4"} {
		writeOld(t, root2, n, "x")
	}
	d2, _ := newDriver(t, root2, "DIR_PATTERN=*.mp4", "DIR_RECURSIVE=false", "DIR_POLL_INTERVAL=1h")
	waitListed(t, d2, "a.mp4")
}

// TestFileData: the default data describes the file, with a file:// URL
// an executor can open.
func TestFileData(t *testing.T) {
	root := filepath.Join(t.TempDir(), "my videos #1")
	p := writeOld(t, root, "cam 1/clip%20?.mp4", "12345")
	d, _ := newDriver(t, root, "DIR_POLL_INTERVAL=1h")
	waitListed(t, d, "cam 1/clip%20?.mp4")
	raw, err := d.Get(context.Background(), "cam 1/clip%20?.mp4")
	if err != nil {
		t.Fatal(err)
	}
	var fd FileData
	if err := json.Unmarshal(raw, &fd); err != nil {
		t.Fatal(err)
	}
	if fd.Path != p || fd.Size != 5 || fd.ModTime.IsZero() {
		t.Fatalf("data %s: want path %q, size 5", raw, p)
	}
	bucket, key, err := itemapi.SplitObjectURL(fd.URL)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(bucket)
	if err != nil || key != "clip%20?.mp4" || u.Path != filepath.ToSlash(filepath.Dir(p)) {
		t.Fatalf("url %q splits into %q %q (%v)", fd.URL, bucket, key, err)
	}
	if u, err := url.Parse(fd.URL); err != nil || u.Scheme != "file" || u.Path != filepath.ToSlash(p) || u.RawQuery != "" || u.Fragment != "" {
		t.Fatalf("url %q does not name %q", fd.URL, p)
	}
}

// TestSettle: a file that is being appended to is not listed until its size
// and mtime have been stable for DIR_SETTLE. The check is one-sided (never a
// timing target): when the file is first listed, there must have been a
// quiet time of at least the settle time since its last write.
func TestSettle(t *testing.T) {
	for _, mode := range []string{"watch", "poll"} {
		t.Run(mode, func(t *testing.T) {
			const settle = 300 * time.Millisecond
			env := []string{"DIR_SETTLE=" + settle.String(), "DIR_WATCH=" + fmt.Sprint(mode == "watch")}
			if mode == "poll" {
				env = append(env, "DIR_POLL_INTERVAL=10ms")
			} else {
				env = append(env, "DIR_POLL_INTERVAL=1h")
			}
			d, root := newDriver(t, "", env...)
			c := watch(t, d)
			p := filepath.Join(root, "growing.bin")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			// writes[i] = {start, end} of each write.
			var writes [][2]time.Time
			deadline := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(deadline) {
				start := time.Now()
				if _, err := f.Write([]byte("more data\n")); err != nil {
					t.Fatal(err)
				}
				writes = append(writes, [2]time.Time{start, time.Now()})
				time.Sleep(20 * time.Millisecond)
			}
			f.Close()
			testutil.Eventually(t, wait, "listed once settled", func() error {
				if _, ok := c.addedAt("growing.bin"); !ok {
					return errors.New("not listed")
				}
				return nil
			})
			at, _ := c.addedAt("growing.bin")
			// mtimes come from a coarse kernel clock: allow some slack.
			const slack = 30 * time.Millisecond
			quiet := false
			for i, w := range writes {
				if w[1].After(at) {
					break
				}
				next := at
				if i+1 < len(writes) && writes[i+1][0].Before(at) {
					next = writes[i+1][0]
				}
				if next.Sub(w[1]) >= settle-slack {
					quiet = true
				}
			}
			if !quiet {
				t.Fatalf("listed at %v, but the file was never quiet for %v before that (writes every ~20ms)", at.Format(time.StampMicro), settle)
			}
		})
	}
}

// TestSettleOldFile: a file whose mtime is already older than the settle
// time is listed at once; a fresh one only later.
func TestSettleOldFile(t *testing.T) {
	d, root := newDriver(t, "", "DIR_SETTLE=1h", "DIR_POLL_INTERVAL=10ms")
	writeOld(t, root, "old.txt", "x")
	waitListed(t, d, "old.txt")
	write(t, root, "fresh.txt", "x")
	testutil.Eventually(t, wait, "pending", func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, ok := d.pending["fresh.txt"]; !ok {
			return errors.New("fresh.txt not seen yet")
		}
		return nil
	})
	if got := listed(t, d); !slices.Equal(got, []string{"old.txt"}) {
		t.Fatalf("listed %q before fresh.txt settled", got)
	}
	if _, err := d.Get(context.Background(), "fresh.txt"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("Get of an unsettled file: %v", err)
	}
	if err := d.Ack(context.Background(), "fresh.txt", itemapi.Succeeded); reasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("Ack of an unsettled file: %v", err)
	}
	// Once its mtime is old enough, it is listed.
	old := time.Now().Add(-2 * time.Hour)
	_ = os.Chtimes(filepath.Join(root, "fresh.txt"), old, old)
	waitListed(t, d, "fresh.txt", "old.txt")
}

func TestAck(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "archive")
	for _, tc := range []struct {
		name             string
		env              []string
		succeeded, faild string // where the files go, relative to root ("" gone)
		outsideRoot      string
	}{
		{name: "move", env: nil, succeeded: ".done/x/y/a.txt", faild: ".failed/b.txt"},
		{name: "move-relative", env: []string{"DIR_DONE_DIR=archive/ok", "DIR_FAILED_DIR=archive/bad"}, succeeded: "archive/ok/x/y/a.txt", faild: "archive/bad/b.txt"},
		{name: "move-outside", env: []string{"DIR_DONE_DIR=" + elsewhere + "/ok", "DIR_FAILED_DIR=" + elsewhere + "/bad"}, outsideRoot: elsewhere, succeeded: "ok/x/y/a.txt", faild: "bad/b.txt"},
		{name: "delete", env: []string{"DIR_ON_DONE=delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"DIR_SETTLE=0", "DIR_POLL_INTERVAL=20ms"}, tc.env...)
			d, root := newDriver(t, "", env...)
			write(t, root, "x/y/a.txt", "a")
			write(t, root, "b.txt", "b")
			write(t, root, "c.txt", "c")
			waitListed(t, d, "x/y/a.txt", "b.txt", "c.txt")
			ctx := context.Background()
			if err := d.Ack(ctx, "x/y/a.txt", itemapi.Succeeded); err != nil {
				t.Fatal(err)
			}
			if err := d.Ack(ctx, "b.txt", itemapi.Failed); err != nil {
				t.Fatal(err)
			}
			// Gone from the index at once, not after an event.
			if got := listed(t, d); !slices.Equal(got, []string{"c.txt"}) {
				t.Fatalf("right after Ack: listed %q", got)
			}
			if _, err := d.Get(ctx, "b.txt"); reasonOf(err) != itemapi.ReasonNotFound {
				t.Fatalf("Get after Ack: %v", err)
			}
			if err := d.Ack(ctx, "b.txt", itemapi.Failed); reasonOf(err) != itemapi.ReasonNotFound {
				t.Fatalf("second Ack: %v", err)
			}
			base := root
			if tc.outsideRoot != "" {
				base = tc.outsideRoot
			}
			for src, dst := range map[string]string{"x/y/a.txt": tc.succeeded, "b.txt": tc.faild} {
				if _, err := os.Lstat(filepath.Join(root, src)); !os.IsNotExist(err) {
					t.Errorf("%s still in place: %v", src, err)
				}
				if dst == "" {
					continue
				}
				if b, err := os.ReadFile(filepath.Join(base, dst)); err != nil || len(b) != 1 {
					t.Errorf("%s not archived at %s: %v", src, dst, err)
				}
			}
			// Archived files are never listed again, even after rescans.
			write(t, root, "marker.txt", "m")
			waitListed(t, d, "c.txt", "marker.txt")
			waitRescan(t, d)
			if got := listed(t, d); !slices.Equal(got, []string{"c.txt", "marker.txt"}) {
				t.Fatalf("after a rescan: listed %q", got)
			}
			if _, err := d.Get(ctx, "archive/ok/x/y/a.txt"); reasonOf(err) != itemapi.ReasonNotFound {
				t.Fatalf("Get of an archived file: %v", err)
			}
		})
	}
	t.Run("keep", func(t *testing.T) {
		d, root := newDriver(t, "", "DIR_ON_DONE=keep", "DIR_SETTLE=0")
		write(t, root, "a.txt", "a")
		waitListed(t, d, "a.txt")
		err := d.Ack(context.Background(), "a.txt", itemapi.Succeeded)
		if reasonOf(err) != itemapi.ReasonMethodNotAllowed || !strings.Contains(err.Error(), "keep") {
			t.Fatalf("Ack with DIR_ON_DONE=keep: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "a.txt")); err != nil {
			t.Fatal(err)
		}
		waitListed(t, d, "a.txt")
	})
}

// TestSubmit: submissions are written atomically (no reader ever sees a
// partial or temporary file) and are listed before Submit returns, even
// with a long settle time.
func TestSubmit(t *testing.T) {
	d, root := newDriver(t, "", "DIR_SUBMIT=true", "DIR_SUBMIT_SUBDIR=in/coming", "DIR_DATA=json", "DIR_SETTLE=1h", "DIR_POLL_INTERVAL=10ms")
	c := watch(t, d)
	ctx := context.Background()
	// A reader reads every visible file of the submission directory while
	// the submissions are written: it never sees a partial one.
	stopReader := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			ents, _ := os.ReadDir(filepath.Join(root, "in/coming"))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, "in/coming", e.Name()))
				if err == nil && !json.Valid(b) {
					readerErr <- fmt.Errorf("read a partial submission %s (%d bytes)", e.Name(), len(b))
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	names := make([]string, 20)
	errs := make([]error, 20)
	for i := range names {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Appendf(nil, `{"job":%d,"pad":%q}`, i, strings.Repeat("x", 64<<10))
			names[i], errs[i] = d.Submit(ctx, body)
			if errs[i] != nil {
				return
			}
			got, err := d.Get(ctx, names[i])
			if err != nil {
				errs[i] = fmt.Errorf("Get right after Submit: %w", err)
			} else if string(got) != string(body) {
				errs[i] = fmt.Errorf("Get right after Submit: %d bytes, want %d", len(got), len(body))
			}
		}(i)
	}
	wg.Wait()
	close(stopReader)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "in/coming/job-") || !strings.HasSuffix(n, ".json") {
			t.Fatalf("submitted name %q", n)
		}
	}
	slices.Sort(names)
	if got := listed(t, d); !slices.Equal(got, slices.Compact(slices.Clone(names))) || len(got) != 20 {
		t.Fatalf("listed %q, want the 20 submissions", got)
	}
	ents, err := os.ReadDir(filepath.Join(root, "in/coming"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 20 {
		t.Fatalf("%d files in the submission directory, want 20 (no temporary files left)", len(ents))
	}
	// Rescans (every 10ms) keep them, and no watcher ever saw a temporary name.
	write(t, root, "marker.json", "{}")
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(filepath.Join(root, "marker.json"), old, old)
	testutil.Eventually(t, wait, "marker listed", func() error {
		if _, ok := c.addedAt("marker.json"); !ok {
			return errors.New("not yet")
		}
		return nil
	})
	evs, _ := c.events()
	for _, ev := range evs {
		if ev.Type != itemapi.Synced && (ev.Type != itemapi.Added || !(strings.HasPrefix(ev.Name, "in/coming/job-") || ev.Name == "marker.json")) {
			t.Fatalf("unexpected watch event %v", ev)
		}
	}

	d2, _ := newDriver(t, "")
	if _, err := d2.Submit(ctx, []byte(`{}`)); reasonOf(err) != itemapi.ReasonMethodNotAllowed {
		t.Fatalf("Submit with DIR_SUBMIT=false: %v", err)
	}
}

// TestUnreadable: a file that cannot be served is an error for that item
// only; one that is gone or no longer a regular file is a NotFound and
// leaves the index.
func TestUnreadable(t *testing.T) {
	d, root := newDriver(t, "", "DIR_DATA=json", "DIR_WATCH=false", "DIR_POLL_INTERVAL=1h", "DIR_SETTLE=0", "DIR_MAX_DATA_BYTES=100")
	for n, content := range map[string]string{
		"ok.json": `{"a":1}`, "text.json": "hello", "array.json": "[1,2]", "big.json": `{"pad":"` + strings.Repeat("x", 200) + `"}`,
		"fifo.json": `{}`, "dir.json": `{}`, "gone.json": `{}`, "empty.json": ``,
	} {
		write(t, root, n, content)
	}
	d.requestRescan()
	// big.json, over DIR_MAX_DATA_BYTES, is refused where it enters: not
	// listed (see TestRefusedFilesAreLoggedOnceAndCounted).
	waitListed(t, d, "array.json", "dir.json", "empty.json", "fifo.json", "gone.json", "ok.json", "text.json")
	ctx := context.Background()
	if _, err := d.Get(ctx, "big.json"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Errorf("Get(big.json) = %v, want NotFound", err)
	}
	for n, want := range map[string]string{"text.json": "not a JSON object", "array.json": "not a JSON object", "empty.json": "not a JSON object"} {
		_, err := d.Get(ctx, n)
		if reasonOf(err) != itemapi.ReasonInternal || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(%q) = %v, want an Internal error saying %q", n, err, want)
		}
	}
	// Replaced by a FIFO (opening it must not block), by a directory, removed.
	_ = os.Remove(filepath.Join(root, "fifo.json"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(root, "dir.json"))
	_ = os.Mkdir(filepath.Join(root, "dir.json"), 0o755)
	_ = os.Remove(filepath.Join(root, "gone.json"))
	for _, n := range []string{"fifo.json", "dir.json", "gone.json"} {
		if _, err := d.Get(ctx, n); reasonOf(err) != itemapi.ReasonNotFound {
			t.Errorf("Get(%q) = %v, want NotFound", n, err)
		}
		if _, ok := d.idx.Get(n); ok {
			t.Errorf("%q still indexed after Get found it gone", n)
		}
	}
	if got, err := d.Get(ctx, "ok.json"); err != nil || string(got) != `{"a":1}` {
		t.Fatalf("Get(ok.json) = %s, %v", got, err)
	}
	// A permission error (which root never gets, so it is made up here) is
	// an error of the item, which stays listed.
	err := d.accessError(d.ref.Load().r, "ok.json", &fs.PathError{Op: "open", Path: "ok.json", Err: syscall.EACCES})
	if reasonOf(err) != itemapi.ReasonInternal || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("permission error: %v", err)
	}
	if _, ok := d.idx.Get("ok.json"); !ok {
		t.Fatal("a permission error dropped the item")
	}

	// DIR_DATA=file: a FIFO in place of a file is gone too.
	d2, root2 := newDriver(t, "", "DIR_WATCH=false", "DIR_POLL_INTERVAL=1h", "DIR_SETTLE=0")
	write(t, root2, "a.mp4", "x")
	d2.requestRescan()
	waitListed(t, d2, "a.mp4")
	_ = os.Remove(filepath.Join(root2, "a.mp4"))
	_ = syscall.Mkfifo(filepath.Join(root2, "a.mp4"), 0o644)
	if _, err := d2.Get(ctx, "a.mp4"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("Get of a FIFO: %v", err)
	}
}

// TestSymlinks: a symlink to a file inside the root is an item; one that
// leads outside is never listed nor read, even when it is retargeted after
// it was listed.
func TestSymlinks(t *testing.T) {
	root := t.TempDir()
	outsideDir := t.TempDir()
	write(t, outsideDir, "secret.json", `{"secret":"root:x:0:0"}`)
	writeOld(t, root, "real/data.json", `{"ok":true}`)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("real/data.json", filepath.Join(root, "in.json")))
	// Climbs above the root and back in: refused all the same.
	must(os.Symlink("../"+filepath.Base(root)+"/real/data.json", filepath.Join(root, "in-up.json")))
	must(os.Symlink(filepath.Join(outsideDir, "secret.json"), filepath.Join(root, "out.json")))
	must(os.Symlink(outsideDir, filepath.Join(root, "outdir")))
	d, _ := newDriver(t, root, "DIR_DATA=json", "DIR_WATCH=false", "DIR_POLL_INTERVAL=1h", "DIR_SETTLE=0")
	waitListed(t, d, "in.json", "real/data.json")
	ctx := context.Background()
	if got, err := d.Get(ctx, "in.json"); err != nil || string(got) != `{"ok":true}` {
		t.Fatalf("Get(in.json) = %s, %v", got, err)
	}
	for _, n := range []string{"out.json", "in-up.json", "outdir/secret.json"} {
		got, err := d.Get(ctx, n)
		if reasonOf(err) != itemapi.ReasonNotFound || strings.Contains(string(got)+fmt.Sprint(err), "root:x") {
			t.Fatalf("Get(%q) = %s, %v; want NotFound", n, got, err)
		}
	}
	// Retarget the listed link outside: it is not read, and leaves the index.
	must(os.Remove(filepath.Join(root, "in.json")))
	must(os.Symlink(filepath.Join(outsideDir, "secret.json"), filepath.Join(root, "in.json")))
	got, err := d.Get(ctx, "in.json")
	if reasonOf(err) != itemapi.ReasonNotFound || strings.Contains(string(got)+fmt.Sprint(err), "root:x") {
		t.Fatalf("Get of a link retargeted outside = %s, %v; want NotFound", got, err)
	}
	waitListed(t, d, "real/data.json")
	// A relative link that climbs out through "..".
	must(os.Remove(filepath.Join(root, "in.json")))
	must(os.Symlink("../"+filepath.Base(outsideDir)+"/secret.json", filepath.Join(root, "in.json")))
	waitRescan(t, d)
	if got := listed(t, d); !slices.Equal(got, []string{"real/data.json"}) {
		t.Fatalf("listed %q", got)
	}
	if _, err := d.Get(ctx, "in.json"); reasonOf(err) != itemapi.ReasonNotFound {
		t.Fatalf("Get of a link climbing out: %v", err)
	}
}

// TestWatchTree: fsnotify follows new subdirectories, directories renamed
// within the root or moved in, and removed trees (no rescans help here).
func TestWatchTree(t *testing.T) {
	d, root := newDriver(t, "", "DIR_SETTLE=0", "DIR_POLL_INTERVAL=1h")
	write(t, root, "a/b/c/f.txt", "f")
	waitListed(t, d, "a/b/c/f.txt")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Rename(filepath.Join(root, "a"), filepath.Join(root, "z")))
	waitListed(t, d, "z/b/c/f.txt")
	// The watch of the moved directory reports under its new name.
	write(t, root, "z/b/c/g.txt", "g")
	waitListed(t, d, "z/b/c/f.txt", "z/b/c/g.txt")
	// A tree moved in from outside the root.
	outside := t.TempDir()
	write(t, outside, "in/x/h.txt", "h")
	must(os.Rename(filepath.Join(outside, "in"), filepath.Join(root, "in")))
	waitListed(t, d, "in/x/h.txt", "z/b/c/f.txt", "z/b/c/g.txt")
	write(t, root, "in/x/y/i.txt", "i")
	waitListed(t, d, "in/x/h.txt", "in/x/y/i.txt", "z/b/c/f.txt", "z/b/c/g.txt")
	// Removed trees; a directory moved out of sight (hidden).
	must(os.RemoveAll(filepath.Join(root, "z")))
	must(os.Rename(filepath.Join(root, "in/x"), filepath.Join(root, "in/.x")))
	waitListed(t, d)
	// Written under a temporary name, then renamed: only the final name.
	c := watch(t, d)
	write(t, root, "v.mp4.part", "partial")
	must(os.Rename(filepath.Join(root, "v.mp4.part"), filepath.Join(root, "v.mp4")))
	waitListed(t, d, "v.mp4")
	evs, _ := c.events()
	for _, ev := range evs {
		if ev.Name != "" && ev.Name != "v.mp4" {
			t.Fatalf("watch event %v", ev)
		}
	}
}

// TestRescanWithoutEvents: with fsnotify off, the periodic rescan finds new
// files and drops removed ones (without a Get to notice), whole trees too.
func TestRescanWithoutEvents(t *testing.T) {
	d, root := newDriver(t, "", "DIR_WATCH=false", "DIR_POLL_INTERVAL=10ms", "DIR_SETTLE=0")
	write(t, root, "a.txt", "a")
	write(t, root, "t/u/b.txt", "b")
	write(t, root, "t/c.txt", "c")
	waitListed(t, d, "a.txt", "t/c.txt", "t/u/b.txt")
	_ = os.Remove(filepath.Join(root, "a.txt"))
	waitListed(t, d, "t/c.txt", "t/u/b.txt")
	_ = os.RemoveAll(filepath.Join(root, "t"))
	waitListed(t, d)
}

// TestRootReplaced: Ready fails while the root is gone; a new directory at
// the same path is opened again and scanned.
func TestRootReplaced(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	write(t, root, "a.txt", "a")
	d, _ := newDriver(t, root, "DIR_SETTLE=0", "DIR_POLL_INTERVAL=1h")
	ctx := context.Background()
	if err := d.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := d.Ready(ctx); reasonOf(err) != itemapi.ReasonUnavailable {
		t.Fatalf("Ready with the root removed: %v", err)
	}
	write(t, root, "b.txt", "b")
	testutil.Eventually(t, wait, "ready again", func() error { return d.Ready(ctx) })
	waitListed(t, d, "b.txt")
	write(t, root, "c.txt", "c")
	waitListed(t, d, "b.txt", "c.txt")
}

func TestFileInfoMark(t *testing.T) {
	for _, size := range []int64{0, 1, 1 << 40, 1<<63 - 1} {
		for _, mark := range []bool{false, true} {
			v := makeInfo(size, 42, mark)
			if v.size() != size || v.marked() != mark || v.mtime != 42 {
				t.Fatalf("makeInfo(%d, 42, %v) = size %d mark %v", size, mark, v.size(), v.marked())
			}
		}
	}
}

// TestScanLargeDirectory: a directory whose entries take many getdents
// buffers and many batches is read whole, by the initial scan and by
// rescans (which only state the files they do not know).
func TestScanLargeDirectory(t *testing.T) {
	root := t.TempDir()
	const n = 3000
	var want []string
	pad := strings.Repeat("x", 100)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("big/%s-%05d.dat", pad, i)
		writeOld(t, root, name, "x")
		want = append(want, name)
		if i%100 == 0 {
			writeOld(t, root, fmt.Sprintf("big/.%s-%05d.dat", pad, i), "hidden")
		}
	}
	d, _ := newDriver(t, root, "DIR_WATCH=false", "DIR_POLL_INTERVAL=1h", "DIR_SETTLE=0")
	waitListed(t, d, want...)
	// Remove some, add some: a rescan sees both.
	for i := 0; i < n; i += 7 {
		_ = os.Remove(filepath.Join(root, filepath.FromSlash(want[i])))
	}
	var after []string
	for i, name := range want {
		if i%7 != 0 {
			after = append(after, name)
		}
	}
	for i := n; i < n+50; i++ {
		name := fmt.Sprintf("big/%s-%05d.dat", pad, i)
		writeOld(t, root, name, "x")
		after = append(after, name)
	}
	waitRescan(t, d)
	waitListed(t, d, after...)
}
