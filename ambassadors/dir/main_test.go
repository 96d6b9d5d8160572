package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// TestRoutes exercises every route of the contract and every error code the
// directory ambassador can answer.
func TestRoutes(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "a.json", `{"a":1}`)
	writeFile(t, root, "sub/b c.json", `{"b":2}`)
	writeFile(t, root, "broken.json", `not json`)
	s := start(t, root, "DIR_DATA=json", "DIR_SUBMIT=true", "DIR_MAX_SUBMIT_BYTES=1024", "DIR_SETTLE=0", "ITEMQ_WATCH_HEARTBEAT=100ms")

	expect := func(method, path, body string, code int, reason itemapi.Reason, contains string) string {
		t.Helper()
		got, resp := s.do(method, path, body)
		if got != code {
			t.Fatalf("%s %s: %d %s, want %d", method, path, got, resp, code)
		}
		if reason != "" {
			if st := statusOf(t, got, resp); st.Reason != reason {
				t.Fatalf("%s %s: reason %q, want %q", method, path, st.Reason, reason)
			}
		}
		if !strings.Contains(resp, contains) {
			t.Fatalf("%s %s: %s, want it to contain %q", method, path, resp, contains)
		}
		return resp
	}

	// Listing and paging.
	expect("GET", "/v1/items", "", 200, "", `{"kind":"ItemList","apiVersion":"v1","items":["a.json","broken.json","sub/b c.json"]}`)
	body := expect("GET", "/v1/items?limit=2", "", 200, "", `"items":["a.json","broken.json"]`)
	var l itemapi.ItemList
	_ = json.Unmarshal([]byte(body), &l)
	if l.Continue == "" {
		t.Fatalf("page 1 has no continue: %s", body)
	}
	expect("GET", "/v1/items?limit=2&continue="+l.Continue, "", 200, "", `"items":["sub/b c.json"]}`)
	expect("GET", "/v1/items?limit=-1", "", 400, itemapi.ReasonBadRequest, "limit")
	expect("GET", "/v1/items?limit=many", "", 400, itemapi.ReasonBadRequest, "limit")
	expect("GET", "/v1/items?limit=1&continue=!!!", "", 400, itemapi.ReasonBadRequest, "continue")
	expect("GET", "/v1/items?watch=perhaps", "", 400, itemapi.ReasonBadRequest, "watch")

	// One item; missing; unreadable.
	expect("GET", "/v1/items/a.json", "", 200, "", `{"kind":"Item","apiVersion":"v1","name":"a.json","data":{"a":1}}`)
	expect("GET", "/v1/items/"+itemapi.EscapeName("sub/b c.json"), "", 200, "", `"data":{"b":2}`)
	expect("GET", "/v1/items/missing.json", "", 404, itemapi.ReasonNotFound, "missing.json")
	expect("GET", "/v1/items/broken.json", "", 500, itemapi.ReasonInternal, "not a JSON object")
	expect("GET", "/v1/items/"+itemapi.EscapeName("../a.json"), "", 400, itemapi.ReasonBadRequest, "..")

	// Submit.
	code, hdr, body := s.doH("POST", "/v1/items", `{"job":"render","n":[1,2]}`)
	if code != 201 {
		t.Fatalf("POST: %d %s", code, body)
	}
	var it itemapi.Item
	if err := json.Unmarshal([]byte(body), &it); err != nil || it.Validate() != nil || !strings.HasPrefix(it.Name, "job-") {
		t.Fatalf("POST answered %s", body)
	}
	if loc := hdr.Get("Location"); loc != itemapi.ItemPath(it.Name) {
		t.Fatalf("Location %q, want %q", loc, itemapi.ItemPath(it.Name))
	}
	expect("GET", hdr.Get("Location"), "", 200, "", `"data":{"job":"render","n":[1,2]}`)
	if b, err := os.ReadFile(filepath.Join(root, it.Name)); err != nil || string(b) != `{"job":"render","n":[1,2]}` {
		t.Fatalf("submitted file: %q %v", b, err)
	}
	expect("POST", "/v1/items", `{"job":`, 400, itemapi.ReasonBadRequest, "JSON")
	expect("POST", "/v1/items", `[1,2]`, 400, itemapi.ReasonBadRequest, "JSON object")
	expect("POST", "/v1/items", `{"pad":"`+strings.Repeat("x", 2000)+`"}`, 413, itemapi.ReasonTooLarge, "limit")

	// Acknowledge.
	expect("DELETE", "/v1/items/a.json?outcome=maybe", "", 400, itemapi.ReasonBadRequest, "outcome")
	expect("DELETE", "/v1/items/a.json?outcome=succeeded", "", 204, "", "")
	expect("DELETE", "/v1/items/a.json?outcome=succeeded", "", 404, itemapi.ReasonNotFound, "a.json")
	expect("DELETE", "/v1/items/"+itemapi.EscapeName("sub/b c.json")+"?outcome=failed", "", 204, "", "")
	expect("DELETE", "/v1/items/never.json?outcome=failed", "", 404, itemapi.ReasonNotFound, "never.json")
	for _, p := range []string{".done/a.json", ".failed/sub/b c.json"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("not archived: %v", err)
		}
	}
	expect("GET", "/v1/items", "", 200, "", `"items":["broken.json","`+it.Name+`"]`)

	// Methods and routes that do not exist.
	expect("PUT", "/v1/items", "{}", 405, itemapi.ReasonMethodNotAllowed, "")
	expect("PATCH", "/v1/items/a.json", "{}", 405, itemapi.ReasonMethodNotAllowed, "")
	expect("GET", "/v2/items", "", 404, itemapi.ReasonNotFound, "")

	// Operations.
	expect("GET", "/healthz", "", 200, "", "ok")
	expect("GET", "/readyz", "", 200, "", "ready")
	metrics := expect("GET", "/metrics", "", 200, "", "itemq_ambassador_items 2")
	for _, m := range []string{`itemq_build_info{binary="itemq-dir"`, "itemq_ambassador_requests_total", "itemq_ambassador_watch_clients"} {
		if !strings.Contains(metrics, m) {
			t.Fatalf("metrics lack %s", m)
		}
	}

	// Watch: the items, SYNCED, changes, heartbeats.
	w := s.watch()
	testutil.Eventually(t, wait, "synced", func() error { return w.has(itemapi.Synced, "") })
	writeFile(t, root, "new.json", `{}`)
	testutil.Eventually(t, wait, "ADDED new.json", func() error { return w.has(itemapi.Added, "new.json") })
	_ = os.Remove(filepath.Join(root, "new.json"))
	testutil.Eventually(t, wait, "DELETED new.json", func() error { return w.has(itemapi.Deleted, "new.json") })
	testutil.Eventually(t, wait, "heartbeat", func() error { return w.has(itemapi.Heartbeat, "") })
	evs := w.events()
	want := []itemapi.WatchEvent{{Type: itemapi.Added, Name: "broken.json"}, {Type: itemapi.Added, Name: it.Name}, {Type: itemapi.Synced}}
	if len(evs) < 3 || !slices.Equal(evs[:3], want) {
		t.Fatalf("watch began with %v, want %v", evs, want)
	}
}

// TestDefaults: DIR_DATA=file describes the file; without DIR_SUBMIT, POST
// is refused; with DIR_ON_DONE=keep, DELETE is refused (the manager then
// keeps its own record) and the file stays.
func TestDefaults(t *testing.T) {
	root := t.TempDir()
	p := writeFile(t, root, "clips/a.mp4", "12345")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	_ = os.Chtimes(p, old, old)
	s := start(t, root, "DIR_PATTERN=*.mp4", "DIR_ON_DONE=keep")
	code, body := s.do("GET", "/v1/items/"+itemapi.EscapeName("clips/a.mp4"), "")
	var it struct {
		Data struct {
			Path    string    `json:"path"`
			URL     string    `json:"url"`
			Size    int64     `json:"size"`
			ModTime time.Time `json:"modTime"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &it) != nil {
		t.Fatalf("GET: %d %s", code, body)
	}
	if it.Data.Path != p || it.Data.URL != "file://"+p || it.Data.Size != 5 || !it.Data.ModTime.Equal(old) {
		t.Fatalf("data %s: want path %s, size 5, modTime %v", body, p, old)
	}
	code, body = s.do("POST", "/v1/items", `{}`)
	if code != 405 || statusOf(t, code, body).Reason != itemapi.ReasonMethodNotAllowed {
		t.Fatalf("POST without DIR_SUBMIT: %d %s", code, body)
	}
	code, body = s.do("DELETE", "/v1/items/"+itemapi.EscapeName("clips/a.mp4")+"?outcome=succeeded", "")
	if code != 405 || !strings.Contains(body, "keep") {
		t.Fatalf("DELETE with DIR_ON_DONE=keep: %d %s", code, body)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

// TestPagingUnderChurn lists 10,000 files in pages of 100 while files
// before and after the cursor are created and removed: every file present
// throughout is listed exactly once, none twice, in order.
func TestPagingUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	root := t.TempDir()
	const n = 10000
	var stable []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("d%02d/f%05d-s.dat", i%50, i)
		writeFile(t, root, name, "s")
		stable = append(stable, name)
		if i%10 == 0 {
			writeFile(t, root, fmt.Sprintf("d%02d/f%05d-v.dat", i%50, i), "v") // victims
		}
	}
	s := start(t, root, "DIR_SETTLE=0")
	s.waitCount(n + n/10)

	stop := make(chan struct{})
	var churned atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			i := rng.IntN(n)
			if i%10 == 0 {
				_ = os.Remove(filepath.Join(root, fmt.Sprintf("d%02d/f%05d-v.dat", i%50, i)))
			} else {
				_ = os.WriteFile(filepath.Join(root, fmt.Sprintf("d%02d/f%05d-n%d.dat", i%50, i, k)), []byte("n"), 0o644)
			}
			churned.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var listed []string
	next := ""
	pages := 0
	for {
		path := "/v1/items?limit=100"
		if next != "" {
			path += "&continue=" + next
		}
		code, body := s.do("GET", path, "")
		if code != 200 {
			t.Fatalf("page %d: %d %s", pages, code, body)
		}
		var l itemapi.ItemList
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		listed = append(listed, l.Items...)
		pages++
		if l.Continue == "" {
			break
		}
		next = l.Continue
	}
	close(stop)
	wg.Wait()
	if churned.Load() < 100 {
		t.Fatalf("only %d changes happened during the listing", churned.Load())
	}
	seen := make(map[string]int, len(listed))
	for i, name := range listed {
		seen[name]++
		if seen[name] > 1 {
			t.Fatalf("%q listed twice", name)
		}
		if i > 0 && listed[i-1] >= name {
			t.Fatalf("not sorted: %q before %q", listed[i-1], name)
		}
	}
	for _, name := range stable {
		if seen[name] != 1 {
			t.Fatalf("%q, present throughout, listed %d times", name, seen[name])
		}
	}
	t.Logf("%d pages, %d names, %d changes during the listing", pages, len(listed), churned.Load())
}

// TestHostileNames sends names that try to reach outside the root, raw over
// TCP so that no client normalises them: each is a 400 or a 404 with a
// Status body, and nothing outside the root is ever read, moved or deleted.
func TestHostileNames(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	secret := writeFile(t, base, "secret.json", `{"secret":"root:x:0:0:root:/root:/bin/bash"}`)
	writeFile(t, base, "outdir/secret.json", `{"secret":"root:x:0:0"}`)
	writeFile(t, root, "ok.json", `{"ok":true}`)
	writeFile(t, root, "sub/ok.json", `{"ok":true}`)
	writeFile(t, root, ".hidden.json", `{"secret":"root:x:0:0"}`)
	writeFile(t, root, "x.json.tmp", `{"secret":"root:x:0:0"}`)
	writeFile(t, root, ".done/x.json", `{"secret":"root:x:0:0"}`)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("/etc/passwd", filepath.Join(root, "passwd-link")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "passwd-link.json")))
	must(os.Symlink(secret, filepath.Join(root, "secret-link.json")))
	must(os.Symlink("../secret.json", filepath.Join(root, "up-link.json")))
	must(os.Symlink("/etc", filepath.Join(root, "etc-link")))
	must(os.Symlink(filepath.Join(base, "outdir"), filepath.Join(root, "outdir")))
	must(os.Symlink("ok.json", filepath.Join(root, "in-link.json")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo.json"), 0o644))
	s := start(t, root, "DIR_DATA=json", "DIR_SETTLE=0")
	s.waitCount(3)
	if code, body := s.do("GET", "/v1/items", ""); !strings.Contains(body, `["in-link.json","ok.json","sub/ok.json"]`) {
		t.Fatalf("listing: %d %s", code, body)
	}

	long := strings.Repeat("a", itemapi.MaxNameBytes+1)
	hostile := []struct {
		target string
		code   int // 0: 400 or 404
	}{
		{"/v1/items/..%2F..%2Fetc%2Fpasswd", 400},
		{"/v1/items/..%2fsecret.json", 400},
		{"/v1/items/%2e%2e/secret.json", 400},
		{"/v1/items/%2e%2e%2fsecret.json", 400},
		{"/v1/items/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fshadow", 400},
		{"/v1/items/../../etc/passwd", 400},
		{"/v1/items/..", 400},
		{"/v1/items/%2e", 400},
		{"/v1/items/./ok.json", 400},
		{"/v1/items/sub%2F..%2F..%2Fsecret.json", 400},
		{"/v1/items/ok.json%2F..%2F..%2Fsecret.json", 400},
		{`/v1/items/..\secret.json`, 400},
		{"/v1/items/..%5Csecret.json", 400},
		{"/v1/items/C:%5CWindows%5Cwin.ini", 400},
		{"/v1/items/%00", 400},
		{"/v1/items/ok.json%00.png", 400},
		{"/v1/items/%2Fetc%2Fpasswd", 400},
		{"/v1/items//etc/passwd", 400},
		{"/v1/items/file:%2F%2F%2Fetc%2Fpasswd", 400},
		{"/v1/items/sub%2F%2Fok.json", 400},
		{"/v1/items/sub%2F", 400},
		{"/v1/items/" + long, 400},
		{"/v1/items/" + strings.Repeat("..%2F", 300) + "etc%2Fpasswd", 400},
		{"/v1/items/%c0%ae%c0%ae%2Fsecret.json", 400}, // overlong UTF-8 "."
		{"/v1/items/%ff%fe", 400},
		{"/v1/items/%252e%252e%252fsecret.json", 404},       // decoded once only
		{"/v1/items/%ef%bc%8e%ef%bc%8e%2Fsecret.json", 404}, // fullwidth dots
		{"/v1/items/.done%2Fx.json", 404},
		{"/v1/items/.failed%2Fx.json", 404},
		{"/v1/items/.hidden.json", 404},
		{"/v1/items/x.json.tmp", 404},
		{"/v1/items/~root%2F.ssh%2Fid_rsa", 404},
		{"/v1/items/passwd-link", 404},
		{"/v1/items/passwd-link.json", 404},
		{"/v1/items/secret-link.json", 404},
		{"/v1/items/up-link.json", 404},
		{"/v1/items/etc-link%2Fpasswd", 404},
		{"/v1/items/outdir%2Fsecret.json", 404},
		{"/v1/items/fifo.json", 404},
		{"/v1/items/proc%2Fself%2Fenviron", 404},
	}
	leaked := func(body string) bool {
		return strings.Contains(body, "root:x:0") || strings.Contains(body, "/bin/bash") || strings.Contains(body, "nologin")
	}
	for _, h := range hostile {
		for _, method := range []string{"GET", "DELETE"} {
			target := h.target
			if method == "DELETE" {
				target += "?outcome=failed"
			}
			code, body := s.raw(method, target)
			if (h.code != 0 && code != h.code) || (code != 400 && code != 404) {
				t.Errorf("%s %s: %d %s, want %d", method, target, code, body, h.code)
				continue
			}
			statusOf(t, code, body)
			if leaked(body) {
				t.Errorf("%s %s leaked a file outside the root: %s", method, target, body)
			}
		}
	}
	// Request lines that Go's HTTP server itself refuses before any handler
	// runs (bad escapes, raw NUL or space): a 400 all the same, with Go's
	// fixed text body.
	for _, target := range []string{"/v1/items/%zz", "/v1/items/%2", "/v1/items/a%", "/v1/items/a\x00b", "/v1/items/a b"} {
		code, body := s.raw("GET", target)
		if code != 400 || leaked(body) {
			t.Errorf("GET %q: %d %s, want 400", target, code, body)
		}
	}
	// Nothing outside the root was moved or deleted, and /etc/passwd is
	// untouched; the items inside still work.
	for _, p := range []string{secret, filepath.Join(base, "outdir/secret.json"), "/etc/passwd"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if code, body := s.do("GET", "/v1/items/in-link.json", ""); code != 200 || !strings.Contains(body, `"data":{"ok":true}`) {
		t.Fatalf("symlink inside the root: %d %s", code, body)
	}
	if code, body := s.do("GET", "/v1/items", ""); !strings.Contains(body, `["in-link.json","ok.json","sub/ok.json"]`) {
		t.Fatalf("listing after the hostile requests: %d %s", code, body)
	}
	if n := len(hostile); n < 30 {
		t.Fatalf("only %d hostile names", n)
	}
}

// TestWatchLatency: a file renamed into place shows as ADDED on the watch
// stream (the time it takes is measured by BenchmarkWatchLatency).
func TestWatchLatency(t *testing.T) {
	root := t.TempDir()
	s := start(t, root, "DIR_SETTLE=0")
	w := s.watch()
	testutil.Eventually(t, wait, "synced", func() error { return w.has(itemapi.Synced, "") })
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("clip-%02d.mp4", i)
		tmp := writeFile(t, root, "."+name+".tmp", "data")
		if err := os.Rename(tmp, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, wait, "ADDED "+name, func() error { return w.has(itemapi.Added, name) })
	}
	for _, ev := range w.events() {
		if strings.Contains(ev.Name, ".tmp") {
			t.Fatalf("a temporary file reached the watch stream: %v", ev)
		}
	}
}

// TestSIGTERM: the ambassador exits 0 on SIGTERM, ending watch streams.
func TestSIGTERM(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "a.txt", "a")
	s := start(t, root, "DIR_SETTLE=0")
	w := s.watch()
	testutil.Eventually(t, wait, "synced", func() error { return w.has(itemapi.Synced, "") })
	if err := s.Stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Logs())
	}
	if code := s.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	select {
	case <-w.done:
	case <-time.After(wait):
		t.Fatal("watch stream still open after the ambassador exited")
	}
	if !strings.Contains(s.Logs(), `"msg":"stopped"`) {
		t.Fatalf("no stopped log line:\n%s", s.Logs())
	}
}

// TestReadyzRootRemoved: /readyz fails (503 Unavailable) once DIR_ROOT is
// gone, while /healthz stays fine.
func TestReadyzRootRemoved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	writeFile(t, root, "a.txt", "a")
	s := start(t, root, "DIR_SETTLE=0")
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, wait, "not ready", func() error {
		code, body := s.do("GET", "/readyz", "")
		if code != 503 {
			return fmt.Errorf("readyz %d %s", code, body)
		}
		if st := statusOf(t, code, body); st.Reason != itemapi.ReasonUnavailable {
			return fmt.Errorf("reason %s", st.Reason)
		}
		return nil
	})
	if code, _ := s.do("GET", "/healthz", ""); code != 200 {
		t.Fatalf("healthz %d", code)
	}
}

// TestStartupErrors: bad configurations stop the binary at once with a
// message that names the variable.
func TestStartupErrors(t *testing.T) {
	bin := testutil.Binary(t, "ambassadors/dir")
	root := t.TempDir()
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "DIR_ROOT"},
		{[]string{"DIR_ROOT=" + filepath.Join(root, "missing")}, "DIR_ROOT"},
		{[]string{"DIR_ROOT=" + root, "DIR_SUBMIT=true", "DIR_PATTERN=*.mp4"}, "DIR_PATTERN"},
		{[]string{"DIR_ROOT=" + root, "DIR_ON_DONE=shred"}, "DIR_ON_DONE"},
		{[]string{"DIR_ROOT=" + root, "DIR_SETTLE=soon"}, "DIR_SETTLE"},
	} {
		cmd := exec.Command(bin)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ITEMQ_ADDR=127.0.0.1:0"}, tc.env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(out), tc.want) {
			t.Errorf("env %q: %v\n%s", tc.env, err, out)
		}
	}
}

// TestUnreadableAsOtherUser runs the ambassador as an unprivileged user
// (root is never refused a read): a file it may not read is an error of
// that item only; a directory it may not read is skipped.
func TestUnreadableAsOtherUser(t *testing.T) {
	var o startOpts
	if os.Geteuid() == 0 {
		// Copy the binary where the other user may run it.
		dir, err := os.MkdirTemp("", "itemq-dir-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		_ = os.Chmod(dir, 0o755)
		b, err := os.ReadFile(testutil.Binary(t, "ambassadors/dir"))
		if err != nil {
			t.Fatal(err)
		}
		o.bin = filepath.Join(dir, "itemq-dir")
		if err := os.WriteFile(o.bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		o.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		if err := os.Mkdir(filepath.Join(dir, "root"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	if o.bin != "" {
		root = filepath.Join(filepath.Dir(o.bin), "root")
	}
	writeFile(t, root, "ok.json", `{"ok":1}`)
	writeFile(t, root, "secret.json", `{"secret":1}`)
	writeFile(t, root, "locked/x.json", `{"x":1}`)
	_ = os.Chmod(filepath.Join(root, "secret.json"), 0)
	_ = os.Chmod(filepath.Join(root, "locked"), 0)
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(root, "locked"), 0o755) })
	s := startWith(t, o, root, "DIR_DATA=json", "DIR_SETTLE=0")
	s.waitCount(2)
	code, body := s.do("GET", "/v1/items/secret.json", "")
	if code != 500 || statusOf(t, code, body).Reason != itemapi.ReasonInternal || !strings.Contains(body, "permission denied") {
		t.Fatalf("GET of an unreadable file: %d %s", code, body)
	}
	if code, body := s.do("GET", "/v1/items/ok.json", ""); code != 200 {
		t.Fatalf("GET ok.json: %d %s", code, body)
	}
	if code, body := s.do("GET", "/v1/items", ""); !strings.Contains(body, `"items":["ok.json","secret.json"]`) {
		t.Fatalf("listing: %d %s", code, body)
	}
	if !strings.Contains(s.Logs(), "cannot open a directory") {
		t.Fatalf("no warning about the unreadable directory:\n%s", s.Logs())
	}
}
