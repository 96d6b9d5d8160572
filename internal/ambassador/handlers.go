package ambassador

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/itemapi"
)

// NDJSONContentType is the content type of a watch stream.
const NDJSONContentType = "application/x-ndjson"

func (s *server) handleList(c echo.Context) error {
	q, err := httpapi.Query(c.Request())
	if err != nil {
		return err
	}
	if w := q.Get("watch"); w != "" {
		watch, err := strconv.ParseBool(w)
		if err != nil {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "watch=%q: want true or false", w)
		}
		if watch {
			return s.handleWatch(c)
		}
	}
	opts := source.ListOptions{Continue: q.Get("continue")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return itemapi.NewStatus(itemapi.ReasonBadRequest, "limit=%q: want a whole number ≥ 0", l)
		}
		opts.Limit = n
	}
	list, err := s.src.List(c.Request().Context(), opts)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, list)
}

func (s *server) handleGet(c echo.Context) error {
	name, err := itemName(c)
	if err != nil {
		return err
	}
	it, err := s.src.Get(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, it)
}

func (s *server) handleSubmit(c echo.Context) error {
	body, err := httpapi.ReadBody(c.Response(), c.Request(), s.src.MaxSubmitBytes())
	if err != nil {
		return err
	}
	it, err := s.src.Submit(c.Request().Context(), body)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", itemapi.ItemPath(it.Name))
	s.log.Info("item submitted", "item", it.Name, "bytes", len(body))
	return writeJSON(c, http.StatusCreated, it)
}

func (s *server) handleAck(c echo.Context) error {
	name, err := itemName(c)
	if err != nil {
		return err
	}
	q, err := httpapi.Query(c.Request())
	if err != nil {
		return err
	}
	raw := q.Get("outcome")
	if raw == "" {
		raw = string(itemapi.Succeeded)
	}
	outcome, err := itemapi.ParseOutcome(raw)
	if err != nil {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "%v", err)
	}
	if err := s.src.Ack(c.Request().Context(), name, outcome); err != nil {
		return err
	}
	s.log.Info("item acknowledged", "item", name, "outcome", outcome)
	return c.NoContent(http.StatusNoContent)
}

func (s *server) handleRedrive(c echo.Context) error {
	name, err := httpapi.PathName(c.Request(), "/v1/redrive/")
	if err != nil {
		return err
	}
	it, err := s.src.Redrive(c.Request().Context(), name)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", itemapi.ItemPath(it.Name))
	s.log.Info("item redriven", "item", name, "as", it.Name)
	return writeJSON(c, http.StatusOK, it)
}

func (s *server) handleWatch(c echo.Context) error {
	// Watch streams end when the client goes, or when the server shuts down.
	ctx, cancel := context.WithCancel(c.Request().Context())
	defer cancel()
	stop := context.AfterFunc(s.shutdown, cancel)
	defer stop()

	release, err := s.watchers.Acquire()
	if err != nil {
		s.metrics.watchRefused.Inc()
		return err
	}
	defer release()
	events, err := s.src.Watch(ctx)
	if err != nil {
		return err
	}
	s.metrics.watchClients.Inc()
	defer s.metrics.watchClients.Dec()

	w := c.Response()
	// A watch is long-lived: lift the server's read and write deadlines
	// (the read deadline would otherwise cancel it after ITEMQ_READ_TIMEOUT).
	httpapi.LongLived(w.Writer)
	w.Header().Set(echo.HeaderContentType, NDJSONContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	flush := func() bool {
		if bw.Flush() != nil {
			return false
		}
		w.Flush()
		return true
	}
	if !flush() {
		return nil
	}
	hb := time.NewTicker(s.heartbeat)
	defer hb.Stop()
	// After the snapshot, an ADDED event carries the item's document, so
	// that the reader needs no GET to start its job (one round trip less
	// per new item). The snapshot stays names only, to start fast.
	synced := false
	encode := func(ev itemapi.WatchEvent) error {
		switch {
		case ev.Type == itemapi.Synced:
			synced = true
		case ev.Type == itemapi.Added && synced:
			// Only small documents ride along: a watch line is at most
			// itemapi.MaxWatchLineBytes; a larger item is fetched by GET.
			if it, err := s.src.Get(ctx, ev.Name); err == nil && len(it.Data)+len(it.Name) <= itemapi.MaxWatchLineBytes/2 {
				ev.Item = it
			}
		}
		return enc.Encode(ev)
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				flush()
				return nil
			}
			if encode(ev) != nil {
				return nil
			}
			// Batch whatever else is ready before flushing.
		drain:
			for i := 0; i < 1024; i++ {
				select {
				case ev, ok := <-events:
					if !ok {
						flush()
						return nil
					}
					if encode(ev) != nil {
						return nil
					}
				default:
					break drain
				}
			}
			if !flush() {
				return nil
			}
			hb.Reset(s.heartbeat)
		case <-hb.C:
			if enc.Encode(itemapi.WatchEvent{Type: itemapi.Heartbeat}) != nil || !flush() {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	if err := s.src.Ready(ctx); err != nil {
		return itemapi.NewStatus(itemapi.ReasonUnavailable, "source not ready: %v", err)
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// itemName reads the item name from the request path: everything after
// /v1/items/, path-unescaped (so %2F is a "/" inside the name).
func itemName(c echo.Context) (string, error) {
	return httpapi.PathName(c.Request(), "/v1/items/")
}

func writeJSON(c echo.Context, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Blob(code, echo.MIMEApplicationJSON, b)
}
