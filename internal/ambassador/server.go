// Package ambassador is the HTTP server of every itemq ambassador: the v1
// item API of itemapi over a source.Source, with health, readiness and
// Prometheus metrics, JSON logs and graceful shutdown. Each ambassador's
// main.go is one call to Main with the function that opens its driver.
package ambassador

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/itemq/itemq/internal/cli"
	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/httpapi"
	"github.com/itemq/itemq/internal/logging"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/version"
)

// Config is the part of an ambassador's configuration every ambassador
// shares. Drivers read their own variables (DIR_*, BUCKET_*, KAFKA_*).
type Config struct {
	Addr            string        `env:"ITEMQ_ADDR" envDefault:"127.0.0.1:8080"`
	LogLevel        string        `env:"ITEMQ_LOG_LEVEL" envDefault:"info"`
	LogFormat       string        `env:"ITEMQ_LOG_FORMAT" envDefault:"json"`
	Heartbeat       time.Duration `env:"ITEMQ_WATCH_HEARTBEAT" envDefault:"15s"`
	ShutdownTimeout time.Duration `env:"ITEMQ_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// Server bounds slow and idle clients and watch streams.
	httpapi.ServerConfig
}

// OpenFunc opens an ambassador's source from its environment. The source
// lives until ctx ends; Run closes it.
type OpenFunc func(ctx context.Context, environ []string, log *slog.Logger) (*source.Source, error)

// Main runs an ambassador as a process: signals cancel it, and errors end it
// with exit code 1 (2 for bad usage or configuration).
func Main(binary string, open OpenFunc) {
	cli.Main(binary, func(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
		return Run(ctx, binary, args, environ, stdout, stderr, open)
	})
}

// Run is an ambassador's whole life: read the configuration, open the
// source, serve until ctx ends, shut down gracefully.
func Run(ctx context.Context, binary string, args, environ []string, stdout, stderr io.Writer, open OpenFunc) error {
	if done, err := cli.Args(binary, args, stdout, "Configured by environment variables; see the README's table."); done || err != nil {
		return err
	}
	var cfg Config
	if err := config.Parse(&cfg, environ); err != nil {
		return err
	}
	if cfg.Heartbeat <= 0 {
		return config.Invalid(fmt.Errorf("ITEMQ_WATCH_HEARTBEAT=%v: must be positive", cfg.Heartbeat))
	}
	if err := cfg.ServerConfig.Validate(); err != nil {
		return config.Invalid(err)
	}
	log, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return config.Invalid(err)
	}
	log = log.With("binary", binary)

	src, err := open(ctx, environ, log)
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return Serve(ctx, ln, src, log, binary, cfg)
}

// Serve answers the item API on ln until ctx ends, then shuts down: new
// connections are refused, watch streams end, requests in flight finish
// within cfg.ShutdownTimeout.
func Serve(ctx context.Context, ln net.Listener, src *source.Source, log *slog.Logger, binary string, cfg Config) error {
	if cfg.ServerConfig == (httpapi.ServerConfig{}) {
		cfg.ServerConfig = httpapi.DefaultServerConfig()
	}
	h, shutdownWatches := NewHandler(src, log, binary, cfg.Heartbeat, WithMaxWatchers(cfg.MaxWatchers))
	srv := httpapi.NewServer(h, cfg.ServerConfig, log)
	log.Info("listening", "addr", ln.Addr().String(), "version", version.Version)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		shutdownWatches()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownWatches()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

type server struct {
	watchers  *httpapi.Limiter
	src       *source.Source
	log       *slog.Logger
	metrics   *metrics
	heartbeat time.Duration
	shutdown  context.Context
}

// HandlerOption configures NewHandler.
type HandlerOption func(*server)

// WithMaxWatchers caps the open watch streams (default
// httpapi.DefaultServerConfig().MaxWatchers); past it a watch is a 503.
func WithMaxWatchers(n int) HandlerOption {
	return func(s *server) { s.watchers = httpapi.NewLimiter(n, "ITEMQ_MAX_WATCHERS") }
}

// NewHandler returns the ambassador's HTTP handler over src, and a function
// that ends every watch stream (for shutdown).
func NewHandler(src *source.Source, log *slog.Logger, binary string, heartbeat time.Duration, opts ...HandlerOption) (http.Handler, func()) {
	shutdown, cancel := context.WithCancel(context.Background())
	s := &server{src: src, log: log, metrics: newMetrics(binary, src), heartbeat: heartbeat, shutdown: shutdown}
	WithMaxWatchers(httpapi.DefaultServerConfig().MaxWatchers)(s)
	for _, o := range opts {
		o(s)
	}
	e := httpapi.New(log)
	e.Use(s.observe)
	s.routes(e)
	return e, cancel
}

// observe records metrics and a debug log line per request.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		method := c.Request().Method
		code := c.Response().Status
		watch := c.Request().URL.Query().Get("watch") == "true"
		if !watch {
			s.metrics.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}
		s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
		s.log.Debug("request", "method", method, "path", c.Request().URL.EscapedPath(), "code", code, "dur", time.Since(start))
		return nil
	}
}
