// Package container is the container runner's launcher: each attempt of a
// job runs the executor image as a container (podman or docker) with the
// contract of a Kubernetes Job — the item file mounted read-only at a fixed
// path and WORK_ITEM_FILE naming it, the executor's environment, the exit
// codes 0 (done), 2 (permanent) and others (retried). Retries, the job
// records and the job logs come from the local runner (local.Runner), which
// drives this Launcher.
//
// Containers are named after the job (<queue>-<item hash>, or
// <job>-step<k> for the steps of a pipeline) and labelled with the queue,
// the item hash and the item, so that a manager that restarts finds the
// containers of the jobs it was running: it waits for a running one, takes
// the exit code and logs of one that finished meanwhile, and never starts a
// second. After an attempt the containers' logs are copied into the job log
// and the containers are removed.
package container

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"

	"github.com/itemq/itemq/internal/sysproc"
)

// Labels of the runner's containers (the same keys as the Kubernetes
// runner's Jobs).
const (
	LabelManagedBy = runner.LabelManagedBy
	ManagedBy      = runner.ManagedBy
	LabelQueue     = runner.LabelQueue
	LabelItemHash  = runner.LabelItemHash
	LabelItem      = runner.LabelItem
	LabelJob       = "itemq.io/job"     // the job name
	LabelStep      = "itemq.io/step"    // 1-based step of a pipeline
	LabelAttempt   = "itemq.io/attempt" // 1-based attempt number
)

// Paths inside the containers (the same as in the Kubernetes runner's pods).
const (
	ItemDir   = runner.ItemDir
	ItemFile  = runner.ItemFile
	InputDir  = runner.InputDir
	OutputDir = runner.OutputDir
)

// Config of the launcher.
type Config struct {
	// Engine is the container engine's command: podman or docker (a name
	// on PATH or a path).
	Engine string
	// Image is the executor image.
	Image string
	// Steps are the commands of the job's steps, each run in Image with its
	// first word as the entrypoint (a Kubernetes container's command). nil:
	// one step, the image's own entrypoint and command.
	Steps [][]string
	// Env is the executors' environment (OUTPUT_URL, credentials…);
	// WORK_ITEM_FILE and the runner's own variables are added.
	Env map[string]string
	// Queue is the queue's name (a label of every container).
	Queue string
	// WorkDir is the host directory where each job's item file (and a
	// pipeline's step directories) are kept while it runs, in
	// <WorkDir>/itemq-<job>/ (default: os.TempDir()). The engine must see
	// the same path (a local engine does).
	WorkDir string
	// Network is the containers' network (--network; "" is the engine's
	// default).
	Network string
	// Volumes are extra --volume specifications (host:container[:options]).
	Volumes []string
	// RunArgs are extra arguments of `create` (e.g. --read-only, --tmpfs /tmp,
	// --memory 1g, --user 1000).
	RunArgs []string
	// Pull is the pull policy of `create` (missing, never, always, newer;
	// "": the engine's default).
	Pull string
	// Grace is the time between SIGTERM and SIGKILL when a container is
	// stopped (timeout, or shutdown with StopOnShutdown). Default 10s.
	Grace time.Duration
	// StopOnShutdown stops the running containers when the manager stops.
	// Default false: they run on, as Kubernetes Jobs do, and the manager
	// adopts them when it starts again.
	StopOnShutdown bool
	// CommandTimeout bounds each engine command other than wait (default 5m:
	// a create may pull the image).
	CommandTimeout time.Duration
	Log            *slog.Logger
}

// Launcher implements local.Launcher with containers.
type Launcher struct {
	cfg Config
	log *slog.Logger
}

var _ local.Launcher = (*Launcher)(nil)

// New checks the configuration.
func New(cfg Config) (*Launcher, error) {
	if cfg.Engine == "" {
		return nil, errors.New("container runner: no engine (podman or docker)")
	}
	if cfg.Image == "" {
		return nil, errors.New("container runner: no executor image")
	}
	if err := runner.ValidateQueueName(cfg.Queue); err != nil {
		return nil, err
	}
	for i, s := range cfg.Steps {
		if len(s) == 0 || s[0] == "" {
			return nil, fmt.Errorf("container runner: step %d has an empty command", i+1)
		}
	}
	switch cfg.Pull {
	case "", "missing", "never", "always", "newer":
	default:
		return nil, fmt.Errorf("container runner: pull policy %q: want missing, never, always or newer", cfg.Pull)
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o750); err != nil {
		return nil, fmt.Errorf("container runner: create work dir: %w", err)
	}
	return &Launcher{cfg: cfg, log: cfg.Log}, nil
}

// Check asks the engine about the image: it fails when the engine does not
// answer, or when the image is missing and the pull policy is never.
func (l *Launcher) Check(ctx context.Context) error {
	var out bytes.Buffer
	stderr, err := l.engine(ctx, &out, "image", "inspect", "--format", "{{.Id}}", l.cfg.Image)
	if err == nil {
		return nil
	}
	if isNotFound(stderr) {
		if l.cfg.Pull == "never" {
			return fmt.Errorf("image %s is not in %s's storage and the pull policy is never", l.cfg.Image, l.cfg.Engine)
		}
		l.log.Warn("the executor image is not present yet; the first job pulls it", "image", l.cfg.Image)
		return nil
	}
	return fmt.Errorf("%s does not answer: %w", l.cfg.Engine, engineError(err, stderr))
}

// step is one container of an attempt.
type step struct {
	n    int    // 1-based
	name string // container name
	argv []string
}

// info is what the launcher reads from `container inspect`.
type info struct {
	Name  string `json:"Name"`
	State struct {
		Status   string `json:"Status"`
		Running  bool   `json:"Running"`
		ExitCode int    `json:"ExitCode"`
		Error    string `json:"Error"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
}

func (c *info) exited() bool {
	switch c.State.Status {
	case "exited", "stopped", "dead":
		return true
	}
	return false
}

// Launch runs (or adopts) the containers of one attempt.
func (l *Launcher) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	log := l.log.With("job", a.Job, "item", a.Item.Name, "attempt", a.Number)
	found, base, err := l.find(ctx, a)
	if err != nil {
		return -1, err
	}
	steps := l.steps(base)
	dir := filepath.Join(l.cfg.WorkDir, "itemq-"+base)
	if err := l.prepare(dir, a.ItemDoc, len(steps)); err != nil {
		return -1, err
	}
	finished := false
	defer func() {
		if !finished {
			return // the manager is stopping: leave the containers to be adopted
		}
		l.remove(steps, log)
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("cannot remove the job's directory", "dir", dir, "err", err)
		}
	}()
	for _, s := range steps {
		last := s.n == len(steps)
		if err := ctx.Err(); err != nil && errors.Is(err, context.DeadlineExceeded) && found[s.n] == nil {
			finished = true // the job's time ran out between two steps
			return -1, err
		}
		code, err := l.runStep(ctx, a, s, found[s.n], dir, len(steps), log)
		if errors.Is(context.Cause(ctx), local.ErrCancelled) {
			// Cancelled: wait stopped the container; the attempt is over.
			finished = true
			return -1, context.Cause(ctx)
		}
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			if l.cfg.StopOnShutdown {
				l.stop(s.name, log)
			}
			return -1, ctx.Err()
		}
		finished = true
		if err != nil {
			return -1, err
		}
		if code != 0 || last {
			return code, nil
		}
	}
	return 0, nil
}

// steps names the containers of a job whose base name is base.
func (l *Launcher) steps(base string) []step {
	if len(l.cfg.Steps) <= 1 {
		var argv []string
		if len(l.cfg.Steps) == 1 {
			argv = l.cfg.Steps[0]
		}
		return []step{{n: 1, name: base, argv: argv}}
	}
	out := make([]step, len(l.cfg.Steps))
	for i, argv := range l.cfg.Steps {
		out[i] = step{n: i + 1, name: fmt.Sprintf("%s-step%d", base, i+1), argv: argv}
	}
	return out
}

// find lists the containers of the job's item hash and returns those of
// this item by step, and the base name of its containers: the job name, or
// (when another item whose name has the same 10-digit hash holds it) the
// job name with 16 more hex digits of the hash.
func (l *Launcher) find(ctx context.Context, a *local.Attempt) (map[int]*info, string, error) {
	hash := runner.ItemHash(a.Item.Name)
	var out bytes.Buffer
	stderr, err := l.engine(ctx, &out, "ps", "-a", "--no-trunc",
		"--filter", "label="+LabelQueue+"="+l.cfg.Queue,
		"--filter", "label="+LabelItemHash+"="+hash,
		"--format", "{{.Names}}")
	if err != nil {
		return nil, "", fmt.Errorf("list the job's containers: %w", engineError(err, stderr))
	}
	names := strings.Fields(out.String())
	found := map[int]*info{}
	taken := false
	if len(names) > 0 {
		infos, err := l.inspect(ctx, names...)
		if err != nil {
			return nil, "", err
		}
		for _, c := range infos {
			if c.Config.Labels[LabelItem] != a.Item.Name {
				if isBaseName(c.Name, a.Job) {
					taken = true
				}
				continue
			}
			n, _ := strconv.Atoi(c.Config.Labels[LabelStep])
			if n < 1 {
				n = 1
			}
			found[n] = c
		}
	}
	base := a.Job
	for _, c := range found {
		if strings.HasPrefix(c.Name, longName(a)) {
			base = longName(a)
		}
	}
	if len(found) == 0 && taken {
		base = longName(a)
		l.log.Warn("another item's job has the same name (hash collision); using a longer name", "item", a.Item.Name, "name", base)
	}
	return found, base, nil
}

// isBaseName reports whether name is job or job-step<k>.
func isBaseName(name, job string) bool {
	if name == job {
		return true
	}
	rest, ok := strings.CutPrefix(name, job+"-step")
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

func longName(a *local.Attempt) string {
	sum := sha256.Sum256([]byte(a.Item.Name))
	return a.Job + "-" + hex.EncodeToString(sum[:])[10:26]
}

// prepare makes the job's directory: the item file, and the steps'
// directories of a pipeline (writable by any user: the image's user is
// not known here).
func (l *Launcher) prepare(dir string, doc []byte, steps int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the job's directory: %w", err)
	}
	item := filepath.Join(dir, "item.json")
	if old, err := os.ReadFile(item); err != nil || !bytes.Equal(old, doc) {
		tmp := item + ".tmp"
		_ = os.Remove(tmp)
		if err := os.WriteFile(tmp, doc, 0o444); err != nil {
			return fmt.Errorf("write the item file: %w", err)
		}
		if err := os.Rename(tmp, item); err != nil {
			return fmt.Errorf("write the item file: %w", err)
		}
	}
	{
		// Every step has an OUTPUT_DIR, a single one too.
		for k := 1; k <= steps; k++ {
			d := filepath.Join(dir, fmt.Sprintf("step%d", k))
			if err := os.MkdirAll(d, 0o777); err != nil {
				return fmt.Errorf("create the step directory: %w", err)
			}
			if err := os.Chmod(d, 0o777); err != nil {
				return fmt.Errorf("create the step directory: %w", err)
			}
		}
	}
	return nil
}

// runStep runs one step's container, or adopts it, and returns its exit
// code once it has exited.
func (l *Launcher) runStep(ctx context.Context, a *local.Attempt, s step, c *info, dir string, nsteps int, log *slog.Logger) (int, error) {
	log = log.With("container", s.name)
	if nsteps > 1 {
		a.Log.Notef("step %d of %d: container %s", s.n, nsteps, s.name)
	}
	switch {
	case c == nil:
		if a.Resumed {
			log.Info("the container of the interrupted attempt is gone; starting a new one")
		}
		if err := l.create(ctx, a, s, dir, nsteps); err != nil {
			return -1, err
		}
		if err := l.start(ctx, s.name); err != nil {
			return -1, err
		}
	case c.exited() && c.Config.Labels[LabelAttempt] != strconv.Itoa(a.Number):
		// A leftover of an earlier attempt: not this attempt's result.
		log.Info("removing the container of an earlier attempt", "attempt", c.Config.Labels[LabelAttempt])
		if err := l.rm(ctx, s.name); err != nil {
			return -1, err
		}
		if err := l.create(ctx, a, s, dir, nsteps); err != nil {
			return -1, err
		}
		if err := l.start(ctx, s.name); err != nil {
			return -1, err
		}
	case c.exited():
		log.Info("adopting a container that finished while the manager was away", "exitCode", c.State.ExitCode)
		a.Log.Notef("adopted container %s, which exited with code %d while the manager was away", s.name, c.State.ExitCode)
	case c.State.Status == "created" || c.State.Status == "configured" || c.State.Status == "initialized":
		log.Info("starting a container created before the manager stopped")
		a.Log.Notef("starting container %s, created before the manager stopped", s.name)
		if err := l.start(ctx, s.name); err != nil {
			return -1, err
		}
	default:
		log.Info("adopting a running container", "state", c.State.Status)
		a.Log.Notef("adopted running container %s", s.name)
	}
	if a.Ran != nil {
		a.Ran("container " + s.name)
	}
	code, err := l.wait(ctx, s.name, log)
	if err != nil {
		return -1, err
	}
	if code < 0 {
		return -1, ctx.Err()
	}
	// The step's output, then its exit code.
	var stderr bytes.Buffer
	cmd := l.command(context.WithoutCancel(ctx), "logs", s.name)
	cmd.Stdout, cmd.Stderr = a.Log, io.MultiWriter(a.Log, &stderr)
	if err := cmd.Run(); err != nil {
		log.Warn("cannot copy the container's logs", "err", engineError(err, stderr.String()))
		a.Log.Notef("cannot copy the logs of container %s: %v", s.name, err)
	}
	return code, nil
}

// create makes a step's container.
func (l *Launcher) create(ctx context.Context, a *local.Attempt, s step, dir string, nsteps int) error {
	args := []string{"create", "--name", s.name,
		"--label", LabelManagedBy + "=" + ManagedBy,
		"--label", LabelQueue + "=" + l.cfg.Queue,
		"--label", LabelItemHash + "=" + runner.ItemHash(a.Item.Name),
		"--label", LabelItem + "=" + a.Item.Name,
		"--label", LabelJob + "=" + a.Job,
		"--label", LabelStep + "=" + strconv.Itoa(s.n),
		"--label", LabelAttempt + "=" + strconv.Itoa(a.Number),
		"--volume", filepath.Join(dir, "item.json") + ":" + ItemFile + ":ro",
	}
	if nsteps > 1 {
		args = append(args, "--volume", filepath.Join(dir, fmt.Sprintf("step%d", s.n))+":"+OutputDir)
		if s.n > 1 {
			args = append(args, "--volume", filepath.Join(dir, fmt.Sprintf("step%d", s.n-1))+":"+InputDir+":ro")
		}
	} else {
		args = append(args, "--volume", filepath.Join(dir, "step1")+":"+OutputDir)
	}
	env := map[string]string{}
	for _, e := range runner.ExecutorEnv(runner.EnvSpec{
		Queue: l.cfg.Queue, Job: a.Job, Attempt: a.Number, Step: s.n, Steps: nsteps,
		ItemFile: ItemFile, InputDir: InputDir, OutputDir: OutputDir, Base: l.cfg.Env,
	}) {
		env[e.Name] = e.Value
	}
	// The environment goes in a file (values do not show in the process
	// list); a value with a line break cannot, and goes on the command line.
	keys := slices.Sorted(maps.Keys(env))
	var ef bytes.Buffer
	for _, k := range keys {
		if strings.ContainsAny(env[k], "\n\r") {
			args = append(args, "--env", k+"="+env[k])
			continue
		}
		fmt.Fprintf(&ef, "%s=%s\n", k, env[k])
	}
	envFile := filepath.Join(dir, fmt.Sprintf("env-%d", s.n))
	if err := os.WriteFile(envFile, ef.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write the env file: %w", err)
	}
	defer os.Remove(envFile)
	args = append(args, "--env-file", envFile)
	if l.cfg.Network != "" {
		args = append(args, "--network", l.cfg.Network)
	}
	for _, v := range l.cfg.Volumes {
		args = append(args, "--volume", v)
	}
	if l.cfg.Pull != "" {
		args = append(args, "--pull", l.cfg.Pull)
	}
	args = append(args, l.cfg.RunArgs...)
	if len(s.argv) > 0 {
		args = append(args, "--entrypoint", s.argv[0], l.cfg.Image)
		args = append(args, s.argv[1:]...)
	} else {
		args = append(args, l.cfg.Image)
	}
	var out bytes.Buffer
	stderr, err := l.engine(ctx, &out, args...)
	if err != nil {
		return fmt.Errorf("create container %s from %s: %w", s.name, l.cfg.Image, engineError(err, stderr))
	}
	return nil
}

func (l *Launcher) start(ctx context.Context, name string) error {
	stderr, err := l.engine(ctx, io.Discard, "start", name)
	if err != nil {
		return fmt.Errorf("start container %s: %w", name, engineError(err, stderr))
	}
	return nil
}

// wait waits for the container to exit and returns its exit code. When ctx
// ends with its deadline (the job's timeout) or the job is cancelled
// (cause local.ErrCancelled) the container is stopped and waited for; when
// it is cancelled otherwise (the manager is stopping) wait returns -1 at
// once.
func (l *Launcher) wait(ctx context.Context, name string, log *slog.Logger) (int, error) {
	// The wait process must not outlive a manager killed by SIGKILL: it is
	// tied to this goroutine's thread by Pdeathsig.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out, stderr bytes.Buffer
	cmd := exec.Command(l.cfg.Engine, "wait", name)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.SysProcAttr = sysproc.Child(false, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("wait for container %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cancelled := errors.Is(context.Cause(ctx), local.ErrCancelled)
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) && !cancelled {
			_ = cmd.Process.Kill()
			<-done
			return -1, nil
		}
		log.Info("stopping the container: the job's time is up or it was cancelled", "grace", l.cfg.Grace)
		l.stop(name, log)
		err = <-done
	}
	if err != nil {
		return -1, fmt.Errorf("wait for container %s: %w", name, engineError(err, stderr.String()))
	}
	code, perr := strconv.Atoi(strings.TrimSpace(lastLine(out.String())))
	if perr != nil {
		return -1, fmt.Errorf("wait for container %s: unexpected answer %q", name, out.String())
	}
	return code, nil
}

// stop stops a container: SIGTERM, then SIGKILL after the grace time.
func (l *Launcher) stop(name string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Grace+l.cfg.CommandTimeout)
	defer cancel()
	secs := int((l.cfg.Grace + time.Second - 1) / time.Second)
	if stderr, err := l.engine(ctx, io.Discard, "stop", "-t", strconv.Itoa(secs), name); err != nil {
		log.Warn("cannot stop the container", "container", name, "err", engineError(err, stderr))
	}
}

// remove removes the containers of an attempt, once it is over.
func (l *Launcher) remove(steps []step, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CommandTimeout)
	defer cancel()
	for _, s := range steps {
		if err := l.rm(ctx, s.name); err != nil {
			log.Warn("cannot remove the container", "container", s.name, "err", err)
		}
	}
}

// rm removes a container (forcibly, with its anonymous volumes); a missing
// one is not an error.
func (l *Launcher) rm(ctx context.Context, name string) error {
	stderr, err := l.engine(ctx, io.Discard, "rm", "-f", "-v", name)
	if err != nil && !isNotFound(stderr) {
		return fmt.Errorf("remove container %s: %w", name, engineError(err, stderr))
	}
	return nil
}

func (l *Launcher) inspect(ctx context.Context, names ...string) ([]*info, error) {
	var out bytes.Buffer
	stderr, err := l.engine(ctx, &out, append([]string{"container", "inspect"}, names...)...)
	if err != nil && out.Len() == 0 {
		return nil, fmt.Errorf("inspect containers %v: %w", names, engineError(err, stderr))
	}
	var infos []*info
	if err := json.Unmarshal(out.Bytes(), &infos); err != nil {
		return nil, fmt.Errorf("inspect containers %v: %w", names, err)
	}
	for _, c := range infos {
		c.Name = strings.TrimPrefix(c.Name, "/") // docker's names start with /
		if c.State.Status == "" && c.State.Running {
			c.State.Status = "running"
		}
	}
	return infos, nil
}

// Remove removes every container of a queue (all of them, running or not):
// for tests and for cleaning up by hand. It returns how many there were.
func Remove(ctx context.Context, engine, queueName string) (int, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, engine, "ps", "-a", "-q", "--filter", "label="+LabelQueue+"="+queueName)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("list the containers of queue %s: %w", queueName, engineError(err, stderr.String()))
	}
	ids := strings.Fields(out.String())
	if len(ids) == 0 {
		return 0, nil
	}
	stderr.Reset()
	cmd = exec.CommandContext(ctx, engine, append([]string{"rm", "-f", "-v"}, ids...)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return len(ids), fmt.Errorf("remove the containers of queue %s: %w", queueName, engineError(err, stderr.String()))
	}
	return len(ids), nil
}

// engine runs a short engine command (bounded by CommandTimeout, and not
// cut short when ctx is cancelled, so that a shutdown never leaves half a
// create behind) and returns its stderr.
func (l *Launcher) engine(ctx context.Context, stdout io.Writer, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.CommandTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := l.command(cctx, args...)
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	return stderr.String(), err
}

func (l *Launcher) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, l.cfg.Engine, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func isNotFound(stderr string) bool {
	s := strings.ToLower(stderr)
	return strings.Contains(s, "no such container") || strings.Contains(s, "no such object") ||
		strings.Contains(s, "no such image") || strings.Contains(s, "image not known") ||
		strings.Contains(s, "failed to find image")
}

// engineError is err with the last line the engine wrote on stderr.
func engineError(err error, stderr string) error {
	if msg := strings.TrimSpace(lastLine(stderr)); msg != "" {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
