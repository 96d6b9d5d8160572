// Package script is the step of itemq-script: it runs the user's command
// (the arguments after "--", or the executable file named by SCRIPT) on the
// item, never through a shell, and maps its exit status to the executor's.
package script

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/itemq/itemq/internal/config"
	"github.com/itemq/itemq/internal/executor"
)

// Config is the environment of the script step.
type Config struct {
	Script         string `env:"SCRIPT"`
	PermanentCodes string `env:"SCRIPT_PERMANENT_EXIT_CODES"`
}

// Step runs one command per item.
type Step struct {
	Path      string   // the resolved executable
	Args      []string // its arguments
	Permanent map[int]bool
}

// New builds the step: the command is args when there are any, else the
// executable named by SCRIPT (run without arguments).
func New(args, environ []string) (executor.Step, error) {
	var cfg Config
	if err := config.Parse(&cfg, environ); err != nil {
		return nil, err
	}
	s := &Step{Permanent: map[int]bool{}}
	switch {
	case len(args) > 0:
		s.Path, s.Args = args[0], args[1:]
	case cfg.Script != "":
		s.Path = cfg.Script
	default:
		return nil, errors.New("no command: give it after -- or name an executable file in SCRIPT")
	}
	p, err := lookPath(s.Path, environ)
	if err != nil {
		return nil, fmt.Errorf("command %q: %w", s.Path, err)
	}
	s.Path = p
	for f := range strings.SplitSeq(cfg.PermanentCodes, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		c, err := strconv.Atoi(f)
		if err != nil || c < 1 || c > 255 {
			return nil, fmt.Errorf("SCRIPT_PERMANENT_EXIT_CODES=%q: want a comma-separated list of exit codes 1-255", cfg.PermanentCodes)
		}
		s.Permanent[c] = true
	}
	return s, nil
}

// lookPath resolves a command name without a slash on the PATH of environ.
func lookPath(name string, environ []string) (string, error) {
	if strings.Contains(name, "/") {
		return exec.LookPath(name)
	}
	path := config.Environ(environ)["PATH"]
	for dir := range strings.SplitSeq(path, ":") {
		if dir == "" {
			dir = "."
		}
		if p, err := exec.LookPath(dir + "/" + name); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Run runs the command with the run's environment and maps its exit
// status: 0 is success, a code listed in SCRIPT_PERMANENT_EXIT_CODES a
// permanent failure, anything else a transient one.
func (s *Step) Run(ctx context.Context, r *executor.Run) error {
	cmd := r.Command(s.Path, s.Args...)
	r.Log.Info("running the command", "phase", "step", "path", s.Path, "args", len(s.Args))
	err := cmd.Run(ctx)
	var ee *executor.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil && ee.Signal == 0 && s.Permanent[ee.Code] {
		return executor.Permanentf("%w (listed in SCRIPT_PERMANENT_EXIT_CODES)", err)
	}
	return err
}
