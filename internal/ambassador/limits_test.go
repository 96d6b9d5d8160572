package ambassador_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/ambassador"
	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// serveLimited runs the real ambassador server (Serve) with short bounds on
// a loopback port.
func serveLimited(t *testing.T, sc httpapi.ServerConfig, heartbeat time.Duration) (addr string, d *memsource.Driver) {
	t.Helper()
	d = memsource.New()
	src := source.New(d)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := ambassador.Config{Heartbeat: heartbeat, ShutdownTimeout: 2 * time.Second, ServerConfig: sc}
	go func() { done <- ambassador.Serve(ctx, ln, src, slog.New(slog.DiscardHandler), "test", cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		src.Close()
	})
	return ln.Addr().String(), d
}

func shortBounds() httpapi.ServerConfig {
	return httpapi.ServerConfig{
		ReadHeaderTimeout: 200 * time.Millisecond,
		ReadTimeout:       400 * time.Millisecond,
		WriteTimeout:      2 * time.Second,
		IdleTimeout:       300 * time.Millisecond,
		MaxWatchers:       2,
	}
}

// closedWithin reports whether the server closes c (a read sees EOF or a
// reset) within d, discarding whatever it answers first.
func closedWithin(c net.Conn, d time.Duration) (bool, string) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

func TestSlowAndIdleClientsAreCutOff(t *testing.T) {
	addr, _ := serveLimited(t, shortBounds(), time.Minute)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	const n = 20
	var wg sync.WaitGroup
	results := make(chan string, 3*n)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(3)
		// A header that never ends.
		go func() {
			defer wg.Done()
			c := dial()
			fmt.Fprintf(c, "GET /v1/items HTTP/1.1\r\nHost: x\r\n")
			if ok, _ := closedWithin(c, 3*time.Second); !ok {
				results <- "slow header: connection still open after 3 s"
			}
		}()
		// A body that never ends.
		go func() {
			defer wg.Done()
			c := dial()
			fmt.Fprintf(c, "POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":")
			if ok, got := closedWithin(c, 3*time.Second); !ok {
				results <- "slow body: connection still open after 3 s: " + got
			}
		}()
		// An idle keep-alive connection after one answered request.
		go func() {
			defer wg.Done()
			c := dial()
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				results <- "idle: " + err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				results <- fmt.Sprintf("idle keep-alive connection: read gave %v, want EOF (closed by the server)", err)
			}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		t.Error(r)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("cutting off %d slow clients took %v", 3*n, el)
	}
}

func TestWatchOutlivesReadTimeoutAndIsCapped(t *testing.T) {
	addr, d := serveLimited(t, shortBounds(), 100*time.Millisecond)
	_ = d.Put("a", json.RawMessage(`{}`))
	base := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/items?watch=true", nil)
		return http.DefaultClient.Do(req)
	}
	var open []*http.Response
	for i := 0; i < 2; i++ {
		resp, err := watch()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("watch %d: %d", i, resp.StatusCode)
		}
		open = append(open, resp)
	}
	// The third is over ITEMQ_MAX_WATCHERS=2.
	resp, err := watch()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || status(t, string(b)).Reason != itemapi.ReasonUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third watch: %d %s %v, want 503 Unavailable with Retry-After", resp.StatusCode, b, resp.Header)
	}
	// A stream lasts well past ITEMQ_READ_TIMEOUT (400 ms): heartbeats keep coming.
	sc := bufio.NewScanner(open[0].Body)
	deadline := time.Now().Add(1500 * time.Millisecond)
	beats := 0
	for time.Now().Before(deadline) {
		if !sc.Scan() {
			t.Fatalf("watch stream ended after %v: %v", 1500*time.Millisecond-time.Until(deadline), sc.Err())
		}
		if strings.Contains(sc.Text(), `"HEARTBEAT"`) {
			beats++
		}
	}
	if beats < 5 {
		t.Fatalf("%d heartbeats in 1.5 s", beats)
	}
	// Closing one frees its slot.
	open[1].Body.Close()
	var again *http.Response
	for i := 0; i < 50; i++ {
		if again, err = watch(); err == nil && again.StatusCode == 200 {
			break
		}
		if again != nil {
			again.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if again == nil || again.StatusCode != 200 {
		t.Fatalf("no watch slot after one stream closed")
	}
	again.Body.Close()
	open[0].Body.Close()
}

// TestSubmissionOverTheItemLimit: a body an executor would refuse (the
// 1,048,576-byte submission of the issue) is a 413 where it enters.
func TestSubmissionOverTheItemLimit(t *testing.T) {
	addr, _ := serveLimited(t, httpapi.DefaultServerConfig(), time.Minute)
	for _, c := range []struct {
		size int
		code int
	}{{itemapi.MaxDataBytes, 201}, {1 << 20, 413}, {itemapi.MaxDataBytes + 1, 413}} {
		body := `{"p":"` + strings.Repeat("x", c.size-8) + `"}`
		resp, err := http.Post("http://"+addr+"/v1/items", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("POST of %d bytes: %d %.200s, want %d", len(body), resp.StatusCode, b, c.code)
		}
		if c.code == 413 && status(t, string(b)).Reason != itemapi.ReasonTooLarge {
			t.Errorf("POST of %d bytes: %s", len(body), b)
		}
	}
}
