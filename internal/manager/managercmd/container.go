package managercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"

	"github.com/itemq/itemq/internal/runner/container"
	"github.com/itemq/itemq/internal/runner/local"
)

// ContainerConfig configures the podman and docker runners; see
// docs/container-runner.md.
type ContainerConfig struct {
	Image   string `env:"MANAGER_IMAGE"`
	Engine  string `env:"MANAGER_CONTAINER_ENGINE"`
	Network string `env:"MANAGER_CONTAINER_NETWORK"`
	// Volumes and RunArgs are JSON arrays of strings.
	Volumes        string `env:"MANAGER_CONTAINER_VOLUMES"`
	RunArgs        string `env:"MANAGER_CONTAINER_RUN_ARGS"`
	Pull           string `env:"MANAGER_CONTAINER_PULL" envDefault:"missing"`
	StopOnShutdown bool   `env:"MANAGER_CONTAINER_STOP_ON_SHUTDOWN" envDefault:"false"`
}

// newContainerRunner is the local runner over container.Launcher
// (MANAGER_RUNNER=podman or docker).
func newContainerRunner(ctx context.Context, cfg *Config, log *slog.Logger) (*local.Runner, error) {
	cc := cfg.Container
	if cc.Image == "" {
		return nil, usageError{fmt.Errorf("the %s runner needs MANAGER_IMAGE: the executor image (e.g. ghcr.io/itemq/itemq-thumbnail:v0.4.0)", cfg.Runner)}
	}
	engine := cc.Engine
	if engine == "" {
		engine = cfg.Runner
	}
	path, err := exec.LookPath(engine)
	if err != nil {
		return nil, usageError{fmt.Errorf("MANAGER_CONTAINER_ENGINE=%q: %w", engine, err)}
	}
	volumes, err := jsonStrings("MANAGER_CONTAINER_VOLUMES", cc.Volumes)
	if err != nil {
		return nil, usageError{err}
	}
	runArgs, err := jsonStrings("MANAGER_CONTAINER_RUN_ARGS", cc.RunArgs)
	if err != nil {
		return nil, usageError{err}
	}
	l, err := container.New(container.Config{
		Engine: path, Image: cc.Image, Steps: cfg.steps, Env: cfg.jobEnv, Queue: cfg.Queue, WorkDir: cfg.WorkDir,
		Network: cc.Network, Volumes: volumes, RunArgs: runArgs, Pull: cc.Pull, Grace: cfg.Grace,
		StopOnShutdown: cc.StopOnShutdown, Log: log,
	})
	if err != nil {
		return nil, usageError{err}
	}
	if err := l.Check(ctx); err != nil {
		return nil, fmt.Errorf("%s runner: %w", cfg.Runner, err)
	}
	return local.New(local.Config{
		Queue: cfg.Queue, StateDir: cfg.StateDir, WorkDir: cfg.WorkDir, MaxAttempts: cfg.MaxAttempts,
		BackoffBase: cfg.RetryBackoff, BackoffMax: cfg.RetryBackoffMax, JobTimeout: cfg.JobTimeout,
		LogMaxBytes: cfg.LogMaxBytes, NoSync: !cfg.StateFsync, Log: log,
	}, l)
}

// jsonStrings parses a JSON array of strings ("" is none).
func jsonStrings(name, v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of strings: %w", name, err)
	}
	for _, s := range out {
		if s == "" {
			return nil, errors.New(name + ": empty element")
		}
	}
	return out, nil
}
