package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/itemapi"
)

// stallTimeout ends a download attempt that received nothing for this long.
const stallTimeout = 60 * time.Second

type input struct {
	dir  string // INPUT_DIR for the step ("" when the item is its own input)
	file string // INPUT_FILE for the step
}

// resolveInput finds the item's input: INPUT_DIR (nothing fetched),
// data.url (an object URL or http(s):// URL, downloaded into work/input),
// data.path (a local file, linked into work/input), or nothing (the item
// carries its input in its data).
func (x *execution) resolveInput(ctx context.Context, item *itemapi.Item, work string) (input, error) {
	cfg, log := x.cfg, x.log
	if cfg.InputDir != "" {
		dir, err := filepath.Abs(cfg.InputDir)
		if err != nil {
			return input{}, Permanentf("INPUT_DIR: %w", err)
		}
		if fi, err := os.Stat(dir); err != nil {
			return input{}, Permanentf("INPUT_DIR: input missing: %w", err)
		} else if !fi.IsDir() {
			return input{}, Permanentf("INPUT_DIR %s: not a directory", dir)
		}
		file := cfg.InputFile
		if file != "" {
			if !filepath.IsAbs(file) {
				file = filepath.Join(dir, file)
			}
			if _, err := os.Stat(file); err != nil {
				return input{}, Permanentf("INPUT_FILE: input missing: %w", err)
			}
		} else {
			file = soleFile(dir)
		}
		log.Info("input already on disk (INPUT_DIR); nothing fetched", "phase", "fetch", "dir", dir, "file", file)
		return input{dir: dir, file: file}, nil
	}

	var data map[string]json.RawMessage
	if err := json.Unmarshal(item.Data, &data); err != nil {
		data = nil // not an object: the item carries its input in its data
	}
	field := func(name string) (string, bool, error) {
		raw, ok := data[name]
		if !ok || string(raw) == "null" {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s == "" {
			return "", false, Permanentf("item %q: data.%s is not a non-empty string", item.Name, name)
		}
		return s, true, nil
	}
	rawURL, hasURL, err := field("url")
	if err != nil {
		return input{}, err
	}
	localPath, hasPath, err := field("path")
	if err != nil {
		return input{}, err
	}
	inDir := filepath.Join(work, "input")
	switch {
	case hasURL:
		if err := os.Mkdir(inDir, 0o700); err != nil {
			return input{}, fmt.Errorf("create input directory: %w", err)
		}
		return x.fetch(ctx, rawURL, inDir)
	case hasPath:
		p, err := filepath.Abs(localPath)
		if err != nil {
			return input{}, Permanentf("data.path %s: %w", localPath, err)
		}
		if err := cfg.inputs.allowPath(filepath.ToSlash(p)); err != nil {
			return input{}, fmt.Errorf("data.path: %w", err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return input{}, Permanentf("data.path: input missing: %w", err)
		}
		if fi.IsDir() {
			log.Info("input is a local directory (data.path); nothing fetched", "phase", "fetch", "dir", p)
			return input{dir: p, file: soleFile(p)}, nil
		}
		if err := os.Mkdir(inDir, 0o700); err != nil {
			return input{}, fmt.Errorf("create input directory: %w", err)
		}
		link := filepath.Join(inDir, SafeFileName(p))
		if err := os.Symlink(p, link); err != nil {
			return input{}, fmt.Errorf("link input %s: %w", p, err)
		}
		log.Info("input is a local file (data.path); nothing fetched", "phase", "fetch", "path", p, "bytes", fi.Size())
		return input{dir: inDir, file: link}, nil
	}
	log.Info("no data.url or data.path: the item carries its input in its data", "phase", "fetch")
	return input{}, nil
}

// soleFile is the one regular, non-hidden file directly in dir, or "".
func soleFile(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	found := ""
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if found != "" {
			return ""
		}
		found = p
	}
	return found
}

// SafeFileName turns the last element of a key, path or URL path into a
// file name: bytes outside A-Z a-z 0-9 . _ - become "_", leading dots are
// dropped, it is at most 200 bytes (the extension kept), and it is "input"
// when nothing is left.
func SafeFileName(p string) string {
	base := path.Base(strings.ReplaceAll(p, `\`, "/"))
	if base == "/" || base == "." {
		return "input"
	}
	b := []byte(base)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	s := strings.TrimLeft(string(b), ".")
	if len(s) > 200 {
		ext := path.Ext(s)
		if len(ext) > 20 {
			ext = ""
		}
		s = s[:200-len(ext)] + ext
	}
	if s == "" {
		return "input"
	}
	return s
}

// fetch downloads data.url into dir: http(s) URLs itself, object URLs
// through the run's bucket store.
func (x *execution) fetch(ctx context.Context, rawURL, dir string) (input, error) {
	cfg, log := x.cfg, x.log
	u, err := url.Parse(rawURL)
	if err != nil {
		return input{}, Permanentf("data.url: %w", err)
	}
	if err := cfg.inputs.allowURL(u); err != nil {
		return input{}, fmt.Errorf("data.url: %w", err)
	}
	max := int64(cfg.MaxInputBytes)
	t := time.Now()
	var name string
	var get func(ctx context.Context, file string) (int64, error)
	switch u.Scheme {
	case "http", "https":
		name = SafeFileName(u.Path)
		client := &http.Client{Transport: httpTransport(), CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			// A redirect is an input too: an allowed server must not
			// send the executor somewhere it may not read.
			return cfg.inputs.allowURL(req.URL)
		}}
		get = func(ctx context.Context, file string) (int64, error) {
			f, err := os.OpenFile(file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return 0, Permanent(err) // our own disk: no retry helps
			}
			sctx, kick, stop := watchStall(ctx)
			n, err := fetchHTTP(sctx, client, rawURL, f, max, kick)
			stop()
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
			return n, err
		}
	default:
		_, key, err := itemapi.SplitObjectURL(rawURL)
		if err != nil {
			return input{}, Permanentf("data.url: %w", err)
		}
		name = SafeFileName(key)
		get = func(ctx context.Context, file string) (int64, error) {
			n, err := x.store.Download(ctx, rawURL, file, max)
			if bucket.KindOf(err) == bucket.TooLarge {
				return n, Permanentf("%w (EXECUTOR_MAX_INPUT_BYTES=%d)", err, max)
			}
			return n, storageError(err)
		}
	}
	file := filepath.Join(dir, name)
	src := bucket.RedactURL(rawURL)
	var n int64
	attempts := 0
	err = retry(ctx, cfg.FetchAttempts, cfg.FetchBackoff, log, "fetch "+src, func(ctx context.Context) error {
		attempts++
		var err error
		n, err = get(ctx, file)
		return err
	})
	if err != nil {
		return input{}, fmt.Errorf("fetch %s: %w", src, err)
	}
	log.Info("fetched input", "phase", "fetch", "url", src, "file", file, "bytes", n, "attempts", attempts, "duration", since(t))
	return input{dir: dir, file: file}, nil
}

var (
	transportOnce sync.Once
	transport     *http.Transport
)

func httpTransport() *http.Transport {
	transportOnce.Do(func() {
		transport = http.DefaultTransport.(*http.Transport).Clone()
		transport.ResponseHeaderTimeout = stallTimeout
	})
	return transport
}

// fetchHTTP downloads one http(s) URL into w. 404 and 410 are a missing
// input and other 4xx a bad one (permanent, except 408 and 429); 5xx,
// network errors and stalls are transient.
func fetchHTTP(ctx context.Context, client *http.Client, rawURL string, w io.Writer, max int64, kick func()) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, Permanent(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = bucket.RedactURL(ue.URL)
		}
		return 0, err // transient: connection refused, reset, timeout, DNS
	}
	kick()
	defer resp.Body.Close()
	switch c := resp.StatusCode; {
	case c == http.StatusOK:
	case c == http.StatusNotFound || c == http.StatusGone:
		return 0, Permanentf("input missing: HTTP %s", resp.Status)
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return 0, fmt.Errorf("HTTP %s", resp.Status)
	default:
		return 0, Permanentf("HTTP %s", resp.Status)
	}
	if resp.ContentLength > max {
		return 0, Permanentf("input is %d bytes, more than EXECUTOR_MAX_INPUT_BYTES=%d", resp.ContentLength, max)
	}
	return copyCapped(ctx, w, resp.Body, max, kick)
}

// watchStall returns a context that ends when kick has not been called for
// stallTimeout, the kick function, and a function that releases it.
func watchStall(ctx context.Context) (context.Context, func(), func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(stallTimeout, func() { cancel(fmt.Errorf("no data for %v", stallTimeout)) })
	return ctx, func() { t.Reset(stallTimeout) }, func() { t.Stop(); cancel(nil) }
}

// copyCapped copies r to w, failing permanently past max bytes; kick is
// called whenever data arrives.
func copyCapped(ctx context.Context, w io.Writer, r io.Reader, max int64, kick func()) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			kick()
			if n+int64(k) > max {
				return n, Permanentf("input is more than EXECUTOR_MAX_INPUT_BYTES=%d bytes", max)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return n, Permanent(fmt.Errorf("write input: %w", err))
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return n, fmt.Errorf("read: %w (%v)", rerr, context.Cause(ctx))
			}
			return n, fmt.Errorf("read: %w", rerr)
		}
	}
}

// storageError turns a storage error into the executor's terms: a missing
// object is a missing input and, like a refused request, permanent (exit
// 2); everything else is transient.
func storageError(err error) error {
	switch bucket.KindOf(err) {
	case bucket.NotFound:
		return Permanentf("input missing: %w", err)
	case bucket.TooLarge, bucket.Permanent:
		return Permanent(err)
	}
	return err
}

// retry calls fn up to attempts times while it fails with an error that is
// not permanent, waiting backoff, 2×backoff, … in between.
func retry(ctx context.Context, attempts int, backoff time.Duration, log *slog.Logger, what string, fn func(context.Context) error) error {
	for i := 1; ; i++ {
		err := fn(ctx)
		if err == nil || IsPermanent(err) || ctx.Err() != nil || i >= attempts {
			if err != nil && !IsPermanent(err) && i > 1 && ctx.Err() == nil {
				err = fmt.Errorf("%w (after %d attempts)", err, i)
			}
			return err
		}
		var ne net.Error
		log.Warn("transient failure; retrying", "what", what, "attempt", i, "of", attempts,
			"error", oneLine(err.Error()), "timeout", errors.As(err, &ne) && ne.Timeout(), "backoff", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to retry: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff *= 2
	}
}
