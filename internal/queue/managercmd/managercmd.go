// Package managercmd is the itemq-manager program: configuration, the choice
// of source and runner, the manager and its status API, and shutdown.
package managercmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/itemq/itemq/internal/cli"
	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/logging"
	"github.com/itemq/itemq/internal/queue"
	"github.com/itemq/itemq/internal/queue/local"
	"github.com/itemq/itemq/internal/version"
)

const binary = "itemq-manager"

// Main runs the manager as a process and exits.
func Main() { cli.Main(binary, Run) }

// usageError marks a usage or configuration error (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() []error { return []error{u.error, config.ErrInvalid} }

// Run is the manager's whole life.
func Run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if done, err := cli.Args(binary, args, stdout, "Configured by MANAGER_* environment variables; see the README's table."); done || err != nil {
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return usageError{err}
	}
	log, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return usageError{err}
	}
	log = log.With("binary", binary, "queue", cfg.Queue)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src, closeSrc, err := openSource(ctx, cfg.Source, environ, cfg, log)
	if err != nil {
		return usageError{err}
	}
	defer closeSrc()

	runner, err := newRunner(ctx, cfg, environ, log)
	if err != nil {
		return err
	}
	m := queue.New(queue.Config{
		Queue: cfg.Queue, MinActive: cfg.MinActive, MaxActive: cfg.MaxActive,
		TargetUtilization: cfg.TargetUtilization, DrainTime: cfg.DrainTime, ScaleDownDelay: cfg.ScaleDownDelay,
		CreateRate: cfg.CreateRate, CreateBurst: cfg.CreateBurst, Resync: cfg.Resync, Retention: cfg.Retention,
		DispatchWorkers: cfg.DispatchWorkers, OutputURL: cfg.jobEnv["OUTPUT_URL"], Log: log,
	}, src, runner)
	lost, stopElection, err := startLeaderElection(ctx, cfg, runner, m, log)
	if err != nil {
		return err
	}
	defer stopElection()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (MANAGER_ADDR): %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           queue.NewAPI(m, queue.APIOptions{Token: cfg.Token, MaxSubmitBytes: cfg.MaxSubmitBytes, Log: log}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version.Version, "runner", cfg.Runner, "source", cfg.Source)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	select {
	case err = <-runErr:
	case err = <-srvErr:
		err = fmt.Errorf("status API: %w", err)
		cancel()
		<-runErr
	case err = <-lost:
		cancel()
		<-runErr
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return err
}

// newRunner makes the runner MANAGER_RUNNER names.
func newRunner(ctx context.Context, cfg *Config, environ []string, log *slog.Logger) (queue.Runner, error) {
	switch cfg.Runner {
	case "local":
		if len(cfg.steps) == 0 {
			return nil, usageError{errors.New("the local runner needs MANAGER_COMMAND (the executor's argv, e.g. bin/itemq-thumbnail) or MANAGER_STEPS")}
		}
		return local.New(local.Config{
			Queue: cfg.Queue, StateDir: cfg.StateDir, WorkDir: cfg.WorkDir, MaxAttempts: cfg.MaxAttempts,
			BackoffBase: cfg.RetryBackoff, BackoffMax: cfg.RetryBackoffMax, JobTimeout: cfg.JobTimeout,
			LogMaxBytes: cfg.LogMaxBytes, NoSync: !cfg.StateFsync, Log: log,
		}, &local.ProcessLauncher{Steps: cfg.steps, Env: cfg.executorEnv(environ), Grace: cfg.Grace, Log: log})
	case "kubernetes":
		return newKubeRunner(ctx, cfg, environ, log)
	case "podman", "docker":
		return newContainerRunner(ctx, cfg, log)
	}
	return nil, usageError{fmt.Errorf("MANAGER_RUNNER=%q: want local, podman, docker or kubernetes", cfg.Runner)}
}
