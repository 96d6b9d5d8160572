package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/itemq/itemq/itemapi"
)

// ServerConfig bounds what one client can hold of a server: the time to
// send a request's header and its body, the time to write an answer, how
// long an idle keep-alive connection stays open, and the number of watch
// streams. Every itemq HTTP server embeds it in its configuration.
type ServerConfig struct {
	ReadHeaderTimeout time.Duration `env:"ITEMQ_READ_HEADER_TIMEOUT" envDefault:"5s"`
	ReadTimeout       time.Duration `env:"ITEMQ_READ_TIMEOUT" envDefault:"30s"`
	WriteTimeout      time.Duration `env:"ITEMQ_WRITE_TIMEOUT" envDefault:"60s"`
	IdleTimeout       time.Duration `env:"ITEMQ_IDLE_TIMEOUT" envDefault:"60s"`
	MaxWatchers       int           `env:"ITEMQ_MAX_WATCHERS" envDefault:"64"`
}

// DefaultServerConfig is ServerConfig with the defaults of its env tags.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxWatchers:       64,
	}
}

// MaxHeaderBytes bounds a request's header (an escaped item name is at most
// 3 KiB).
const MaxHeaderBytes = 64 << 10

// Validate checks that every bound is set: a zero timeout would mean none.
func (c ServerConfig) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ITEMQ_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"ITEMQ_READ_TIMEOUT", c.ReadTimeout},
		{"ITEMQ_WRITE_TIMEOUT", c.WriteTimeout},
		{"ITEMQ_IDLE_TIMEOUT", c.IdleTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s=%v: must be positive", d.name, d.v))
		}
	}
	if c.ReadTimeout > 0 && c.ReadHeaderTimeout > c.ReadTimeout {
		errs = append(errs, fmt.Errorf("ITEMQ_READ_HEADER_TIMEOUT=%v is longer than ITEMQ_READ_TIMEOUT=%v, which includes it", c.ReadHeaderTimeout, c.ReadTimeout))
	}
	if c.MaxWatchers <= 0 {
		errs = append(errs, fmt.Errorf("ITEMQ_MAX_WATCHERS=%d: must be positive", c.MaxWatchers))
	}
	return errors.Join(errs...)
}

// NewServer returns an http.Server for h with the bounds of cfg: a client
// that sends its header or body too slowly is cut off (ReadHeaderTimeout,
// ReadTimeout, which covers header and body), an answer must be written
// within WriteTimeout (streams lift it with LongLived), and an idle
// keep-alive connection is closed after IdleTimeout.
func NewServer(h http.Handler, cfg ServerConfig, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// LongLived lifts the server's read and write deadlines of one request's
// connection, for a stream that may last hours (a watch). Without it, the
// ReadTimeout would end the stream: net/http reads ahead on the connection
// while the handler runs, and a read that times out cancels the request.
// The stream's own heartbeat and the client's going away end it instead.
func LongLived(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// Limiter caps concurrent long-lived requests (watch streams).
type Limiter struct {
	max  int64
	n    atomic.Int64
	what string // e.g. "ITEMQ_MAX_WATCHERS"
}

// NewLimiter returns a limiter of max concurrent holders; setting names the
// setting that raises it, for the error message.
func NewLimiter(max int, setting string) *Limiter {
	return &Limiter{max: int64(max), what: setting}
}

// Acquire takes a slot, or returns an Unavailable Status when all are taken.
// The release function must be called once.
func (l *Limiter) Acquire() (release func(), err error) {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		return nil, itemapi.NewStatus(itemapi.ReasonUnavailable, "too many watch streams are open (%s=%d); retry later", l.what, l.max)
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			l.n.Add(-1)
		}
	}, nil
}

// InUse is the number of slots taken.
func (l *Limiter) InUse() int { return int(l.n.Load()) }

// WriteStatus answers err as a Status document (see ToStatus), for handlers
// outside echo. An Unavailable answer carries Retry-After, an Unauthorized
// one WWW-Authenticate.
func WriteStatus(w http.ResponseWriter, r *http.Request, err error) {
	st := ToStatus(err)
	setStatusHeaders(w.Header(), st)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(st.Code)
	if r.Method != http.MethodHead {
		b, _ := json.Marshal(st)
		_, _ = w.Write(b)
	}
}

func setStatusHeaders(h http.Header, st *itemapi.Status) {
	switch st.Code {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="itemq"`)
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
}

const retryAfterSeconds = 5
