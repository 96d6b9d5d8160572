// Package managercmd is the itemq-manager program: configuration, the choice
// of source and runner, the manager and its status API, and shutdown.
package managercmd

import (
	"context"
	"errors"
	"fmt"
	"github.com/itemq/itemq/internal/httpapi"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/cli"
	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/logging"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/dashboard"
	"github.com/itemq/itemq/internal/manager/idempotency"
	"github.com/itemq/itemq/internal/manager/statusapi"
	"github.com/itemq/itemq/internal/manager/webhook"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/pool"
	"github.com/itemq/itemq/internal/version"
	"github.com/itemq/itemq/itemapi"
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
	mcfg := manager.Config{
		Queue: cfg.Queue, MinActive: cfg.MinActive, MaxActive: cfg.MaxActive,
		TargetUtilization: cfg.TargetUtilization, DrainTime: cfg.DrainTime, ScaleDownDelay: cfg.ScaleDownDelay, TargetWait: cfg.TargetWait, Pool: cfg.Execution == "pool",
		CreateRate: cfg.CreateRate, CreateBurst: cfg.CreateBurst, Resync: cfg.Resync, Retention: cfg.Retention,
		DispatchWorkers: cfg.DispatchWorkers, OutputURL: cfg.jobEnv["OUTPUT_URL"], Log: log,
		Fair: manager.Fair{PriorityField: cfg.PriorityField, LowShare: cfg.PriorityShare, KeyField: cfg.FairKey,
			Weights: cfg.weights, KeyCap: cfg.FairKeyCap},
	}
	if cfg.PriorityShare == 0 {
		mcfg.Fair.LowShare = -1 // MANAGER_PRIORITY_LOW_SHARE=0: strict priority
	}
	hooks, err := newWebhooks(cfg, &mcfg, log)
	if err != nil {
		return err
	}
	m := manager.New(mcfg, src, runner)
	if hooks != nil {
		m.Registry().MustRegister(hooks.Collectors()...)
		hookCtx, stopHooks := context.WithCancel(ctx)
		hooksDone := make(chan struct{})
		go func() { _ = hooks.Run(hookCtx); close(hooksDone) }()
		defer func() { stopHooks(); <-hooksDone }()
	}
	lost, stopElection, err := startLeaderElection(ctx, cfg, runner, m, log)
	if err != nil {
		return err
	}
	defer stopElection()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (MANAGER_ADDR): %w", cfg.Addr, err)
	}
	if procs, ok := poolProcesses(runner); ok && procs.URL == "" {
		procs.URL = "http://" + dialable(ln.Addr().(*net.TCPAddr))
	}
	idem, err := idempotency.Open(cfg.StateDir, cfg.IdempotencyTTL, !cfg.StateFsync)
	if err != nil {
		return err
	}
	defer idem.Close()
	var ui http.Handler
	if cfg.Dashboard {
		dopts := dashboard.Options{Token: cfg.Token, ReadToken: cfg.ReadToken, Source: bucket.RedactURL(cfg.Source), Log: log}
		if hooks != nil {
			dopts.Deliveries = hooks.Deliveries
		}
		dash := dashboard.New(m, dopts)
		dashCtx, stopDash := context.WithCancel(ctx)
		dashDone := make(chan struct{})
		go func() { _ = dash.Run(dashCtx); close(dashDone) }()
		defer func() { stopDash(); <-dashDone }()
		ui = dash
	}
	var api http.Handler = statusapi.NewAPI(m, statusapi.APIOptions{
		Token: cfg.Token, ReadToken: cfg.ReadToken, Idempotency: idem, MaxSubmitBytes: cfg.MaxSubmitBytes, Dashboard: ui, Log: log,
	})
	if p, ok := runner.(interface{ Handler() http.Handler }); ok {
		// The pool's workers lease their items here (docs/pool.md).
		mux := http.NewServeMux()
		mux.Handle(pool.PathPrefix, p.Handler())
		mux.Handle("/", api)
		api = mux
	}
	srv := httpapi.NewServer(api, cfg.Server, log)
	log.Info("listening", "addr", ln.Addr().String(), "version", version.Version, "runner", cfg.Runner, "execution", cfg.Execution, "source", cfg.Source)
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

// newWebhooks makes the completion-event sender MANAGER_WEBHOOK_URL asks
// for (nil without it) and hooks it to the manager's configuration.
func newWebhooks(cfg *Config, mcfg *manager.Config, log *slog.Logger) (*webhook.Sender, error) {
	if cfg.WebhookURL == "" {
		return nil, nil
	}
	s, err := webhook.New(webhook.Config{
		URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Source: "itemq/" + cfg.Queue, StateDir: cfg.StateDir,
		Timeout: cfg.WebhookTimeout, MaxBackoff: cfg.WebhookBackoffMax, Workers: cfg.WebhookWorkers,
		MaxPending: cfg.WebhookMaxPending, Retention: cfg.Retention + cfg.WebhookReplay, NoSync: !cfg.StateFsync, Log: log,
	})
	if err != nil {
		return nil, err
	}
	types := map[string]string{manager.EventSucceeded: webhook.TypeSucceeded, manager.EventFailed: webhook.TypeFailed,
		manager.EventDead: webhook.TypeDead, manager.EventCancelled: webhook.TypeCancelled}
	mcfg.OnFinish = func(event string, st itemapi.JobStatus, id string) { s.Enqueue(types[event], st, id) }
	mcfg.EventReplay = cfg.WebhookReplay
	return s, nil
}

// newPool makes the pool runner (MANAGER_EXECUTION=pool) over workers.
func newPool(cfg *Config, lcfg local.Config, workers pool.Workers) (*pool.Runner, error) {
	r, err := pool.New(pool.Config{Config: lcfg, Launcher: pool.LauncherConfig{
		Env: cfg.jobEnv, Token: cfg.PoolToken, TTL: cfg.PoolLeaseTTL, Grace: cfg.Grace,
	}}, workers)
	if err != nil {
		return nil, usageError{err}
	}
	return r, nil
}

// poolProcesses is the pool's worker processes, if the runner is a pool
// on this machine.
func poolProcesses(r runner.Runner) (*pool.Processes, bool) {
	p, ok := r.(*pool.Runner)
	if !ok {
		return nil, false
	}
	procs, ok := p.Workers().(*pool.Processes)
	return procs, ok
}

// dialable is a listener's address as a client on this machine dials it
// (an unspecified address is the loopback).
func dialable(a *net.TCPAddr) string {
	if a.IP == nil || a.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return a.String()
}

// newRunner makes the runner MANAGER_RUNNER names.
func newRunner(ctx context.Context, cfg *Config, environ []string, log *slog.Logger) (runner.Runner, error) {
	switch cfg.Runner {
	case "local":
		if len(cfg.steps) == 0 {
			return nil, usageError{errors.New("the local runner needs MANAGER_COMMAND (the executor's argv, e.g. bin/itemq-thumbnail) or MANAGER_STEPS")}
		}
		lcfg := localConfig(cfg, log)
		if cfg.Execution == "pool" {
			env := cfg.executorEnv(environ)
			if cfg.WorkDir != "" {
				env = append(env, "TMPDIR="+cfg.WorkDir) // the workers' attempt directories
			}
			return newPool(cfg, lcfg, &pool.Processes{Command: cfg.steps[0], Env: env, URL: cfg.PoolURL, Token: cfg.PoolToken, Log: log})
		}
		return local.New(lcfg, &local.ProcessLauncher{Steps: cfg.steps, Env: cfg.executorEnv(environ), Grace: cfg.Grace, Log: log})
	case "kubernetes":
		if cfg.Execution == "pool" {
			return newKubePool(cfg, localConfig(cfg, log), environ, log)
		}
		return newKubeRunner(ctx, cfg, environ, log)
	case "podman", "docker":
		return newContainerRunner(ctx, cfg, log)
	}
	return nil, usageError{fmt.Errorf("MANAGER_RUNNER=%q: want local, podman, docker or kubernetes", cfg.Runner)}
}

// localConfig is the local runner's settings (its record and attempts;
// also the pool's).
func localConfig(cfg *Config, log *slog.Logger) local.Config {
	return local.Config{
		Queue: cfg.Queue, StateDir: cfg.StateDir, WorkDir: cfg.WorkDir, MaxAttempts: cfg.MaxAttempts,
		BackoffBase: cfg.RetryBackoff, BackoffMax: cfg.RetryBackoffMax, JobTimeout: cfg.JobTimeout,
		LogMaxBytes: cfg.LogMaxBytes, NoSync: !cfg.StateFsync, Grace: cfg.Grace, Log: log,
	}
}
