package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a real itemq binary started by a test.
type Process struct {
	t    testing.TB
	Cmd  *exec.Cmd
	Addr string // from its {"msg":"listening","addr":…} log line

	mu     sync.Mutex
	logs   bytes.Buffer
	exited chan struct{}
	err    error
}

// StartServer starts bin with env (added to a minimal environment: PATH,
// HOME, TMPDIR) and waits up to 60 s for its "listening" log line. addrVar
// names the variable that sets its address (ITEMQ_ADDR, MANAGER_ADDR); it is
// set to 127.0.0.1:0 unless env sets it. The process is stopped (SIGTERM,
// then SIGKILL) when the test ends; its log is printed if the test failed.
func StartServer(t testing.TB, bin, addrVar string, env ...string) *Process {
	t.Helper()
	return StartServerWith(t, ServerOptions{}, bin, addrVar, env...)
}

// ServerOptions are the less common ways of starting a server.
type ServerOptions struct {
	// Credential runs the process as another user.
	Credential *syscall.Credential
}

// StartServerWith is StartServer with options.
func StartServerWith(t testing.TB, o ServerOptions, bin, addrVar string, env ...string) *Process {
	t.Helper()
	full := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	hasAddr := false
	for _, kv := range env {
		if strings.HasPrefix(kv, addrVar+"=") {
			hasAddr = true
		}
	}
	if !hasAddr {
		full = append(full, addrVar+"=127.0.0.1:0")
	}
	full = append(full, env...)
	p := &Process{t: t, exited: make(chan struct{})}
	p.Cmd = exec.Command(bin)
	p.Cmd.Env = full
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: o.Credential}
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout = &lockedWriter{p: p}
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.err = p.Cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("log of %s:\n%s", bin, p.Logs())
		}
	})
	select {
	case p.Addr = <-addrc:
	case <-p.exited:
		t.Fatalf("%s exited before listening: %v\n%s", bin, p.err, p.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not log \"listening\" within 60 s:\n%s", bin, p.Logs())
	}
	return p
}

// URL is http://Addr.
func (p *Process) URL() string { return "http://" + p.Addr }

// Logs returns what the process wrote so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Kill sends SIGKILL to the process (not its children) and waits for it.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits up to 20 s, then SIGKILLs the process group.
// It returns the process's exit error.
func (p *Process) Stop() error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return fmt.Errorf("did not stop within 20 s of SIGTERM")
	}
	return p.err
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Alive fails the test if the process has exited.
func (p *Process) Alive() {
	p.t.Helper()
	select {
	case <-p.exited:
		p.t.Fatalf("%s exited: %v\n%s", p.Cmd.Path, p.err, p.Logs())
	default:
	}
}

// ListAll lists every item name of the item API at baseURL with pages of
// limit, following continue tokens strictly (unlike itemapi.Client.List,
// which works around servers that do not page, and so would hide a paging
// bug of the server under test).
func ListAll(baseURL string, limit int) ([]string, error) {
	var all []string
	next := ""
	for {
		u := fmt.Sprintf("%s/v1/items?limit=%d", baseURL, limit)
		if next != "" {
			u += "&continue=" + url.QueryEscape(next)
		}
		resp, err := httpClient.Get(u)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("list: %d %s", resp.StatusCode, body)
		}
		var l struct {
			Items    []string `json:"items"`
			Continue string   `json:"continue"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			return nil, err
		}
		all = append(all, l.Items...)
		if l.Continue == "" {
			return all, nil
		}
		next = l.Continue
	}
}

var httpClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

type lockedWriter struct{ p *Process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.logs.Write(b)
}

// ProcMemMB returns a field of /proc/<pid>/status that is a size in kB
// (VmRSS, VmHWM, …) in MiB.
func ProcMemMB(tb testing.TB, pid int, field string) float64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("reading the memory of process %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f kB", &kb); err != nil {
				tb.Fatalf("parsing %q of process %d: %v", line, pid, err)
			}
			return kb / 1024
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// Metrics reads the unlabelled samples of the Prometheus text exposition at
// baseURL/metrics.
func Metrics(baseURL string) (map[string]float64, error) {
	resp, err := httpClient.Get(baseURL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.HasPrefix(f[0], "#") || strings.Contains(f[0], "{") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out, sc.Err()
}
