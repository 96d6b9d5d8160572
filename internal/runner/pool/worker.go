package pool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/itemapi"
)

// WorkerConfig configures a worker.
type WorkerConfig struct {
	URL, Token string
	// Name is the worker's name in the manager's records (default: $POD_NAME
	// or the host's name, and the pid).
	Name string
	// Command is the executor run for each attempt: its argv. Its
	// environment is Env, then the lease's, then the contract's variables.
	Command []string
	Env     []string
	WorkDir string        // attempts' private directories go here (default os.TempDir())
	Grace   time.Duration // SIGTERM → SIGKILL when an attempt is stopped, unless the lease says (default 10s)
	Client  *http.Client
	Log     *slog.Logger
}

// Work takes attempts from the manager and runs them, one at a time, until
// ctx ends; an attempt running then is finished and reported first (a pod
// told to stop finishes its item within its grace period).
func Work(ctx context.Context, cfg WorkerConfig) error {
	if cfg.URL == "" || len(cfg.Command) == 0 {
		return errors.New("a pool worker needs the manager's URL (" + EnvURL + ") and a command")
	}
	if cfg.Name == "" {
		host := os.Getenv("POD_NAME")
		if host == "" {
			host, _ = os.Hostname()
		}
		cfg.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	w := &worker{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), log: cfg.Log.With("worker", cfg.Name)}
	w.log.Info("pool worker started", "manager", w.base)
	backoff := itemapi.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	fails := 0
	for ctx.Err() == nil {
		ls, err := w.lease(ctx)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errUnauthorized):
			return err
		case err != nil:
			d := backoff.Delay(fails)
			fails++
			w.log.Warn("lease request failed; trying again", "err", err, "in", d)
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		case ls != nil:
			fails = 0
			w.run(ls)
		default:
			fails = 0
		}
	}
	w.log.Info("pool worker stopped")
	return nil
}

type worker struct {
	cfg  WorkerConfig
	base string
	log  *slog.Logger
}

// lease asks for an attempt: nil, nil when none came within the wait.
func (w *worker) lease(ctx context.Context) (*Lease, error) {
	body, _ := json.Marshal(LeaseRequest{Worker: w.cfg.Name})
	resp, err := w.post(ctx, pathLease, "application/json", body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil, nil
	case http.StatusOK:
		var ls Lease
		if err := json.NewDecoder(resp.Body).Decode(&ls); err != nil {
			return nil, fmt.Errorf("read the lease: %w", err)
		}
		return &ls, nil
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%w: %w", errUnauthorized, statusError(resp))
	}
	return nil, statusError(resp)
}

// errUnauthorized: the manager refused the worker's token; trying again
// will not help (a pod crash-loops and says why).
var errUnauthorized = errors.New("the manager refused this worker's token (ITEMQ_POOL_TOKEN must be the manager's MANAGER_POOL_TOKEN)")

func statusError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
}

func (w *worker) post(ctx context.Context, path, ctype string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	req.Header.Set("Content-Type", ctype)
	return w.cfg.Client.Do(req)
}

// errLeaseLost: the manager no longer holds the lease (410), or it could
// not be renewed for its TTL.
var errLeaseLost = errors.New("lease lost")

// run runs one leased attempt and reports its end. It does not stop when
// the worker is told to: the attempt is finished first.
func (w *worker) run(ls *Lease) {
	log := w.log.With("job", ls.Job, "attempt", ls.Attempt)
	ttl := time.Duration(ls.TTLSeconds * float64(time.Second))
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	grace := time.Duration(ls.GraceSeconds * float64(time.Second))
	out := &chunks{}
	actx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)

	beatsDone := make(chan struct{})
	ended := make(chan struct{})
	go func() { // heartbeats carry the output, and bring a cancel
		defer close(beatsDone)
		t := time.NewTicker(ttl / 5)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-ended:
				return
			case <-t.C:
			}
			cancel, err := w.beat(ls, out, ttl/5)
			switch {
			case errors.Is(err, errLeaseLost):
				log.Warn("the manager no longer holds the lease; stopping the attempt")
				stop(errLeaseLost)
				return
			case err != nil:
				// Stopped by TTL after the last renewal at the latest (a
				// beat and a tick after this bound), as the manager counts.
				if time.Since(renewed) > ttl*3/5 {
					log.Warn("lease not renewed within its TTL; stopping the attempt", "err", err)
					stop(errLeaseLost)
					return
				}
			default:
				renewed = time.Now()
				if cancel {
					stop(local.ErrCancelled)
				}
			}
		}
	}()

	code, err := w.exec(actx, ls, out, grace)
	close(ended)
	<-beatsDone
	if errors.Is(context.Cause(actx), errLeaseLost) {
		return // the manager counts the attempt as lost, or forgot it
	}
	res := Result{ExitCode: code}
	if err != nil {
		res = Result{ExitCode: -1, Error: err.Error()}
	}
	log.Info("attempt finished", "exitCode", res.ExitCode, "err", res.Error)
	// The last output, then the result; retried within the lease's TTL.
	deadline := time.Now().Add(ttl)
	for {
		_, berr := w.beat(ls, out, ttl/5)
		rerr := berr
		if berr == nil {
			rerr = w.result(ls, res)
		}
		if rerr == nil || errors.Is(rerr, errLeaseLost) || time.Now().After(deadline) {
			if rerr != nil {
				log.Warn("could not report the attempt's end", "err", rerr)
			}
			return
		}
		time.Sleep(ttl / 10)
	}
}

// exec runs the executor for a lease in a private directory.
func (w *worker) exec(ctx context.Context, ls *Lease, out *chunks, grace time.Duration) (int, error) {
	dir, err := os.MkdirTemp(w.cfg.WorkDir, ls.Job+"-")
	if err != nil {
		return -1, fmt.Errorf("create the attempt's work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	itemFile := filepath.Join(dir, "item.json")
	if err := os.WriteFile(itemFile, ls.Doc, 0o444); err != nil {
		return -1, fmt.Errorf("write the item file: %w", err)
	}
	env := append([]string(nil), w.cfg.Env...)
	for k, v := range ls.Env {
		env = append(env, k+"="+v)
	}
	if grace <= 0 {
		grace = w.cfg.Grace
	}
	p := &local.ProcessLauncher{Steps: [][]string{w.cfg.Command}, Env: env, Grace: grace, Log: w.log}
	return p.Launch(ctx, &local.Attempt{
		Queue: ls.Queue, Job: ls.Job, Item: itemapi.NewItem(ls.Item, ls.Doc), ItemDoc: ls.Doc, Number: ls.Attempt,
		WorkDir: dir, ItemFile: itemFile, Log: out,
	})
}

// beat renews the lease with the output since the last beat.
func (w *worker) beat(ls *Lease, out *chunks, timeout time.Duration) (cancel bool, err error) {
	ctx, done := context.WithTimeout(context.Background(), timeout)
	defer done()
	chunk := out.take()
	resp, err := w.post(ctx, pathLeases+ls.ID+"/heartbeat", "application/octet-stream", chunk)
	if err != nil {
		out.giveBack(chunk)
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var b Beat
		_ = json.NewDecoder(resp.Body).Decode(&b)
		return b.Cancel, nil
	case http.StatusGone:
		return false, errLeaseLost
	}
	out.giveBack(chunk)
	return false, statusError(resp)
}

func (w *worker) result(ls *Lease, res Result) error {
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	body, _ := json.Marshal(res)
	resp, err := w.post(ctx, pathLeases+ls.ID+"/result", "application/json", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusGone:
		return errLeaseLost
	}
	return statusError(resp)
}

// chunks is an attempt's output not yet sent, bounded: what does not fit
// before the next heartbeat is dropped, with a note.
type chunks struct {
	mu      sync.Mutex
	buf     []byte
	dropped int
}

const maxPending = maxRequest - 256

func (c *chunks) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := maxPending - len(c.buf); room < len(p) {
		c.dropped += len(p) - max(room, 0)
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *chunks) Notef(format string, args ...any) {
	line := fmt.Sprintf("=== %s itemq worker: %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	_, _ = c.Write([]byte(line))
}

// take returns the pending output (and a note of what was dropped): at
// most maxPending bytes and the note, within a heartbeat's maxRequest.
func (c *chunks) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	if c.dropped > 0 {
		b = append(b, fmt.Sprintf("\n=== itemq worker: %d bytes of output dropped (more than %d between two heartbeats)\n", c.dropped, maxPending)...)
		c.dropped = 0
	}
	c.buf = nil
	return b
}

// giveBack puts back a chunk whose heartbeat failed.
func (c *chunks) giveBack(b []byte) {
	if len(b) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(b, c.buf...)
	if len(c.buf) > maxPending {
		c.dropped += len(c.buf) - maxPending
		c.buf = c.buf[len(c.buf)-maxPending:]
	}
}

// WorkerConfigFromEnv is a worker's configuration from its environment
// (ITEMQ_POOL_URL, ITEMQ_POOL_TOKEN, ITEMQ_POOL_WORKER; TMPDIR for the
// attempts' directories): command runs each attempt, with environ less
// the pool's variables.
func WorkerConfigFromEnv(environ, command []string) WorkerConfig {
	cfg := WorkerConfig{Command: command}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case EnvURL:
			cfg.URL = v
		case EnvToken:
			cfg.Token = v
		case EnvWorker:
			cfg.Name = v
		default:
			if k == "TMPDIR" {
				cfg.WorkDir = v
			}
			cfg.Env = append(cfg.Env, kv)
		}
	}
	return cfg
}
