package container_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/container"
	"github.com/itemq/itemq/internal/runner/kube"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// The container runner keeps the Kubernetes runner's contract.
func TestSameContractAsKubernetes(t *testing.T) {
	if container.ItemFile != kube.ItemFile || container.InputDir != kube.InputDir || container.OutputDir != kube.OutputDir {
		t.Errorf("paths differ from the kubernetes runner's: %s %s %s", container.ItemFile, container.InputDir, container.OutputDir)
	}
	if container.LabelManagedBy != kube.LabelManagedBy || container.ManagedBy != kube.ManagedBy ||
		container.LabelQueue != kube.LabelQueue || container.LabelItemHash != kube.LabelItemHash {
		t.Error("labels differ from the kubernetes runner's")
	}
}

var (
	probeOnce  sync.Once
	probeImage string
	probeErr   error
)

// probe builds (once per test process) a FROM scratch image holding the
// static probe program (testdata/probe) and returns the engine and the image.
func probe(t *testing.T) (engine, image string) {
	t.Helper()
	engine = testutil.Need(t, "ITEMQ_PODMAN")
	bin := testutil.Binary(t, "internal/runner/container/testdata/probe")
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "itemq-probe-image-")
		if err != nil {
			probeErr = err
			return
		}
		defer os.RemoveAll(dir)
		b, err := os.ReadFile(bin)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "probe"), b, 0o555)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY probe /probe\nUSER 65532:65532\nENTRYPOINT [\"/probe\"]\n"), 0o644)
		}
		if err != nil {
			probeErr = err
			return
		}
		image = "localhost/itemq-test-probe:latest"
		out, err := exec.Command(engine, "build", "-q", "-t", image, dir).CombinedOutput()
		if err != nil {
			probeErr = fmt.Errorf("build the probe image: %v\n%s", err, out)
			return
		}
		probeImage = image
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return engine, probeImage
}

// rig is a launcher on a queue of its own, with a directory the probe can
// write to (/runs) and that is cleaned up after the test.
type rig struct {
	t      *testing.T
	engine string
	queue  string
	runs   string
	l      *container.Launcher
}

func newRig(t *testing.T, mod func(*container.Config)) *rig {
	engine, image := probe(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	r := &rig{t: t, engine: engine, queue: "ctest-" + hex.EncodeToString(b), runs: t.TempDir()}
	if err := os.Chmod(r.runs, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg := container.Config{
		Engine: engine, Image: image, Queue: r.queue, WorkDir: t.TempDir(), Network: "none",
		Volumes: []string{r.runs + ":/runs"}, Env: map[string]string{"PROBE_LOG": "/runs/probe.log"},
		Pull: "never", Grace: time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	l, err := container.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.l = l
	t.Cleanup(func() {
		n, err := container.Remove(context.Background(), engine, r.queue)
		if err != nil {
			t.Error(err)
		}
		if n > 0 && !t.Failed() {
			t.Errorf("%d containers of queue %s were left behind", n, r.queue)
		}
	})
	return r
}

func (r *rig) attempt(name, data string, n int, resumed bool) (*local.Attempt, string) {
	r.t.Helper()
	it := &itemapi.Item{Kind: "Item", APIVersion: "v1", Name: name, Data: json.RawMessage(data)}
	doc, _ := json.Marshal(it)
	dir := r.t.TempDir()
	logPath := filepath.Join(dir, "job.log")
	jl, err := local.OpenJobLog(logPath, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { jl.Close() })
	return &local.Attempt{Job: runner.JobName(r.queue, name), Item: it, ItemDoc: doc, Number: n, WorkDir: dir,
		ItemFile: filepath.Join(dir, "item.json"), Log: jl, Resumed: resumed}, logPath
}

func (r *rig) probeLog() []string {
	b, _ := os.ReadFile(filepath.Join(r.runs, "probe.log"))
	return strings.Fields(strings.ReplaceAll(string(b), "\n", " | "))
}

func (r *rig) count(prefix string) int {
	b, _ := os.ReadFile(filepath.Join(r.runs, "probe.log"))
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// containers lists the names of the queue's containers with a status.
func (r *rig) containers(status string) []string {
	args := []string{"ps", "-a", "--filter", "label=" + container.LabelQueue + "=" + r.queue, "--format", "{{.Names}}"}
	if status != "" {
		args = append(args, "--filter", "status="+status)
	}
	out, err := exec.Command(r.engine, args...).Output()
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.Fields(string(out))
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExitCodesLogsAndCleanup(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct {
		name string
		exit int
	}{{"ok.json", 0}, {"bad item.json", 2}, {"flaky.json", 1}} {
		a, logPath := r.attempt(tc.name, fmt.Sprintf(`{"exit":%d}`, tc.exit), 1, false)
		code, err := r.l.Launch(context.Background(), a)
		if err != nil || code != tc.exit {
			t.Fatalf("%s: code %d, err %v; want %d", tc.name, code, err, tc.exit)
		}
		log := read(t, logPath)
		// The item document on stdout, and the executor's uid and WORK_ITEM_FILE.
		if !strings.Contains(log, string(a.ItemDoc)) || !strings.Contains(log, "uid=65532 env="+container.ItemFile) {
			t.Errorf("%s: job log lacks the container's output:\n%s", tc.name, log)
		}
	}
	if left := r.containers(""); len(left) > 0 {
		t.Errorf("containers left: %v", left)
	}
	if got := r.count("start"); got != 3 {
		t.Errorf("%d starts, want 3: %v", got, r.probeLog())
	}
}

func TestBadImageIsAnError(t *testing.T) {
	r := newRig(t, nil)
	l, err := container.New(container.Config{Engine: r.engine, Image: "localhost/itemq-no-such-image:1", Queue: r.queue, Pull: "never"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "not in") {
		t.Errorf("Check of a missing image with pull=never: %v", err)
	}
	a, _ := r.attempt("x", `{}`, 1, false)
	code, err := l.Launch(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "create container") {
		t.Errorf("Launch with a missing image: code %d, err %v", code, err)
	}
	if left := r.containers(""); len(left) > 0 {
		t.Errorf("containers left: %v", left)
	}
}

// A manager that stops while its container runs leaves it running; the
// next manager's resumed attempt adopts it (running, or exited meanwhile)
// and never starts a second.
func TestAdoption(t *testing.T) {
	r := newRig(t, nil)
	for _, finishWhileAway := range []bool{false, true} {
		name := fmt.Sprintf("adopt-%v.json", finishWhileAway)
		gate := "/runs/go-" + name
		data := fmt.Sprintf(`{"waitFor":%q,"exit":3}`, gate)
		a, logPath := r.attempt(name, data, 1, false)
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			code int
			err  error
		}
		done := make(chan result, 1)
		go func() {
			code, err := r.l.Launch(ctx, a)
			done <- result{code, err}
		}()
		testutil.Eventually(t, time.Minute, "the probe started", func() error {
			if r.count("start "+name) == 0 {
				return fmt.Errorf("not yet: %v", r.probeLog())
			}
			return nil
		})
		cancel() // the manager stops
		select {
		case res := <-done:
			if res.err == nil {
				t.Fatalf("Launch after its context ended: code %d, no error", res.code)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Launch did not return after its context ended")
		}
		if got := r.containers("running"); len(got) != 1 || got[0] != a.Job {
			t.Fatalf("running containers after the manager stopped: %v, want [%s]", got, a.Job)
		}
		if finishWhileAway {
			os.WriteFile(filepath.Join(r.runs, filepath.Base(gate)), nil, 0o644)
			testutil.Eventually(t, time.Minute, "the container exited", func() error {
				if got := r.containers("exited"); len(got) != 1 {
					return fmt.Errorf("exited: %v", got)
				}
				return nil
			})
		}
		// The manager is back.
		a2, _ := r.attempt(name, data, 1, true)
		a2.Log, a2.ItemFile = a.Log, a.ItemFile
		go func() {
			code, err := r.l.Launch(context.Background(), a2)
			done <- result{code, err}
		}()
		if !finishWhileAway {
			testutil.Eventually(t, time.Minute, "adopted", func() error {
				if !strings.Contains(read(t, logPath), "adopted running container "+a.Job) {
					return fmt.Errorf("no note in the job log")
				}
				return nil
			})
			os.WriteFile(filepath.Join(r.runs, filepath.Base(gate)), nil, 0o644)
		}
		select {
		case res := <-done:
			if res.err != nil || res.code != 3 {
				t.Fatalf("adopted: code %d, err %v; want 3", res.code, res.err)
			}
		case <-time.After(time.Minute):
			t.Fatal("the adopted attempt did not finish")
		}
		if n := r.count("start " + name); n != 1 {
			t.Errorf("%s started %d times, want 1", name, n)
		}
		if finishWhileAway && !strings.Contains(read(t, logPath), "exited with code 3 while the manager was away") {
			t.Errorf("job log:\n%s", read(t, logPath))
		}
		if left := r.containers(""); len(left) > 0 {
			t.Errorf("containers left: %v", left)
		}
	}
}

// A leftover container of an earlier attempt (not removed, e.g. the engine
// failed) is not taken as this attempt's result.
func TestLeftoverOfEarlierAttempt(t *testing.T) {
	r := newRig(t, nil)
	a1, _ := r.attempt("left.json", `{"exit":0}`, 1, false)
	// Attempt 1's container, as if it had not been removed.
	out, err := exec.Command(r.engine, "run", "--name", a1.Job, "--network", "none",
		"--label", container.LabelQueue+"="+r.queue, "--label", container.LabelItemHash+"="+runner.ItemHash("left.json"),
		"--label", container.LabelItem+"=left.json", "--label", container.LabelAttempt+"=1",
		"--entrypoint", "/probe", "-e", "WORK_ITEM_FILE=/nope", "localhost/itemq-test-probe:latest").CombinedOutput()
	if err == nil {
		t.Fatalf("the stand-in leftover succeeded: %s", out)
	}
	a2, _ := r.attempt("left.json", `{"exit":0}`, 2, false)
	code, err := r.l.Launch(context.Background(), a2)
	if err != nil || code != 0 {
		t.Fatalf("attempt 2: code %d, err %v; want 0 (a new container)", code, err)
	}
	if n := r.count("start left.json"); n != 1 {
		t.Errorf("attempt 2 ran %d times, want 1", n)
	}
}

func TestPipeline(t *testing.T) {
	r := newRig(t, func(c *container.Config) {
		c.Steps = [][]string{{"/probe"}, {"/probe"}, {"/probe"}}
		c.Env["OUTPUT_URL"] = "file:///nowhere"
	})
	a, logPath := r.attempt("pipe.json", `{}`, 1, false)
	code, err := r.l.Launch(context.Background(), a)
	if err != nil || code != 0 {
		t.Fatalf("code %d, err %v\n%s", code, err, read(t, logPath))
	}
	log := read(t, logPath)
	for _, want := range []string{"out=pipe.json\n", "out=pipe.json+step2\n", "out=pipe.json+step2+step3\n", "step 3 of 3: container " + a.Job + "-step3"} {
		if !strings.Contains(log, want) {
			t.Errorf("job log lacks %q:\n%s", want, log)
		}
	}
	if n := r.count("start pipe.json"); n != 3 {
		t.Errorf("%d steps ran, want 3", n)
	}
	// A failing step stops the pipeline.
	a, _ = r.attempt("pipe-fails.json", `{"exit":2}`, 1, false)
	if code, err := r.l.Launch(context.Background(), a); err != nil || code != 2 {
		t.Fatalf("failing pipeline: code %d, err %v; want 2", code, err)
	}
	if n := r.count("start pipe-fails.json"); n != 1 {
		t.Errorf("%d steps ran after step 1 failed, want 1", n)
	}
}

func TestTimeoutStopsTheContainer(t *testing.T) {
	r := newRig(t, nil)
	a, logPath := r.attempt("slow.json", `{"waitFor":"/runs/never"}`, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	code, err := r.l.Launch(ctx, a)
	if err != nil || code == 0 {
		t.Fatalf("code %d, err %v; want a non-zero code (stopped)", code, err)
	}
	if left := r.containers(""); len(left) > 0 {
		t.Errorf("containers left: %v", left)
	}
	if !bytes.Contains([]byte(read(t, logPath)), []byte("uid=65532")) {
		t.Errorf("the logs of the stopped container were not kept")
	}
}

// With StopOnShutdown, a manager that stops stops its containers; the next
// manager finds the stopped container and takes its exit code (a failed
// attempt, retried by the runner) instead of running it again.
func TestStopOnShutdown(t *testing.T) {
	r := newRig(t, func(c *container.Config) { c.StopOnShutdown = true })
	a, _ := r.attempt("stop.json", `{"waitFor":"/runs/never"}`, 1, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := r.l.Launch(ctx, a)
		done <- err
	}()
	testutil.Eventually(t, time.Minute, "the probe started", func() error {
		if r.count("start stop.json") == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Launch after its context ended: no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Launch did not return")
	}
	if got := r.containers("running"); len(got) != 0 {
		t.Fatalf("still running after the manager stopped: %v", got)
	}
	a2, _ := r.attempt("stop.json", `{"waitFor":"/runs/never"}`, 1, true)
	code, err := r.l.Launch(context.Background(), a2)
	if err != nil || code == 0 {
		t.Fatalf("resumed: code %d, err %v; want the stopped container's non-zero code", code, err)
	}
	if n := r.count("start stop.json"); n != 1 {
		t.Errorf("started %d times, want 1", n)
	}
}
