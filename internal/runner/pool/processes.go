package pool

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/itemq/itemq/internal/sysproc"
)

// Processes are the pool's workers as processes on this machine: each runs
// Command (an executor, which becomes a worker when ITEMQ_POOL_URL is set)
// with Env and the pool's variables. A worker that exits is replaced at
// the next Scale; a scale-down sends SIGTERM, idle workers first, and a
// busy one finishes its attempt. Each gets SIGTERM if the manager dies.
type Processes struct {
	Command []string
	Env     []string
	URL     string // the manager's address as the workers reach it
	Token   string
	Log     *slog.Logger

	mu    sync.Mutex
	procs []*proc
	seq   int
	wg    sync.WaitGroup
}

type proc struct {
	name     string
	cmd      *exec.Cmd
	exited   chan struct{}
	stopping bool
}

// Scale starts or stops workers until n run.
func (p *Processes) Scale(ctx context.Context, n int, idle []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := p.procs[:0]
	for _, w := range p.procs {
		select {
		case <-w.exited:
		default:
			live = append(live, w)
		}
	}
	p.procs = live
	running := 0
	for _, w := range p.procs {
		if !w.stopping {
			running++
		}
	}
	for ; running < n && ctx.Err() == nil; running++ {
		w, err := p.start()
		if err != nil {
			return err
		}
		p.procs = append(p.procs, w)
	}
	// Fewer: idle ones first, then the newest.
	for running > n {
		victim := -1
		for i := len(p.procs) - 1; i >= 0; i-- {
			if w := p.procs[i]; !w.stopping && (victim < 0 || slices.Contains(idle, w.name)) {
				victim = i
				if slices.Contains(idle, w.name) {
					break
				}
			}
		}
		w := p.procs[victim]
		w.stopping = true
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		running--
	}
	return nil
}

func (p *Processes) start() (*proc, error) {
	if len(p.Command) == 0 {
		return nil, fmt.Errorf("no command for the pool's workers (MANAGER_COMMAND)")
	}
	p.seq++
	w := &proc{name: "worker-" + strconv.Itoa(p.seq), exited: make(chan struct{})}
	started := make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(w.exited)
		// Pdeathsig is tied to the thread that starts the child: keep it
		// until the child is reaped.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(p.Command[0], p.Command[1:]...)
		cmd.Env = append(append([]string(nil), p.Env...), EnvURL+"="+p.URL, EnvToken+"="+p.Token, EnvWorker+"="+w.name)
		cmd.Stdout, cmd.Stderr = logWriter{p.Log, w.name}, logWriter{p.Log, w.name}
		cmd.SysProcAttr = sysproc.Child(false, syscall.SIGTERM)
		w.cmd = cmd
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start a pool worker (%s): %w", p.Command[0], err)
			return
		}
		started <- nil
		err := cmd.Wait()
		if p.Log != nil {
			p.Log.Info("pool worker exited", "worker", w.name, "err", err)
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return w, nil
}

// Stop stops every worker (SIGTERM; each finishes its attempt) and waits
// up to grace, then kills what is left.
func (p *Processes) Stop(grace time.Duration) {
	p.mu.Lock()
	procs := slices.Clone(p.procs)
	p.mu.Unlock()
	for _, w := range procs {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		for _, w := range procs {
			_ = w.cmd.Process.Kill()
		}
		<-done
	}
}

// logWriter passes a worker's own output (not its attempts': those go to
// the job's log) to the manager's log, a line per write.
type logWriter struct {
	log  *slog.Logger
	name string
}

func (l logWriter) Write(p []byte) (int, error) {
	if l.log != nil {
		l.log.Info("pool worker output", "worker", l.name, "line", string(p))
	}
	return len(p), nil
}

// PIDs are the running workers' process ids.
func (p *Processes) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, w := range p.procs {
		select {
		case <-w.exited:
		default:
			out = append(out, w.cmd.Process.Pid)
		}
	}
	return out
}
