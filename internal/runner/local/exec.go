package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/itemq/itemq/internal/runner"

	"github.com/itemq/itemq/internal/sysproc"
)

// ProcessLauncher runs an attempt as child processes on this machine: one
// per step, in order, in a fresh process group. Step k's OUTPUT_DIR is step
// k+1's INPUT_DIR (multi-worker); only the last step gets OUTPUT_URL, so only
// the pipeline's result is uploaded. No shell is involved: each step is an
// argv.
type ProcessLauncher struct {
	Steps [][]string    // argv of each step; at least one
	Env   []string      // the executors' environment (KEY=VALUE); runner.ExecutorEnv adds the contract's variables
	Grace time.Duration // SIGTERM → SIGKILL delay when an attempt is stopped (default 10s)
	Log   *slog.Logger
}

// Launch runs the steps of one attempt.
func (p *ProcessLauncher) Launch(ctx context.Context, a *Attempt) (int, error) {
	if len(p.Steps) == 0 {
		return -1, errors.New("no command to run (MANAGER_COMMAND or MANAGER_STEPS)")
	}
	base := envMap(p.Env)
	prevOut := ""
	for i, argv := range p.Steps {
		out := filepath.Join(a.WorkDir, "out")
		if len(p.Steps) > 1 {
			out = filepath.Join(a.WorkDir, fmt.Sprintf("step%d-out", i+1))
		}
		if err := os.MkdirAll(out, 0o750); err != nil {
			return -1, fmt.Errorf("create %s: %w", out, err)
		}
		env := runner.EnvStrings(runner.ExecutorEnv(runner.EnvSpec{
			Queue: a.Queue, Job: a.Job, Attempt: a.Number, Step: i + 1, Steps: len(p.Steps),
			ItemFile: a.ItemFile, InputDir: prevOut, OutputDir: out, Base: base,
		}))
		if len(p.Steps) > 1 {
			a.Log.Notef("step %d of %d: %s", i+1, len(p.Steps), strings.Join(argv, " "))
		}
		code, err := p.runStep(ctx, argv, env, a)
		if err != nil || code != 0 {
			return code, err
		}
		prevOut = out
	}
	return 0, nil
}

func (p *ProcessLauncher) runStep(ctx context.Context, argv, env []string, a *Attempt) (int, error) {
	grace := p.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	// Pdeathsig is tied to the OS thread that starts the child: keep this
	// goroutine on it until the child is reaped, so that the child gets
	// SIGTERM if the manager dies (even by SIGKILL) and never runs on,
	// unsupervised, beside the attempt a restarted manager makes.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = a.WorkDir
	cmd.Stdout = a.Log
	cmd.Stderr = a.Log
	cmd.SysProcAttr = sysproc.Child(true, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pgid := cmd.Process.Pid
	if a.Ran != nil {
		a.Ran("pid " + strconv.Itoa(pgid))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-done
		}
	}
	// Whatever the step left behind in its group goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws, ok := ee.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() {
			return ee.ExitCode(), nil // it exited: it finished its own shutdown
		}
		// Killed by a signal (the OOM killer, a person): it may have left
		// its step's script running in a group of its own. Stop what still
		// runs in the attempt's directory before the next attempt can start
		// beside it.
		dir, base := filepath.Split(filepath.Clean(a.WorkDir))
		if groups := sysproc.GroupsIn(dir, func(n string) bool { return n == base }); len(groups) > 0 {
			a.Log.Notef("stopping what the attempt left running (process groups %v)", groups)
			sysproc.StopGroups(groups, grace)
		}
		return -1, fmt.Errorf("%s killed by signal %v", filepath.Base(argv[0]), ws.Signal())
	}
	return -1, fmt.Errorf("run %s: %w", argv[0], err)
}

// envMap is KEY=VALUE strings as a map (a later KEY wins).
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
