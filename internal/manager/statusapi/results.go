package statusapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/manager/results"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

// nameAndQuery reads the item name after prefix and the strict query.
func nameAndQuery(c echo.Context, prefix string) (string, url.Values, error) {
	name, err := httpapi.PathName(c.Request(), prefix)
	if err != nil {
		return "", nil, err
	}
	q, err := httpapi.Query(c.Request())
	return name, q, err
}

// logPoll is how often a followed log is checked for more.
const logPoll = 200 * time.Millisecond

// logs serves a job's log: all of it, its last tail lines, and with
// follow=true what is written next, until the job ends.
func (a *api) logs(c echo.Context) error {
	name, q, err := nameAndQuery(c, "/v1/logs/")
	if err != nil {
		return err
	}
	tail := 0
	if t := q.Get("tail"); t != "" {
		if tail, err = strconv.Atoi(t); err != nil || tail < 0 {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "tail=%q: want a whole number of lines ≥ 0 (0: all)", t)
		}
	}
	follow := false
	if f := q.Get("follow"); f != "" {
		if follow, err = strconv.ParseBool(f); err != nil {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "follow=%q: want true or false", f)
		}
	}
	st, ok := a.m.Status(name)
	if !ok {
		return itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", name)
	}
	if st.LogPath == "" {
		if st.Attempts == 0 && st.State != itemapi.StateRunning {
			return itemapi.NewStatus(itemapi.ReasonNotFound, "the job of %q has not run yet: no log", name)
		}
		rc, ok, err := a.m.Logs(c.Request().Context(), name, tail, follow)
		switch {
		case !ok:
			return itemapi.NewStatus(itemapi.ReasonMethodNotAllowed, "this runner keeps no log the manager can read")
		case errors.Is(err, runner.ErrNotFound):
			return itemapi.NewStatus(itemapi.ReasonNotFound, "no log of %q: %v", name, err)
		case err != nil:
			return itemapi.NewStatus(itemapi.ReasonUnavailable, "the log of %q: %v", name, err)
		}
		defer rc.Close()
		return streamLog(c, rc, follow)
	}
	f, err := os.Open(st.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		return itemapi.NewStatus(itemapi.ReasonNotFound, "the job of %q has no log yet", name)
	}
	if err != nil {
		return fmt.Errorf("open the log of %q: %w", name, err)
	}
	defer f.Close()
	w := c.Response()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if follow {
		httpapi.LongLived(w)
	}
	w.WriteHeader(http.StatusOK)
	if tail > 0 {
		if err := writeTail(w, f, tail); err != nil {
			return nil // the header is out: nothing more to tell
		}
	} else if _, err := io.Copy(w, f); err != nil {
		return nil
	}
	w.Flush()
	if !follow {
		return nil
	}
	return a.followLog(c.Request().Context(), w, f, name)
}

// followLog copies what is appended to f until the job has finished and
// the log is read to its end, or the client goes.
func (a *api) followLog(ctx context.Context, w *echo.Response, f *os.File, item string) error {
	t := time.NewTicker(logPoll)
	defer t.Stop()
	for {
		st, _ := a.m.Status(item)
		n, err := io.Copy(w, f)
		if err != nil {
			return nil
		}
		if n > 0 {
			w.Flush()
			continue
		}
		if st.State.Finished() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// streamLog copies a runner's log stream to the answer, flushing as it goes.
func streamLog(c echo.Context, rc io.Reader, follow bool) error {
	w := c.Response()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if follow {
		httpapi.LongLived(w)
	}
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			w.Flush()
		}
		if err != nil {
			return nil
		}
	}
}

// maxTailBytes bounds what writeTail reads from the end of a log.
const maxTailBytes = 8 << 20

// writeTail writes the last n lines of f (within its last maxTailBytes),
// and leaves f at its end.
func writeTail(w io.Writer, f *os.File, n int) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	start := max(fi.Size()-maxTailBytes, 0)
	buf := make([]byte, fi.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return err
	}
	if _, err := f.Seek(start+int64(len(buf)), io.SeekStart); err != nil {
		return err
	}
	end := len(buf)
	if end > 0 && buf[end-1] == '\n' {
		end-- // the last line's newline does not start another line
	}
	cut := 0
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(buf[:end], '\n')
		if j < 0 {
			cut = 0
			break
		}
		cut, end = j+1, j
	}
	_, err = w.Write(buf[cut:])
	return err
}

// outputs answers a job's _SUCCESS.json manifest, or streams one of the
// files it lists (?file=NAME), from OUTPUT_URL through the manager.
func (a *api) outputs(c echo.Context) error {
	name, q, err := nameAndQuery(c, "/v1/outputs/")
	if err != nil {
		return err
	}
	if _, ok := a.m.Status(name); !ok {
		return itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", name)
	}
	ctx := c.Request().Context()
	file := q.Get("file")
	if file == "" {
		man, err := results.Manifest(ctx, a.m.OutputURL(), name)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, man)
	}
	out, err := results.Open(ctx, a.m.OutputURL(), name, file)
	if err != nil {
		return err
	}
	defer out.Close()
	w := c.Response()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(out.Size, 10))
	w.Header().Set(itemapi.OutputSHA256Header, out.SHA256)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := io.Copy(bw, out); err == nil {
		_ = bw.Flush()
	}
	return nil
}
