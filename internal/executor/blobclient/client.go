package blobclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/itemq/itemq/internal/executor/storage"
)

// HelperName is the helper binary's name, looked for next to the
// executor's own binary and on PATH.
const HelperName = "itemq-blob"

const (
	// cancelWait bounds how long an operation whose context ended waits
	// for the helper to confirm that it stopped it.
	cancelWait = 5 * time.Second
	// defaultStopTimeout bounds how long Close waits for the helper to
	// exit after its stdin is closed, before killing it.
	defaultStopTimeout = 10 * time.Second
)

// Options configure a Client.
type Options struct {
	// Helper is the helper's path (EXECUTOR_BLOB_HELPER); "" looks for it
	// (see FindHelper).
	Helper string
	// Environ is the helper's environment: the executor's, with the
	// cloud credentials in it.
	Environ []string
	// Log receives the helper's log lines (its stderr), one record each.
	Log *slog.Logger
	// LogLevel is passed to the helper, which then writes nothing below
	// it; "" is info.
	LogLevel string
	// StopTimeout bounds how long Close waits for the helper to exit
	// before killing it; 0 is 10 s.
	StopTimeout time.Duration
}

// Client is a storage.Storage that runs each operation in an itemq-blob
// helper process, which it starts on the first operation and stops in
// Close. The helper runs in the caller's process group (a SIGKILL to the
// group reaches it) but ignores SIGTERM and SIGINT, so that an executor
// stopped by a signal to its whole group can still delete what it
// uploaded; it exits when its stdin closes, that is at Close or when the
// executor dies. A helper that dies in the middle of a run fails the
// operations it was doing (Transient) and is started again by the next
// one; a helper that cannot be found or does not speak the protocol fails
// every operation with an Unavailable error.
type Client struct {
	opts Options
	ids  atomic.Uint64

	mu     sync.Mutex
	h      *helper // the current helper, or nil
	failed error   // set once the helper cannot be used at all
	closed bool
}

var _ storage.Storage = (*Client)(nil)

// New returns a Client; it starts nothing until the first operation.
func New(opts Options) *Client {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = defaultStopTimeout
	}
	return &Client{opts: opts}
}

// Download implements storage.Storage.
func (c *Client) Download(ctx context.Context, objectURL, file string, max int64) (int64, error) {
	resp, err := c.do(ctx, Request{Op: OpDownload, URL: objectURL, File: file, Max: max})
	return resp.Size, err
}

// Exists implements storage.Storage.
func (c *Client) Exists(ctx context.Context, bucketURL, key string) (bool, error) {
	resp, err := c.do(ctx, Request{Op: OpExists, Bucket: bucketURL, Key: key})
	return resp.Exists, err
}

// Upload implements storage.Storage.
func (c *Client) Upload(ctx context.Context, bucketURL, key, file, contentType string) (storage.Object, error) {
	resp, err := c.do(ctx, Request{Op: OpUpload, Bucket: bucketURL, Key: key, File: file, ContentType: contentType})
	return storage.Object{Size: resp.Size, SHA256: resp.SHA256}, err
}

// Delete implements storage.Storage.
func (c *Client) Delete(ctx context.Context, bucketURL, key string) error {
	_, err := c.do(ctx, Request{Op: OpDelete, Bucket: bucketURL, Key: key})
	return err
}

// Started reports whether a helper was started (for logs and tests).
func (c *Client) Started() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.h != nil
}

// Close stops the helper: it closes its stdin, waits for it to exit (it
// cancels whatever it was still doing), and kills it after StopTimeout.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	h := c.h
	c.mu.Unlock()
	if h == nil {
		return nil
	}
	h.stdin.Close()
	t := time.NewTimer(c.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		c.opts.Log.Warn("the itemq-blob helper did not exit; killing it", "pid", h.cmd.Process.Pid)
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	return nil
}

func (c *Client) do(ctx context.Context, req Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("%s: %w", req.Op, context.Cause(ctx))
	}
	h, err := c.helper()
	if err != nil {
		return Response{}, err
	}
	req.ID = c.ids.Add(1)
	ch := make(chan Response, 1)
	if !h.register(req.ID, ch) {
		return Response{}, h.err
	}
	defer h.unregister(req.ID)
	if err := h.send(req); err != nil {
		// The helper is gone; its reader says why.
		select {
		case <-h.done:
			return Response{}, h.err
		case <-time.After(cancelWait):
			return Response{}, storage.Errorf(storage.Transient, "send to %s: %w", HelperName, err)
		}
	}
	select {
	case resp := <-ch:
		if resp.Error != nil {
			return resp, &storage.Error{Kind: resp.Error.Kind, Err: errors.New(resp.Error.Message)}
		}
		return resp, nil
	case <-h.done:
		return Response{}, h.err
	case <-ctx.Done():
		// Stop it in the helper, and wait (a little) until it has
		// stopped, so that an aborted upload is over when this returns.
		if h.send(Request{Op: OpCancel, Target: req.ID}) == nil {
			t := time.NewTimer(cancelWait)
			select {
			case <-ch:
			case <-h.done:
			case <-t.C:
			}
			t.Stop()
		}
		return Response{}, fmt.Errorf("%s: %w", req.Op, context.Cause(ctx))
	}
}

// helper returns the running helper, starting one when there is none (or
// the last one died).
func (c *Client) helper() (*helper, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, storage.Errorf(storage.Unavailable, "%s: the storage client is closed", HelperName)
	case c.failed != nil:
		return nil, c.failed
	}
	if c.h != nil {
		select {
		case <-c.h.done:
			if storage.KindOf(c.h.err) == storage.Unavailable {
				c.failed = c.h.err
				return nil, c.failed
			}
			c.opts.Log.Warn("the itemq-blob helper exited; starting it again", "error", c.h.err.Error())
		default:
			return c.h, nil
		}
	}
	h, err := c.start()
	if err != nil {
		c.failed = err
		return nil, err
	}
	c.h = h
	return h, nil
}

type helper struct {
	path  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	wmu   sync.Mutex // one request line at a time

	mu      sync.Mutex
	pending map[uint64]chan Response
	done    chan struct{} // closed when the helper has exited and been reaped
	err     error         // why (set before done is closed)
}

func (c *Client) start() (*helper, error) {
	path, err := FindHelper(c.opts.Helper, c.opts.Environ)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "serve", "--log-level="+c.opts.LogLevel)
	cmd.Env = c.opts.Environ
	unavailable := func(err error) error {
		return storage.Errorf(storage.Unavailable, "start the %s helper %s: %w", HelperName, path, err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, unavailable(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, unavailable(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, unavailable(err)
	}
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, unavailable(err)
	}
	h := &helper{path: path, cmd: cmd, stdin: stdin, pending: map[uint64]chan Response{}, done: make(chan struct{})}
	log := c.opts.Log.With("helper", HelperName)
	log.Debug("started the helper", "path", path, "pid", cmd.Process.Pid, "duration", time.Since(t).String())
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		relay(stderr, log)
	}()
	go h.read(stdout, relayed)
	return h, nil
}

// read dispatches the helper's responses until its stdout ends, then reaps
// it and fails what is still pending.
func (h *helper) read(stdout io.Reader, relayed <-chan struct{}) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		failure error
		hello   Hello
	)
	if !sc.Scan() {
		failure = storage.Errorf(storage.Unavailable, "the %s helper %s exited before it answered", HelperName, h.path)
	} else if json.Unmarshal(sc.Bytes(), &hello) != nil || hello.Protocol != Protocol {
		failure = storage.Errorf(storage.Unavailable, "%s is not an %s helper speaking %s (it said %q)", h.path, HelperName, Protocol, truncate(sc.Text(), 200))
		_ = h.cmd.Process.Kill()
	} else {
		for sc.Scan() {
			var resp Response
			if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
				failure = storage.Errorf(storage.Transient, "the %s helper answered %q: %v", HelperName, truncate(sc.Text(), 200), err)
				_ = h.cmd.Process.Kill()
				break
			}
			h.mu.Lock()
			ch, ok := h.pending[resp.ID]
			delete(h.pending, resp.ID)
			h.mu.Unlock()
			if ok {
				ch <- resp
			}
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	<-relayed
	werr := h.cmd.Wait()
	if failure == nil {
		status := "exited"
		if werr != nil {
			status = werr.Error()
		}
		failure = storage.Errorf(storage.Transient, "the %s helper stopped (%s)", HelperName, status)
	}
	h.mu.Lock()
	h.err = failure
	h.pending = nil
	h.mu.Unlock()
	close(h.done)
}

// register adds a pending request; false when the helper is gone.
func (h *helper) register(id uint64, ch chan Response) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending == nil {
		return false
	}
	h.pending[id] = ch
	return true
}

func (h *helper) unregister(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, id)
}

func (h *helper) send(req Request) error {
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err = h.stdin.Write(append(line, '\n'))
	return err
}

// relay logs the helper's stderr: its JSON log records as records of log
// (at their level, with their attributes), anything else as warnings.
func relay(r io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			log.Warn("helper output", "line", strings.ToValidUTF8(string(line), "\uFFFD"))
			continue
		}
		msg, ok := rec["msg"].(string)
		if !ok {
			log.Warn("helper output", "line", string(line))
			continue
		}
		var level slog.Level
		if s, ok := rec["level"].(string); !ok || level.UnmarshalText([]byte(s)) != nil {
			level = slog.LevelInfo
		}
		delete(rec, "msg")
		delete(rec, "level")
		delete(rec, "time")
		keys := make([]string, 0, len(rec))
		for k := range rec {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]any, 0, 2*len(keys))
		for _, k := range keys {
			attrs = append(attrs, k, rec[k])
		}
		log.Log(context.Background(), level, msg, attrs...)
	}
	_, _ = io.Copy(io.Discard, r)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// FindHelper returns the path of the itemq-blob helper: explicit
// (EXECUTOR_BLOB_HELPER) when set, else itemq-blob next to the running
// binary (os.Executable), else itemq-blob on the PATH of environ. Its
// error is Unavailable and says where it looked.
func FindHelper(explicit string, environ []string) (string, error) {
	pathVar := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	if explicit != "" {
		p := explicit
		if !strings.Contains(p, "/") {
			var ok bool
			if p, ok = lookPath(p, pathVar); !ok {
				return "", storage.Errorf(storage.Unavailable, "EXECUTOR_BLOB_HELPER=%s: not found on PATH", explicit)
			}
		}
		if err := executable(p); err != nil {
			return "", storage.Errorf(storage.Unavailable, "EXECUTOR_BLOB_HELPER=%s: %w", explicit, err)
		}
		return p, nil
	}
	next := ""
	if exe, err := os.Executable(); err == nil {
		next = filepath.Join(filepath.Dir(exe), HelperName)
		if executable(next) == nil {
			return next, nil
		}
	}
	if p, ok := lookPath(HelperName, pathVar); ok {
		return p, nil
	}
	return "", storage.Errorf(storage.Unavailable,
		"bucket URLs need the %s helper, and there is none: EXECUTOR_BLOB_HELPER is not set, %s does not exist, and %s is not on PATH (ship %s next to the executor)",
		HelperName, orUnknown(next), HelperName, HelperName)
}

func orUnknown(s string) string {
	if s == "" {
		return "(the executor's directory is unknown)"
	}
	return s
}

func lookPath(name, pathVar string) (string, bool) {
	for dir := range strings.SplitSeq(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		p, err := filepath.Abs(filepath.Join(dir, name))
		if err == nil && executable(p) == nil {
			return p, true
		}
	}
	return "", false
}

func executable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", p)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}
