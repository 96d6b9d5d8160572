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
)

// ProcessLauncher runs an attempt as child processes on this machine: one
// per step, in order, in a fresh process group. Step k's OUTPUT_DIR is step
// k+1's INPUT_DIR (multi-worker); only the last step gets OUTPUT_URL, so only
// the pipeline's result is uploaded. No shell is involved: each step is an
// argv.
type ProcessLauncher struct {
	Steps [][]string    // argv of each step; at least one
	Env   []string      // the executors' environment (KEY=VALUE), WORK_ITEM_FILE etc. are added
	Grace time.Duration // SIGTERM → SIGKILL delay when an attempt is stopped (default 10s)
	Log   *slog.Logger
}

// Launch runs the steps of one attempt.
func (p *ProcessLauncher) Launch(ctx context.Context, a *Attempt) (int, error) {
	if len(p.Steps) == 0 {
		return -1, errors.New("no command to run (MANAGER_COMMAND or MANAGER_STEPS)")
	}
	prevOut := ""
	for i, argv := range p.Steps {
		last := i == len(p.Steps)-1
		out := filepath.Join(a.WorkDir, "out")
		if len(p.Steps) > 1 {
			out = filepath.Join(a.WorkDir, fmt.Sprintf("step%d-out", i+1))
		}
		if err := os.MkdirAll(out, 0o750); err != nil {
			return -1, fmt.Errorf("create %s: %w", out, err)
		}
		env := append([]string(nil), p.Env...)
		if !last {
			env = without(env, "OUTPUT_URL")
		}
		env = append(env,
			"WORK_ITEM_FILE="+a.ItemFile,
			"OUTPUT_DIR="+out,
			"ITEMQ_JOB_NAME="+a.Job,
			"ITEMQ_ATTEMPT="+strconv.Itoa(a.Number),
			"ITEMQ_STEP="+strconv.Itoa(i+1),
		)
		if prevOut != "" {
			env = without(env, "INPUT_DIR")
			env = append(env, "INPUT_DIR="+prevOut)
		}
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pgid := cmd.Process.Pid
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
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1, fmt.Errorf("%s killed by signal %v", filepath.Base(argv[0]), ws.Signal())
		}
		return ee.ExitCode(), nil
	}
	return -1, fmt.Errorf("run %s: %w", argv[0], err)
}

func without(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
