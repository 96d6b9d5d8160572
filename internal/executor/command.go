package executor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMaxLine is the longest line of a child's output that is logged
// whole; longer lines are cut (the rest is read and dropped).
const DefaultMaxLine = 8 << 10

// Command is a child process of a step. It runs in its own process group,
// never through a shell, with stdin from /dev/null. Its stdout and stderr
// are read line by line as they come (so a chatty child never stalls) and
// handed to OnStdout and OnStderr, or logged at info level when those are
// nil. When ctx ends, the whole group gets SIGTERM, then SIGKILL after
// Grace; when the child itself exits, whatever it left running in its
// group is killed.
type Command struct {
	Path  string   // the executable (resolved with exec.LookPath when it has no slash)
	Args  []string // the arguments, without argv[0]
	Env   []string
	Dir   string
	Grace time.Duration
	Log   *slog.Logger
	// OnStdout and OnStderr get each line (without its newline); a line
	// longer than MaxLine is cut and truncated is true.
	OnStdout, OnStderr func(line string, truncated bool)
	MaxLine            int

	// Pid is set once the child has started (for tests and logs).
	Pid int
}

// ExitError is the error of a child that did not exit with status 0.
type ExitError struct {
	Path   string
	Code   int            // exit status, or -1 when killed by a signal
	Signal syscall.Signal // the signal that killed it, or 0
}

func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return fmt.Sprintf("%s killed by signal %v", e.Path, e.Signal)
	}
	return fmt.Sprintf("%s exited with status %d", e.Path, e.Code)
}

// Run starts the command and waits for it and its output. A non-zero exit
// is an *ExitError; when ctx ended first the error wraps ctx's error too.
func (c *Command) Run(ctx context.Context) error {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cmd := exec.Command(c.Path, c.Args...)
	if cmd.Err != nil {
		return fmt.Errorf("start %s: %w", c.Path, cmd.Err)
	}
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", c.Path, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("start %s: %w", c.Path, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := ctx.Err(); err != nil {
		closeAll(outR, outW, errR, errW)
		return fmt.Errorf("start %s: %w", c.Path, err)
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fmt.Errorf("start %s: %w", c.Path, err)
	}
	pid := cmd.Process.Pid
	c.Pid = pid
	maxLine := c.MaxLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	onOut, onErr := c.OnStdout, c.OnStderr
	if onOut == nil {
		onOut = logLines(log, "stdout")
	}
	if onErr == nil {
		onErr = logLines(log, "stderr")
	}
	var drained sync.WaitGroup
	var progress atomic.Int64 // bytes read, to tell slow draining from a stuck pipe
	drained.Add(2)
	go func() { defer drained.Done(); readLines(&countingReader{outR, &progress}, maxLine, onOut) }()
	go func() { defer drained.Done(); readLines(&countingReader{errR, &progress}, maxLine, onErr) }()

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var werr error
	stopped := false
	select {
	case werr = <-waitErr:
	case <-ctx.Done():
		stopped = true
		log.Info("stopping child process group", "pid", pid, "signal", "SIGTERM", "grace", c.Grace.String())
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		t := time.NewTimer(c.Grace)
		select {
		case werr = <-waitErr:
			t.Stop()
		case <-t.C:
			log.Warn("killing child process group after grace period", "pid", pid, "signal", "SIGKILL")
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			werr = <-waitErr
		}
	}
	// Whatever the child left running in its group goes with it.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	// Read what is left in the pipes. A process that left the group may
	// still hold them open: stop when nothing more arrives for a while.
	done := make(chan struct{})
	go func() { drained.Wait(); close(done) }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	last := progress.Load()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			if n := progress.Load(); n != last {
				last = n
				continue
			}
			log.Warn("a process outside the child's group still holds its output; closing it", "pid", pid)
			outR.Close()
			errR.Close()
			<-done
			break wait
		}
	}
	outR.Close()
	errR.Close()

	var ee *exec.ExitError
	var xerr error
	if errors.As(werr, &ee) {
		ws, _ := ee.Sys().(syscall.WaitStatus)
		x := &ExitError{Path: c.Path, Code: ws.ExitStatus()}
		if ws.Signaled() {
			x.Code, x.Signal = -1, ws.Signal()
		}
		xerr = x
	} else if werr != nil {
		xerr = fmt.Errorf("wait for %s: %w", c.Path, werr)
	}
	if stopped {
		if xerr == nil {
			xerr = fmt.Errorf("%s exited with status 0 after it was stopped", c.Path)
		}
		return fmt.Errorf("%w: %w", context.Cause(ctx), xerr)
	}
	return xerr
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

func logLines(log *slog.Logger, stream string) func(string, bool) {
	return func(line string, truncated bool) {
		if truncated {
			log.Info("child output", "stream", stream, "line", line, "truncated", true)
			return
		}
		log.Info("child output", "stream", stream, "line", line)
	}
}

// readLines calls fn for each line of r until EOF or an error; a line longer
// than maxLine is cut and the rest of it dropped.
func readLines(r io.Reader, maxLine int, fn func(string, bool)) {
	br := bufio.NewReaderSize(r, maxLine)
	skipping := false
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !skipping) {
			if !skipping {
				fn(strings.ToValidUTF8(string(line), "\uFFFD"), isPrefix)
			}
		}
		skipping = isPrefix
		if err != nil {
			return
		}
	}
}
