package manager_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/bucket"
	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/idempotency"
	"github.com/itemq/itemq/internal/manager/statusapi"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// waitState waits until an item's job is in state.
func waitState(t *testing.T, m *manager.Manager, item string, want itemapi.State) itemapi.JobStatus {
	t.Helper()
	var st itemapi.JobStatus
	testutil.Eventually(t, 30*time.Second, item+" "+string(want), func() error {
		st, _ = m.Status(item)
		if st.State != want {
			return fmt.Errorf("%s is %q (%+v)", item, st.State, st)
		}
		return nil
	})
	return st
}

// blocking is a launcher whose attempts run until released or cancelled,
// writing a line to the job's log as they start.
type blocking struct {
	mu      sync.Mutex
	runs    map[string]int
	started chan string
	release chan struct{}
	code    func(item string, run int) int
	stopped map[string]error // why an attempt's context ended
}

func newBlocking(code func(string, int) int) *blocking {
	return &blocking{runs: map[string]int{}, started: make(chan string, 100), release: make(chan struct{}), code: code, stopped: map[string]error{}}
}

func (b *blocking) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	b.mu.Lock()
	b.runs[a.Item.Name]++
	n := b.runs[a.Item.Name]
	b.mu.Unlock()
	fmt.Fprintf(a.Log, "attempt %d of %s starts\n", n, a.Item.Name)
	b.started <- a.Item.Name
	select {
	case <-b.release:
		return b.code(a.Item.Name, n), nil
	case <-ctx.Done():
		b.mu.Lock()
		b.stopped[a.Item.Name] = context.Cause(ctx)
		b.mu.Unlock()
		return -1, ctx.Err()
	}
}

func (b *blocking) count(item string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs[item]
}

func TestCancelRunningJob(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "long")
	l := newBlocking(func(string, int) int { return 0 })
	e := start(t, mem, t.TempDir(), l, nil)
	<-l.started
	start := time.Now()
	done, err := e.m.Cancel(context.Background(), "long")
	if err != nil || !done {
		t.Fatalf("Cancel: %v %v", done, err)
	}
	st := waitState(t, e.m, "long", itemapi.StateCancelled)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the attempt stopped %v after the cancel", took)
	}
	// (A cancel that races the start marks the job cancelled at once and
	// stops the attempt as soon as the runner has it.)
	testutil.Eventually(t, 10*time.Second, "the attempt stopped as cancelled", func() error {
		l.mu.Lock()
		why := l.stopped["long"]
		l.mu.Unlock()
		if !errors.Is(why, local.ErrCancelled) {
			return fmt.Errorf("the attempt's context ended with %v, want ErrCancelled", why)
		}
		return nil
	})
	// The source dead-letters it (cancelled items go with the failed ones).
	waitOutcomes(t, mem, []string{"long"}, itemapi.Failed)
	if st.Error != "cancelled" || st.FinishedAt.IsZero() {
		t.Errorf("status: %+v", st)
	}
	// A second cancel does nothing; the job never runs again.
	if done, err := e.m.Cancel(context.Background(), "long"); err != nil || done {
		t.Errorf("second Cancel: %v %v", done, err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := l.count("long"); n != 1 {
		t.Errorf("ran %d times", n)
	}
	if _, err := e.m.Cancel(context.Background(), "nope"); !itemapi.IsNotFound(err) {
		t.Errorf("Cancel of an unknown item: %v", err)
	}
}

func TestCancelPendingJobNeverStarts(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "first", "second")
	l := newBlocking(func(string, int) int { return 0 })
	e := start(t, mem, t.TempDir(), l, func(c *manager.Config, _ *local.Config) { c.MinActive, c.MaxActive = 1, 1 })
	running := <-l.started
	waiting := "second"
	if running == "second" {
		waiting = "first"
	}
	if st, _ := e.m.Status(waiting); st.State != itemapi.StatePending {
		t.Fatalf("%s: %+v", waiting, st)
	}
	if done, err := e.m.Cancel(context.Background(), waiting); err != nil || !done {
		t.Fatalf("Cancel: %v %v", done, err)
	}
	waitOutcomes(t, mem, []string{waiting}, itemapi.Failed)
	waitState(t, e.m, waiting, itemapi.StateCancelled)
	close(l.release)
	waitOutcomes(t, mem, []string{running}, itemapi.Succeeded)
	time.Sleep(200 * time.Millisecond)
	if n := l.count(waiting); n != 0 {
		t.Errorf("the cancelled item ran %d times", n)
	}
	if got := e.m.Select(itemapi.JobSelector{State: itemapi.StateCancelled}); len(got) != 1 || got[0] != waiting {
		t.Errorf("cancelled jobs: %v", got)
	}

	// Retried, it runs: redriven from the source's dead letter.
	newName, done, err := e.m.Retry(context.Background(), waiting)
	if err != nil || !done || newName != waiting {
		t.Fatalf("Retry: %q %v %v", newName, done, err)
	}
	waitState(t, e.m, waiting, itemapi.StateSucceeded)
	if n := l.count(waiting); n != 1 {
		t.Errorf("the retried item ran %d times", n)
	}
}

func TestRetryDeadJobRunsAgainWithFreshAttempts(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "bad")
	var broken sync.Map
	broken.Store("bad", true)
	l := newScripted(func(item string, _ int) int {
		if v, _ := broken.Load(item); v == true {
			return 1 // retryable, until the attempts run out
		}
		return 0
	})
	e := start(t, mem, t.TempDir(), l, nil)
	st := waitState(t, e.m, "bad", itemapi.StateDead)
	if st.Attempts != 3 {
		t.Fatalf("dead after %d attempts", st.Attempts)
	}
	// Each attempt is in the history, with how it ended.
	h, err := e.m.History(context.Background(), "bad")
	if err != nil || len(h) != 3 {
		t.Fatalf("history: %+v %v", h, err)
	}
	for i, a := range h {
		if a.Number != i+1 || a.ExitCode == nil || *a.ExitCode != 1 || a.Reason != "exit code 1" || a.StartedAt.IsZero() || a.FinishedAt.Before(a.StartedAt) {
			t.Errorf("attempt %d: %+v", i+1, a)
		}
	}
	// Nothing to retry while it succeeds or runs; unknown items are errors.
	if _, _, err := e.m.Retry(context.Background(), "nope"); !itemapi.IsNotFound(err) {
		t.Errorf("Retry of an unknown item: %v", err)
	}
	broken.Store("bad", false)
	res := e.m.RetryJobs(context.Background(), itemapi.JobSelector{State: itemapi.StateDead})
	if res.Done != 1 || res.Errors != 0 || len(res.Items) != 1 {
		t.Fatalf("RetryJobs: %+v", res)
	}
	st = waitState(t, e.m, "bad", itemapi.StateSucceeded)
	if st.Attempts != 1 || l.count("bad") != 4 {
		t.Errorf("after the retry: %d attempts in the new job, %d in all", st.Attempts, l.count("bad"))
	}
	waitOutcomes(t, mem, []string{"bad"}, itemapi.Succeeded)
	res = e.m.RetryJobs(context.Background(), itemapi.JobSelector{Items: []string{"bad"}})
	if res.Skipped != 1 || !strings.Contains(res.Items[0].Message, "succeeded") {
		t.Errorf("retry of a succeeded job: %+v", res)
	}
}

// A bulk redrive of 1,000 dead items: every one runs again, once.
func TestBulkRedrive(t *testing.T) {
	mem := memsource.New()
	items := names("d", 1000)
	put(t, mem, items...)
	var fixed sync.Map
	l := newScripted(func(item string, _ int) int {
		if _, ok := fixed.Load(item); ok {
			return 0
		}
		return 2
	})
	e := start(t, mem, t.TempDir(), l, func(c *manager.Config, _ *local.Config) { c.MinActive, c.MaxActive = 16, 16 })
	waitOutcomes(t, mem, items, itemapi.Failed)
	testutil.Eventually(t, 30*time.Second, "all dead", func() error {
		if n := len(e.m.Select(itemapi.JobSelector{State: itemapi.StateDead, Prefix: "d"})); n != len(items) {
			return fmt.Errorf("%d dead", n)
		}
		return nil
	})
	for _, it := range items {
		fixed.Store(it, true)
	}
	res := e.m.RetryJobs(context.Background(), itemapi.JobSelector{State: itemapi.StateDead, Prefix: "d"})
	if res.Done != len(items) || res.Errors != 0 {
		t.Fatalf("RetryJobs: done %d, errors %d: %+v", res.Done, res.Errors, res.Items[:1])
	}
	waitOutcomes(t, mem, items, itemapi.Succeeded)
	for _, it := range items {
		if n := l.count(it); n != 2 {
			t.Fatalf("%s ran %d times, want 2 (once dead, once retried)", it, n)
		}
	}
}

// A source that cannot redrive: the manager says so clearly.
func TestRetryWithoutRedrive(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "x")
	l := newScripted(func(string, int) int { return 2 })
	src := source.New(noRedrive{mem})
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 1}, &manager.InProcess{Src: src}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitState(t, m, "x", itemapi.StateDead)
	_, _, err = m.Retry(context.Background(), "x")
	if !itemapi.IsMethodNotAllowed(err) || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("Retry: %v", err)
	}
}

// noRedrive hides memsource's Redrive.
type noRedrive struct{ d *memsource.Driver }

func (n noRedrive) List(ctx context.Context, o source.ListOptions) ([]string, string, error) {
	return n.d.List(ctx, o)
}
func (n noRedrive) Get(ctx context.Context, s string) (json.RawMessage, error) {
	return n.d.Get(ctx, s)
}
func (n noRedrive) ErrorReason(err error) itemapi.Reason { return n.d.ErrorReason(err) }
func (n noRedrive) Close() error                         { return n.d.Close() }
func (n noRedrive) Ack(ctx context.Context, s string, o itemapi.Outcome) error {
	return n.d.Ack(ctx, s, o)
}

// The status API's lifecycle calls, through the Go client.
func TestLifecycleAPI(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "slow")
	l := newBlocking(func(string, int) int { return 0 })
	out := "mem://lifecycle-outputs"
	e := start(t, mem, t.TempDir(), l, func(c *manager.Config, _ *local.Config) { c.OutputURL = out })
	idemDir := t.TempDir()
	idem, err := idempotency.Open(idemDir, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	api := func(s *idempotency.Store) *httptest.Server {
		return httptest.NewServer(statusapi.NewAPI(e.m, statusapi.APIOptions{Token: "admin", ReadToken: "viewer", Idempotency: s}))
	}
	srv := api(idem)
	defer srv.Close()
	ctx := context.Background()
	admin, _ := itemapi.NewJobsClient(srv.URL, itemapi.WithBearerToken("admin"))
	viewer, _ := itemapi.NewJobsClient(srv.URL, itemapi.WithBearerToken("viewer"))
	anon, _ := itemapi.NewJobsClient(srv.URL)

	// Reads need a token; the viewer's cannot change anything. (Once the
	// job exists: the source's item is dispatched asynchronously.)
	<-l.started
	waitState(t, e.m, "slow", itemapi.StateRunning)
	if _, err := anon.Get(ctx, "slow"); !itemapi.IsUnauthorized(err) {
		t.Errorf("anonymous read: %v", err)
	}
	if _, err := viewer.Get(ctx, "slow"); err != nil {
		t.Errorf("viewer read: %v", err)
	}
	if _, err := viewer.Cancel(ctx, itemapi.JobSelector{Items: []string{"slow"}}); !itemapi.IsUnauthorized(err) {
		t.Errorf("viewer cancel: %v", err)
	}
	if _, err := admin.Cancel(ctx, itemapi.JobSelector{}); itemapi.ReasonOf(err) != itemapi.ReasonBadRequest {
		t.Errorf("empty selector: %v", err)
	}

	// The control loop's state: the running job, c and why.
	sc, err := viewer.Scaling(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Kind != "Scaling" || sc.Running != 1 || sc.Pending != 0 || sc.C < 1 || sc.Reason == "" || sc.LastChange == nil || sc.LastChangeReason == "" {
		t.Errorf("scaling: %+v", sc)
	}
	if _, err := anon.Scaling(ctx); !itemapi.IsUnauthorized(err) {
		t.Errorf("anonymous scaling: %v", err)
	}

	// The log, while it runs; a long poll that ends with the job.
	rc, err := viewer.Logs(ctx, "slow", 1, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "attempt 1 of slow starts\n" {
		t.Errorf("log tail: %q", b)
	}
	short, err := viewer.Wait(ctx, "slow", 100*time.Millisecond)
	if err != nil || short.State != itemapi.StateRunning {
		t.Fatalf("Wait that times out: %+v %v", short, err)
	}
	waited := make(chan *itemapi.JobStatus, 1)
	go func() {
		st, err := viewer.Wait(ctx, "slow", time.Minute)
		if err != nil {
			t.Error(err)
		}
		waited <- st
	}()
	follow, err := viewer.Logs(ctx, "slow", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := admin.Cancel(ctx, itemapi.JobSelector{Prefix: "sl", State: itemapi.StateRunning})
	if err != nil || res.Done != 1 {
		t.Fatalf("Cancel: %+v %v", res, err)
	}
	select {
	case st := <-waited:
		if st.State != itemapi.StateCancelled {
			t.Errorf("the long poll answered %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll did not answer when the job ended")
	}
	all, _ := io.ReadAll(follow) // ends when the job has ended
	follow.Close()
	if !strings.Contains(string(all), "attempt 1 of slow starts\n") || !strings.Contains(string(all), "job cancelled") {
		t.Errorf("followed log: %q", all)
	}

	// Idempotent submit: the same key and body answer the same job, across
	// a restart of the store; another body with the key is a conflict.
	first, err := admin.SubmitWithKey(ctx, json.RawMessage(`{"v":1}`), "key-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := admin.SubmitWithKey(ctx, json.RawMessage(`{"v":1}`), "key-1")
	if err != nil || again.Item != first.Item {
		t.Fatalf("replay: %+v %v (first %s)", again, err, first.Item)
	}
	if _, err := admin.SubmitWithKey(ctx, json.RawMessage(`{"v":2}`), "key-1"); !itemapi.IsConflict(err) {
		t.Fatalf("another body with the key: %v", err)
	}
	srv.Close()
	idem.Close()
	idem2, err := idempotency.Open(idemDir, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	defer idem2.Close()
	srv2 := api(idem2)
	defer srv2.Close()
	admin2, _ := itemapi.NewJobsClient(srv2.URL, itemapi.WithBearerToken("admin"))
	viewer, _ = itemapi.NewJobsClient(srv2.URL, itemapi.WithBearerToken("viewer"))
	if after, err := admin2.SubmitWithKey(ctx, json.RawMessage(`{"v":1}`), "key-1"); err != nil || after.Item != first.Item {
		t.Fatalf("replay after a restart: %+v %v", after, err)
	}
	if n := mem.Len(); n != 1 { // the submitted one (slow was dead-lettered)
		t.Errorf("the source holds %d items, want 1", n)
	}

	// Results through the manager: the manifest, then one file.
	b2 := bucket.Mem("lifecycle-outputs")
	key := itemapi.ItemKey("slow")
	_ = b2.WriteAll(ctx, key+"/thumb.jpg", []byte("JPEG"), nil)
	man := itemapi.Manifest{Item: "slow", Key: key, Outputs: []itemapi.ManifestOutput{{Name: "thumb.jpg", Size: 4, SHA256: "abc"}}}
	mb, _ := json.Marshal(man)
	_ = b2.WriteAll(ctx, key+"/"+itemapi.ManifestName, mb, nil)
	got, err := viewer.Outputs(ctx, "slow")
	if err != nil || len(got.Outputs) != 1 || got.Outputs[0].Name != "thumb.jpg" {
		t.Fatalf("Outputs: %+v %v", got, err)
	}
	rc, size, sum, err := viewer.Output(ctx, "slow", "thumb.jpg")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "JPEG" || size != 4 || sum != "abc" {
		t.Errorf("Output: %q %d %q", data, size, sum)
	}
	if _, _, _, err := viewer.Output(ctx, "slow", "../other/x"); !itemapi.IsNotFound(err) {
		t.Errorf("a file the manifest does not list: %v", err)
	}

	// Retry through the API, by name.
	rres, err := admin2.Retry(ctx, itemapi.JobSelector{Items: []string{"slow"}})
	if err != nil || rres.Done != 1 {
		t.Fatalf("Retry: %+v %v", rres, err)
	}
	<-l.started
	close(l.release)
	waitState(t, e.m, "slow", itemapi.StateSucceeded)
}

// oldAmbassador refuses the cancelled outcome, as an ambassador older than
// it does (400).
type oldAmbassador struct{ manager.Source }

func (o oldAmbassador) Ack(ctx context.Context, name string, out itemapi.Outcome) error {
	if out == itemapi.Cancelled {
		return itemapi.NewStatus(itemapi.ReasonBadRequest, "outcome %q: want succeeded or failed", out)
	}
	return o.Source.Ack(ctx, name, out)
}

// A source that does not know the cancelled outcome gets the cancelled
// item as failed.
func TestCancelWithAnOlderAmbassador(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "x")
	l := newBlocking(func(string, int) int { return 0 })
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 1}, oldAmbassador{&manager.InProcess{Src: source.New(mem)}}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-l.started
	if _, err := m.Cancel(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	waitOutcomes(t, mem, []string{"x"}, itemapi.Failed)
	waitState(t, m, "x", itemapi.StateCancelled)
}

// A retried item comes back through the source's watch while the retry
// drops its old job: it runs once more, not twice (the ADDED event of the
// redriven item queued it a second time; TestBulkRedrive caught it on a
// loaded machine as a third run or an item never acknowledged).
func TestRetriedItemRunsOnce(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "r")
	l := newScripted(func(_ string, run int) int {
		if run == 1 {
			return 2
		}
		return 0
	})
	r, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	var m *manager.Manager
	// The source answers the redrive only once a second run has finished
	// (or 1 s has passed), and the second run's acknowledgement only once a
	// third run has begun (or 1 s has passed): the interleaving that ran it
	// three times.
	src := &slowRedrive{InProcess: &manager.InProcess{Src: source.New(mem)},
		afterRedrive: func() {
			until(time.Second, func() bool { st, _ := m.Status("r"); return l.count("r") >= 2 && st.State == itemapi.StateSucceeded })
		},
		beforeAck: func(o itemapi.Outcome) {
			if o == itemapi.Succeeded {
				until(time.Second, func() bool { return l.count("r") >= 3 })
			}
		}}
	m = manager.New(manager.Config{Queue: "test", MaxActive: 2}, src, r)
	runManager(t, m)
	waitState(t, m, "r", itemapi.StateDead)
	if _, done, err := m.Retry(context.Background(), "r"); err != nil || !done {
		t.Fatalf("Retry: done %v, err %v", done, err)
	}
	waitOutcomes(t, mem, []string{"r"}, itemapi.Succeeded)
	waitState(t, m, "r", itemapi.StateSucceeded)
	if n := l.count("r"); n != 2 {
		t.Fatalf("r ran %d times, want 2 (once dead, once retried)", n)
	}
}

// A retry asked while the failed job's acknowledgement is being made
// waits for it: it does not start the item again under a record that the
// late acknowledgement then marks dead (its success was never
// acknowledged).
func TestRetryWhileTheAckIsMade(t *testing.T) {
	mem, l, lr, releaseSecond := failThenHold(t, "a")
	r := &slowMarkAcked{Runner: lr, entered: make(chan struct{}), release: make(chan struct{})}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2}, &manager.InProcess{Src: source.New(mem)}, r)
	runManager(t, m)
	t.Cleanup(releaseSecond) // before the manager's stop: a failed test's manager can stop
	<-r.entered              // the source holds it as failed; the manager has not recorded that yet
	retried := make(chan error, 1)
	go func() {
		_, done, err := m.Retry(context.Background(), "a")
		if err == nil && !done {
			err = errors.New("nothing retried")
		}
		retried <- err
	}()
	// Without the wait, the retry starts the second run now.
	until(500*time.Millisecond, func() bool { return l.count("a") >= 2 })
	close(r.release)
	if err := <-retried; err != nil {
		t.Fatalf("Retry: %v", err)
	}
	releaseSecond()
	waitOutcomes(t, mem, []string{"a"}, itemapi.Succeeded)
	waitState(t, m, "a", itemapi.StateSucceeded)
}

// until polls cond every 5 ms for at most d.
func until(d time.Duration, cond func() bool) {
	for end := time.Now().Add(d); !cond() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
}

// slowRedrive is a source whose redrive and acknowledgements wait for the
// test.
type slowRedrive struct {
	*manager.InProcess
	afterRedrive func()
	beforeAck    func(itemapi.Outcome)
}

func (s *slowRedrive) Redrive(ctx context.Context, name string) (*itemapi.Item, error) {
	it, err := s.InProcess.Redrive(ctx, name)
	s.afterRedrive()
	return it, err
}

func (s *slowRedrive) Ack(ctx context.Context, name string, o itemapi.Outcome) error {
	s.beforeAck(o)
	return s.InProcess.Ack(ctx, name, o)
}

// slowMarkAcked is a runner whose first MarkAcked waits for release.
type slowMarkAcked struct {
	runner.Runner
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *slowMarkAcked) MarkAcked(ctx context.Context, item string, o itemapi.Outcome) error {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.Runner.MarkAcked(ctx, item, o)
}

// A runner listing taken before a retry and applied after it is stale for
// the retried item: its old, failed job (the acknowledgement not yet seen
// in the listing, as a Kubernetes informer lags) is not taken back, so its
// failure is not told to the source again, which would dead-letter the
// redriven item under its new run (found by TestIntegrationLifecycleChaos:
// the job succeeded, the source held the item as failed).
func TestStaleListingAfterRetry(t *testing.T) {
	mem, l, lr, releaseSecond := failThenHold(t, "x")
	r := &staleJobs{Runner: lr, taken: make(chan struct{}), release: make(chan struct{})}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: 100 * time.Millisecond}, &manager.InProcess{Src: source.New(mem)}, r)
	runManager(t, m)
	t.Cleanup(releaseSecond) // before the manager's stop: a failed test's manager can stop
	waitState(t, m, "x", itemapi.StateDead)
	r.arm()
	<-r.taken // a listing with the dead job began
	if _, done, err := m.Retry(context.Background(), "x"); err != nil || !done {
		t.Fatalf("Retry: %v %v", done, err)
	}
	until(5*time.Second, func() bool { return l.count("x") >= 2 })
	close(r.release) // the listing is answered now
	time.Sleep(300 * time.Millisecond)
	if o, acked := mem.Outcome("x"); acked {
		t.Fatalf("the source was told %q while the retried item runs", o)
	}
	releaseSecond()
	waitOutcomes(t, mem, []string{"x"}, itemapi.Succeeded)
	waitState(t, m, "x", itemapi.StateSucceeded)
}

// staleJobs is a runner whose next listing, once armed, is taken at once
// (without the acknowledgements, as an informer that has not seen them yet)
// and answered only when released.
type staleJobs struct {
	runner.Runner
	mu      sync.Mutex
	armed   bool
	taken   chan struct{}
	release chan struct{}
}

func (s *staleJobs) arm() {
	s.mu.Lock()
	s.armed = true
	s.mu.Unlock()
}

func (s *staleJobs) Jobs(ctx context.Context) ([]runner.Job, error) {
	jobs, err := s.Runner.Jobs(ctx)
	s.mu.Lock()
	armed := s.armed
	s.armed = false
	s.mu.Unlock()
	if !armed {
		return jobs, err
	}
	for i := range jobs {
		jobs[i].Acked = ""
	}
	close(s.taken)
	<-s.release
	return jobs, err
}

// failThenHold is an item in a source whose first attempt fails (one
// attempt allowed) and whose next ones wait until releaseSecond.
func failThenHold(t *testing.T, item string) (mem *memsource.Driver, l *scripted, lr *local.Runner, releaseSecond func()) {
	t.Helper()
	mem = memsource.New()
	put(t, mem, item)
	second := make(chan struct{})
	var once sync.Once
	releaseSecond = func() { once.Do(func() { close(second) }) }
	l = newScripted(func(_ string, run int) int {
		if run == 1 {
			return 2
		}
		<-second
		return 0
	})
	lr, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	return mem, l, lr, releaseSecond
}

// A redriven item under a new name that the source lists while the first
// read of it still answers "not found" (a stream source reads the new entry
// a moment after the redrive answered its name) runs: it is not dropped as
// vanished (it stayed unknown to the manager, pending in the source, until
// a full resync; found by TestLifecycleChaosRedisStream).
func TestRedrivenUnderANewNameListedLate(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "y")
	l := newScripted(func(item string, _ int) int {
		if item == "y" {
			return 2
		}
		return 0
	})
	lr, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	src := &renaming{InProcess: &manager.InProcess{Src: source.New(mem)}, mem: mem}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2, Resync: time.Hour, RetryBase: 10 * time.Millisecond}, src, lr)
	runManager(t, m)
	waitState(t, m, "y", itemapi.StateDead)
	newName, done, err := m.Retry(context.Background(), "y")
	if err != nil || !done || newName != "y.again" {
		t.Fatalf("Retry: %q %v %v", newName, done, err)
	}
	waitOutcomes(t, mem, []string{"y.again"}, itemapi.Succeeded)
	if n := l.count("y.again"); n != 1 {
		t.Fatalf("y.again ran %d times", n)
	}
}

// renaming is a source whose redrive answers a new name (name+".again")
// that it lists only during the first read of it, which answers NotFound.
type renaming struct {
	*manager.InProcess
	mem  *memsource.Driver
	once sync.Once
}

func (r *renaming) Redrive(ctx context.Context, name string) (*itemapi.Item, error) {
	if _, err := r.InProcess.Redrive(ctx, name); err != nil {
		return nil, err
	}
	r.mem.Remove(name)
	return itemapi.NewItem(name+".again", []byte(`{}`)), nil
}

func (r *renaming) Get(ctx context.Context, name string) (*itemapi.Item, error) {
	first := false
	if strings.HasSuffix(name, ".again") {
		r.once.Do(func() { first = true })
	}
	if !first {
		return r.InProcess.Get(ctx, name)
	}
	_ = r.mem.Put(name, json.RawMessage(`{}`))
	time.Sleep(300 * time.Millisecond) // its ADDED event is handled meanwhile
	return nil, itemapi.NewStatus(itemapi.ReasonNotFound, "no item %q (read before it was there)", name)
}

// A cancel while the dispatch worker creates the job does not tell the
// source before the job exists: the job, cancelled once created, may have
// ended already (here it succeeded at once), and the source must hear how
// it ended — it dead-lettered an item whose job succeeded (found by
// TestLifecycleChaos).
func TestCancelWhileTheJobIsCreated(t *testing.T) {
	mem := memsource.New()
	put(t, mem, "z")
	l := newScripted(func(string, int) int { return 0 })
	lr, err := local.New(local.Config{Queue: "test", StateDir: t.TempDir(), MaxAttempts: 1}, l)
	if err != nil {
		t.Fatal(err)
	}
	// Start returns only once the job has run and its end was reported.
	r := &slowStart{Runner: lr, started: make(chan string, 1), release: make(chan struct{}), after: func() {
		until(5*time.Second, func() bool { return l.count("z") >= 1 })
		time.Sleep(50 * time.Millisecond)
	}}
	m := manager.New(manager.Config{Queue: "test", MaxActive: 2}, &manager.InProcess{Src: source.New(mem)}, r)
	runManager(t, m)
	<-r.started
	if done, err := m.Cancel(context.Background(), "z"); err != nil || !done {
		t.Fatalf("Cancel: %v %v", done, err)
	}
	time.Sleep(100 * time.Millisecond) // an acknowledgement of the cancel would be made now
	close(r.release)
	st := waitState(t, m, "z", itemapi.StateSucceeded)
	waitOutcomes(t, mem, []string{"z"}, itemapi.Succeeded)
	t.Logf("the job ended %s; the source was told %s", st.State, itemapi.Succeeded)
}
