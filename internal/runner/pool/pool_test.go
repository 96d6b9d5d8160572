package pool_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/pool"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/sim"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

const token = "pool-test-token-0123456789"

// bins are the worker and the probe executor it runs for each item.
func bins(t *testing.T) (worker, probe string) {
	return testutil.Binary(t, "internal/runner/pool/testdata/worker"), testutil.Binary(t, "internal/runner/container/testdata/probe")
}

type setup struct {
	r     *pool.Runner
	procs *pool.Processes
	srv   *httptest.Server
	work  string // the workers' TMPDIR
	probe string // PROBE_LOG
}

// newPool is a pool runner whose workers are processes on this machine,
// serving the protocol on a test server. Run is not called.
func newPool(t *testing.T, ttl time.Duration, maxAttempts int, backoff time.Duration) *setup {
	t.Helper()
	worker, probe := bins(t)
	s := &setup{work: t.TempDir(), probe: filepath.Join(t.TempDir(), "probe.log")}
	var h http.Handler
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(s.srv.Close)
	s.procs = &pool.Processes{
		Command: []string{worker, probe},
		Env:     []string{"TMPDIR=" + s.work, "OUTPUT_URL=file:///results", "PROBE_LOG=" + s.probe, "PATH=" + os.Getenv("PATH")},
		URL:     s.srv.URL, Token: token,
	}
	r, err := pool.New(pool.Config{
		Config:   local.Config{Queue: "conf", StateDir: t.TempDir(), MaxAttempts: maxAttempts, BackoffBase: backoff, NoSync: true},
		Launcher: pool.LauncherConfig{Env: map[string]string{"SECRET": "s"}, Token: token, TTL: ttl, Grace: time.Second},
		Resize:   100 * time.Millisecond,
	}, s.procs)
	if err != nil {
		t.Fatal(err)
	}
	h = r.Handler()
	s.r = r
	return s
}

func TestConformance(t *testing.T) {
	runnertest.RunConformanceTests(t, func(t *testing.T) runnertest.Harness {
		s := newPool(t, 3*time.Second, 3, 20*time.Second)
		s.r.SetParallelism(3)
		return runnertest.Harness{
			Runner: s.r,
			Item:   runnertest.ProbeItem,
			Env: func(t *testing.T, j runner.Job) (map[string]string, runner.EnvSpec) {
				got := runnertest.EnvFromLog(t, s.r.LogPath(j.Item))
				dir := filepath.Dir(got["WORK_ITEM_FILE"])
				if filepath.Dir(dir) != s.work || !strings.HasPrefix(filepath.Base(dir), j.Name+"-") {
					t.Errorf("WORK_ITEM_FILE %q is not in an attempt directory of %s under the worker's %s", got["WORK_ITEM_FILE"], j.Name, s.work)
				}
				return got, runner.EnvSpec{
					Queue: "conf", Job: j.Name, Attempt: 1, Step: 1, Steps: 1,
					ItemFile: filepath.Join(dir, "item.json"), OutputDir: filepath.Join(dir, "out"),
					Base: map[string]string{"OUTPUT_URL": "file:///results", "SECRET": "s", "TMPDIR": s.work, "PROBE_LOG": s.probe, "PATH": os.Getenv("PATH")},
				}
			},
		}
	})
}

// run runs the runner until the test ends, collecting the jobs' states.
type run struct {
	mu   sync.Mutex
	last map[string]runner.Job
	all  []runner.Job
}

func (s *setup) run(t *testing.T) *run {
	t.Helper()
	rn := &run{last: map[string]runner.Job{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.r.Run(ctx, func(j runner.Job) {
			rn.mu.Lock()
			rn.last[j.Item] = j
			rn.all = append(rn.all, j)
			rn.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return rn
}

func (rn *run) job(item string) runner.Job {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.last[item]
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// starts counts the probe's starts per item.
func (s *setup) starts(t *testing.T) map[string]int {
	t.Helper()
	b, err := os.ReadFile(s.probe)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "start" {
			n[f[1]]++
		}
	}
	return n
}

// An attempt waits, Pending, until a worker takes it; then it runs, and
// its run time does not count the wait.
func TestPendingUntilAWorkerTakesIt(t *testing.T) {
	s := newPool(t, 3*time.Second, 1, time.Second)
	s.r.SetParallelism(0) // no worker yet
	rn := s.run(t)
	if err := s.r.Start(context.Background(), itemapi.NewItem("a", []byte(`{"sleepMs":300}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the attempt offered", 10*time.Second, func() bool { return s.r.Launcher().Offered() == 1 })
	time.Sleep(3 * time.Second)
	if j := rn.job("a"); j.Phase != runner.PhasePending || !j.Active() || j.Attempts != 1 {
		t.Fatalf("with no worker: %+v, want Pending, active, attempt 1", j)
	}
	s.r.SetParallelism(1)
	waitFor(t, "succeeded", 30*time.Second, func() bool { return rn.job("a").Phase == runner.PhaseSucceeded })
	j := rn.job("a")
	if j.LastDuration < 300*time.Millisecond || j.LastDuration > 2900*time.Millisecond {
		t.Errorf("run time %v: want the attempt's own (≥ 300 ms) without the 3 s wait for a worker", j.LastDuration)
	}
	if len(j.History) != 1 || !strings.HasPrefix(j.History[0].Where, "worker ") {
		t.Errorf("history %+v: want one attempt on a worker", j.History)
	}
	var sawRunning bool
	rn.mu.Lock()
	for _, x := range rn.all {
		sawRunning = sawRunning || x.Item == "a" && x.Phase == runner.PhaseRunning
	}
	rn.mu.Unlock()
	if !sawRunning {
		t.Error("the job was never reported Running")
	}
	log, _ := os.ReadFile(s.r.LogPath("a"))
	if !bytes.Contains(log, []byte(`"sleepMs":300`)) || !bytes.Contains(log, []byte("taken by worker")) {
		t.Errorf("the job's log lacks the executor's output (sent by heartbeats) or the worker's note:\n%s", log)
	}
}

// Workers take item after item: 12 items of 200 ms on 3 workers start 3
// worker processes, not 12, and each item runs once.
func TestWorkersTakeItemAfterItem(t *testing.T) {
	s := newPool(t, 3*time.Second, 1, time.Second)
	s.r.SetParallelism(3)
	rn := s.run(t)
	for i := range 12 {
		if err := s.r.Start(context.Background(), itemapi.NewItem("i"+string(rune('a'+i)), []byte(`{"sleepMs":200}`))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "12 succeeded", 60*time.Second, func() bool {
		rn.mu.Lock()
		defer rn.mu.Unlock()
		n := 0
		for _, j := range rn.last {
			if j.Phase == runner.PhaseSucceeded {
				n++
			}
		}
		return n == 12
	})
	workers := map[string]bool{}
	rn.mu.Lock()
	for _, j := range rn.last {
		workers[j.History[0].Where] = true
	}
	rn.mu.Unlock()
	if len(workers) > 3 {
		t.Errorf("items ran on %d workers, want at most 3: %v", len(workers), workers)
	}
	for item, n := range s.starts(t) {
		if n != 1 {
			t.Errorf("item %s started %d times", item, n)
		}
	}
	if got := len(s.starts(t)); got != 12 {
		t.Errorf("%d items started, want 12", got)
	}
}

// A worker that dies mid-attempt loses its lease: after the TTL the
// attempt fails, and the retry runs on another worker — never two at once.
func TestLostWorkerIsRetried(t *testing.T) {
	s := newPool(t, time.Second, 2, 100*time.Millisecond)
	s.r.SetParallelism(1)
	rn := s.run(t)
	if err := s.r.Start(context.Background(), itemapi.NewItem("lost", []byte(`{"sleepMs":3000}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", 20*time.Second, func() bool { return rn.job("lost").Phase == runner.PhaseRunning })
	// Kill the worker (and the attempt it runs) as a node's loss would.
	killWorkers(t, s)
	waitFor(t, "the attempt failed and is retried", 20*time.Second, func() bool { return rn.job("lost").Attempts == 2 || rn.job("lost").Phase.Finished() })
	j := rn.job("lost")
	if len(j.History) < 1 || !strings.Contains(j.History[0].Reason, "lost") {
		t.Errorf("first attempt %+v: want it failed as lost", j.History)
	}
	waitFor(t, "succeeded", 30*time.Second, func() bool { return rn.job("lost").Phase == runner.PhaseSucceeded })
}

// killWorkers SIGKILLs every worker process and the attempts they run.
func killWorkers(t *testing.T, s *setup) {
	t.Helper()
	for _, pid := range s.procs.PIDs() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	// The attempt runs in its own process group, under the worker's TMPDIR.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, s.work+"/") {
			if pid, err := strconv.Atoi(e.Name()); err != nil {
				continue
			} else if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
}

// A cancel reaches the worker at its next heartbeat: the attempt stops
// and the job ends cancelled; the worker takes the next item.
func TestCancelReachesTheWorker(t *testing.T) {
	s := newPool(t, time.Second, 3, time.Second)
	s.r.SetParallelism(1)
	rn := s.run(t)
	ctx := context.Background()
	if err := s.r.Start(ctx, itemapi.NewItem("block", []byte(`{"sleepMs":600000}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", 20*time.Second, func() bool { return rn.job("block").Phase == runner.PhaseRunning })
	if err := s.r.Cancel(ctx, "block"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cancelled", 10*time.Second, func() bool { return rn.job("block").Phase.Finished() })
	if j := rn.job("block"); !j.Cancelled || j.Attempts != 1 {
		t.Fatalf("after Cancel: %+v", j)
	}
	if err := s.r.Start(ctx, itemapi.NewItem("next", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next item done by the same worker", 20*time.Second, func() bool { return rn.job("next").Phase == runner.PhaseSucceeded })
	if w1, w2 := rn.job("block").History[0].Where, rn.job("next").History[0].Where; w1 != w2 {
		t.Errorf("the next item ran on %s, not on the worker that was freed (%s)", w2, w1)
	}
}

// switchable is a test server whose handler is the latest runner's: a
// manager restarted on the same address.
type switchable struct {
	*httptest.Server
	mu sync.Mutex
	h  http.Handler
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.h
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// runner makes a pool runner and serves its protocol from now on.
func (s *switchable) runner(t *testing.T, cfg pool.Config, w pool.Workers) *pool.Runner {
	t.Helper()
	r, err := pool.New(cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.h = r.Handler()
	s.mu.Unlock()
	return r
}

// keep are workers that outlive the manager, as a Deployment's pods do.
type keep struct{ p *pool.Processes }

func (k keep) Scale(ctx context.Context, n int, idle []string) error { return k.p.Scale(ctx, n, idle) }

// The manager restarts while a worker runs an attempt: the worker stops it
// (its lease is gone), and the restarted manager offers it again only once
// the lease would have expired — the item never runs twice at once.
func TestManagerRestartNeverRunsTwiceAtOnce(t *testing.T) {
	worker, _ := bins(t)
	state, work, marks := t.TempDir(), t.TempDir(), t.TempDir()
	srv := newSwitchable(t)
	// The executor: a run marks itself in flight for 1.5 s and notes if
	// another run was in flight when it started.
	script := `trap 'rm -f "$MARKS/lock"; echo stopped >> "$MARKS/log"; exit 143' TERM
echo start >> "$MARKS/log"; [ -e "$MARKS/lock" ] && echo OVERLAP >> "$MARKS/log"; touch "$MARKS/lock"
sleep 1.5 & wait; rm -f "$MARKS/lock"; echo done >> "$MARKS/log"`
	procs := &pool.Processes{Command: []string{worker, "/bin/sh", "-c", script}, URL: srv.URL, Token: token,
		Env: []string{"TMPDIR=" + work, "MARKS=" + marks, "PATH=" + os.Getenv("PATH")}}
	t.Cleanup(func() { procs.Stop(5 * time.Second) })
	mk := func() *pool.Runner {
		return srv.runner(t, pool.Config{
			Config:   local.Config{Queue: "q", StateDir: state, MaxAttempts: 3, NoSync: true},
			Launcher: pool.LauncherConfig{Token: token, TTL: 2 * time.Second, Grace: time.Second},
			Resize:   100 * time.Millisecond,
		}, keep{procs})
	}
	var mu sync.Mutex
	last := runner.Job{}
	notify := func(j runner.Job) { mu.Lock(); last = j; mu.Unlock() }
	phase := func() runner.Phase { mu.Lock(); defer mu.Unlock(); return last.Phase }

	r1 := mk()
	r1.SetParallelism(2)
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- r1.Run(ctx1, notify) }()
	if err := r1.Start(context.Background(), itemapi.NewItem("long", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "running", 20*time.Second, func() bool { return phase() == runner.PhaseRunning })
	waitFor(t, "the script started", 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(marks, "log"))
		return len(b) > 0
	})
	stop1()
	<-done1

	r2 := mk()
	r2.SetParallelism(2)
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	done2 := make(chan error, 1)
	go func() { done2 <- r2.Run(ctx2, notify) }()
	waitFor(t, "succeeded after the restart", 30*time.Second, func() bool { return phase() == runner.PhaseSucceeded })
	stop2()
	<-done2
	b, _ := os.ReadFile(filepath.Join(marks, "log"))
	if got := strings.Fields(string(b)); strings.Contains(string(b), "OVERLAP") || len(got) != 4 || got[1] != "stopped" || got[3] != "done" {
		t.Fatalf("runs: %q, want start stopped start done (the interrupted run stopped before the next began)", got)
	}
}

// The simulator is tied to the pool: a burst of 100 items of 0.3 s through
// the real manager (Config.Pool: the pool's scaler tuning) with the pool
// runner and worker processes has the shape the simulator predicts for
// itemq-pool on the same workload — as many workers as MANAGER_MAX_ACTIVE
// at once, and a makespan within [0.9×, 1.5× + 1 s] of the simulated one
// (the simulator has no process or protocol overheads).
func TestPoolBurstHasTheSimulatorsShape(t *testing.T) {
	const n, maxActive, service = 100, 10, 0.3
	w := sim.Workload{
		Name:        "burst-100",
		Arrivals:    func(*rand.Rand) []float64 { return make([]float64, n) },
		MeanService: func(float64) float64 { return service },
		Shape:       func(*rand.Rand) float64 { return 1 },
		StartDelay:  func(*rand.Rand) float64 { return 0 },
		MaxAttempts: 1, Capacity: maxActive, Burst: true,
	}
	want := sim.Run(w, sim.NewItemqPool(maxActive), 1)

	worker, _ := bins(t)
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	defer srv.Close()
	procs := &pool.Processes{Command: []string{worker, "/bin/sh", "-c", "sleep 0.3"}, URL: srv.URL, Token: token,
		Env: []string{"TMPDIR=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}}
	r, err := pool.New(pool.Config{
		Config:   local.Config{Queue: "q", StateDir: t.TempDir(), MaxAttempts: 1, NoSync: true},
		Launcher: pool.LauncherConfig{Token: token},
		Resize:   100 * time.Millisecond,
	}, procs)
	if err != nil {
		t.Fatal(err)
	}
	h = r.Handler()
	mem := memsource.New()
	for i := range n {
		if err := mem.Put(fmt.Sprintf("b%03d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	running, top := map[string]bool{}, 0
	m := manager.New(manager.Config{Queue: "q", Pool: true, MinActive: 1, MaxActive: maxActive},
		&manager.InProcess{Src: source.New(mem)}, notifying{r, func(j runner.Job) {
			mu.Lock()
			defer mu.Unlock()
			if j.Phase == runner.PhaseRunning {
				running[j.Item] = true
			} else {
				delete(running, j.Item)
			}
			top = max(top, len(running))
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	begin := time.Now()
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	waitFor(t, "every item succeeded", time.Minute, func() bool {
		for i := range n {
			if o, ok := mem.Outcome(fmt.Sprintf("b%03d", i)); !ok || o != itemapi.Succeeded {
				return false
			}
		}
		return true
	})
	got := time.Since(begin).Seconds()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("makespan: the manager %.2f s, the simulator %.2f s; most at once: %d and %d", got, want.Makespan, top, want.MaxPods)
	if top != want.MaxPods {
		t.Errorf("most attempts at once: %d, the simulator says %d", top, want.MaxPods)
	}
	if got < 0.9*want.Makespan || got > 1.5*want.Makespan+1 {
		t.Errorf("makespan %.2f s, the simulator's %.2f s: outside [0.9×, 1.5× + 1 s]", got, want.Makespan)
	}
}

// notifying is a runner whose updates a test also sees.
type notifying struct {
	*pool.Runner
	see func(runner.Job)
}

func (n notifying) Run(ctx context.Context, notify func(runner.Job)) error {
	return n.Runner.Run(ctx, func(j runner.Job) { n.see(j); notify(j) })
}

// A worker with the wrong token stops at once and says why, rather than
// asking again forever.
func TestWrongTokenStopsTheWorker(t *testing.T) {
	s := newPool(t, time.Second, 1, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pool.Work(ctx, pool.WorkerConfig{URL: s.srv.URL, Token: "not-the-token-0123456789", Name: "w", Command: []string{"/bin/true"}})
	if err == nil || !strings.Contains(err.Error(), "ITEMQ_POOL_TOKEN") || ctx.Err() != nil {
		t.Fatalf("Work with a wrong token = %v (ctx %v), want a prompt error naming ITEMQ_POOL_TOKEN", err, ctx.Err())
	}
}

// An attempt still waiting for a worker when the manager stops does not
// count: after the restart the item runs, once, as its first attempt.
func TestRestartWhileWaitingForAWorker(t *testing.T) {
	worker, probe := bins(t)
	state, work := t.TempDir(), t.TempDir()
	srv := newSwitchable(t)
	procs := &pool.Processes{Command: []string{worker, probe}, URL: srv.URL, Token: token, Env: []string{"TMPDIR=" + work}}
	mk := func() *pool.Runner {
		return srv.runner(t, pool.Config{
			Config:   local.Config{Queue: "q", StateDir: state, MaxAttempts: 1, NoSync: true},
			Launcher: pool.LauncherConfig{Token: token, TTL: time.Second, Grace: 100 * time.Millisecond},
			Resize:   100 * time.Millisecond,
		}, procs)
	}
	r1 := mk()
	r1.SetParallelism(0)
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- r1.Run(ctx1, func(runner.Job) {}) }()
	if err := r1.Start(context.Background(), itemapi.NewItem("waits", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "offered", 10*time.Second, func() bool { return r1.Launcher().Offered() == 1 })
	stop1()
	<-done1

	r2 := mk()
	r2.SetParallelism(1)
	var mu sync.Mutex
	var last runner.Job
	ctx2, stop2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- r2.Run(ctx2, func(j runner.Job) { mu.Lock(); last = j; mu.Unlock() }) }()
	defer func() { stop2(); <-done2 }()
	waitFor(t, "succeeded after the restart", 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return last.Phase.Finished() })
	mu.Lock()
	defer mu.Unlock()
	if last.Phase != runner.PhaseSucceeded || last.Attempts != 1 {
		t.Fatalf("after the restart: %s with %d attempts (history %+v); want succeeded in 1 (MANAGER_MAX_ATTEMPTS=1: the interrupted offer must not count)", last.Phase, last.Attempts, last.History)
	}
}

// An attempt out of time (MANAGER_JOB_TIMEOUT) is stopped on its worker,
// and its retry starts only once it has: never two runs at once.
func TestTimeoutStopsTheAttemptBeforeTheRetry(t *testing.T) {
	worker, _ := bins(t)
	marks := t.TempDir()
	srv := newSwitchable(t)
	// The first run outlives the timeout and takes 0.5 s to stop; the
	// second succeeds at once.
	script := `if [ -e "$MARKS/first" ]; then echo start >> "$MARKS/log"; [ -e "$MARKS/lock" ] && echo OVERLAP >> "$MARKS/log"; echo done >> "$MARKS/log"; exit 0; fi
trap 'sleep 0.5; rm -f "$MARKS/lock"; echo stopped >> "$MARKS/log"; exit 143' TERM
touch "$MARKS/first" "$MARKS/lock"; echo start >> "$MARKS/log"
sleep 30 & wait`
	procs := &pool.Processes{Command: []string{worker, "/bin/sh", "-c", script}, URL: srv.URL, Token: token,
		Env: []string{"TMPDIR=" + t.TempDir(), "MARKS=" + marks, "PATH=" + os.Getenv("PATH")}}
	r := srv.runner(t, pool.Config{
		Config: local.Config{Queue: "q", StateDir: t.TempDir(), MaxAttempts: 2, NoSync: true,
			JobTimeout: 1500 * time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond},
		Launcher: pool.LauncherConfig{Token: token, TTL: 2 * time.Second, Grace: 5 * time.Second},
		Resize:   100 * time.Millisecond,
	}, procs)
	r.SetParallelism(2)
	s := &setup{r: r}
	rn := s.run(t)
	if err := r.Start(context.Background(), itemapi.NewItem("slow", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "succeeded on the retry", 30*time.Second, func() bool { return rn.job("slow").Phase.Finished() })
	if j := rn.job("slow"); j.Phase != runner.PhaseSucceeded || j.Attempts != 2 || !strings.Contains(j.History[0].Reason, "timed out") {
		t.Errorf("job %+v: want succeeded on attempt 2 after a timeout", j)
	}
	b, _ := os.ReadFile(filepath.Join(marks, "log"))
	if got := strings.Fields(string(b)); strings.Contains(string(b), "OVERLAP") || len(got) != 4 || got[1] != "stopped" {
		t.Fatalf("runs: %q, want start stopped start done (the timed-out run stopped before the retry began)", got)
	}
}
