package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

const wait = 30 * time.Second

// server is a running itemq-dir.
type server struct {
	*testutil.Process
	t    testing.TB
	root string
}

type startOpts struct {
	cred *syscall.Credential // run as another user
	bin  string              // the binary (default: testutil.Binary)
	// noWait: do not wait for /readyz.
	noWait bool
}

// start runs itemq-dir over root with the given extra environment and
// waits until it listens and is ready. It is stopped with the test.
func start(t testing.TB, root string, env ...string) *server {
	t.Helper()
	return startWith(t, startOpts{}, root, env...)
}

func startWith(t testing.TB, o startOpts, root string, env ...string) *server {
	t.Helper()
	bin := o.bin
	if bin == "" {
		bin = testutil.Binary(t, "ambassadors/dir")
	}
	p := testutil.StartServerWith(t, testutil.ServerOptions{Credential: o.cred}, bin, "ITEMQ_ADDR", append([]string{"DIR_ROOT=" + root}, env...)...)
	s := &server{Process: p, t: t, root: root}
	if !o.noWait {
		testutil.Eventually(t, wait, "ready", func() error {
			code, body := s.do("GET", "/readyz", "")
			if code != 200 {
				return fmt.Errorf("readyz %d %s", code, body)
			}
			return nil
		})
	}
	return s
}

var client = &http.Client{Timeout: wait, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// do sends a request (path already escaped) and returns code and body.
func (s *server) do(method, path, body string) (int, string) {
	s.t.Helper()
	code, _, b := s.doH(method, path, body)
	return code, b
}

func (s *server) doH(method, path, body string) (int, http.Header, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// raw sends one request line as given, over a new TCP connection, so that
// no client library normalises or escapes the path.
func (s *server) raw(method, target string) (int, string) {
	s.t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr, wait)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, s.Addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		s.t.Fatalf("%s %q: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// listAll follows the pages of the listing.
func (s *server) listAll(limit int) ([]string, error) { return testutil.ListAll(s.URL(), limit) }

// waitCount waits until the listing has n items.
func (s *server) waitCount(n int) {
	s.t.Helper()
	testutil.Eventually(s.t, 5*time.Minute, "item count", func() error {
		names, err := s.listAll(10000)
		if err != nil {
			return err
		}
		if len(names) != n {
			return fmt.Errorf("%d items, want %d", len(names), n)
		}
		return nil
	})
}

// watchStream reads the NDJSON watch stream in the background.
type watchStream struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	evs    []itemapi.WatchEvent
	at     []time.Time
	done   chan struct{}
}

func (s *server) watch() *watchStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/v1/items?watch=true", nil)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		cancel()
		s.t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	w := &watchStream{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			now := time.Now()
			var ev itemapi.WatchEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			w.mu.Lock()
			w.evs = append(w.evs, ev)
			w.at = append(w.at, now)
			w.mu.Unlock()
		}
	}()
	s.t.Cleanup(cancel)
	return w
}

func (w *watchStream) events() []itemapi.WatchEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]itemapi.WatchEvent(nil), w.evs...)
}

func (w *watchStream) has(typ itemapi.EventType, name string) error {
	for _, ev := range w.events() {
		if ev.Type == typ && ev.Name == name {
			return nil
		}
	}
	return fmt.Errorf("no %s %q in %d events", typ, name, len(w.events()))
}

func writeFile(t testing.TB, root, name, content string) string {
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

// statusOf parses a Status body and checks it matches the HTTP code.
func statusOf(t testing.TB, code int, body string) itemapi.Status {
	t.Helper()
	var st itemapi.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Kind != itemapi.KindStatus || st.APIVersion != "v1" || st.Code != code || st.Message == "" {
		t.Fatalf("HTTP %d with a body that is not its Status document: %q", code, body)
	}
	return st
}
