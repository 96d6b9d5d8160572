package local_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/testutil"
)

// run runs r until the test ends and returns the channel of its updates.
func run(t *testing.T, r *local.Runner) <-chan runner.Job {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan runner.Job, 100)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func(j runner.Job) { updates <- j }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return updates
}

func waitFinished(t *testing.T, updates <-chan runner.Job, item string) runner.Job {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case j := <-updates:
			if j.Item == item && j.Phase.Finished() {
				return j
			}
		case <-timeout:
			t.Fatalf("%s did not finish", item)
		}
	}
}

// Two items whose job names collide (forced: 40-bit collisions are too
// rare to find) get two jobs with two names, two logs, and forgetting one
// leaves the other's log.
func TestHashCollision(t *testing.T) {
	bin := testutil.Binary(t, "internal/runner/container/testdata/probe")
	state := t.TempDir()
	collide := func(q, item string) []string {
		names := runner.JobNames(q, item)
		names[0] = q + "-0000000000" // every item's first candidate
		return names
	}
	r, err := local.New(local.Config{Queue: "q", StateDir: state, WorkDir: t.TempDir(), NoSync: true, JobNames: collide},
		&local.ProcessLauncher{Steps: [][]string{{bin}}})
	if err != nil {
		t.Fatal(err)
	}
	updates := run(t, r)
	ctx := context.Background()
	a, b := runnertest.ProbeItem("a", runnertest.Succeed), runnertest.ProbeItem("b", runnertest.Succeed)
	if err := r.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	ja := waitFinished(t, updates, "a")
	if err := r.Start(ctx, b); err != nil {
		t.Fatal(err)
	}
	jb := waitFinished(t, updates, "b")
	if ja.Name != "q-0000000000" || jb.Name == ja.Name || jb.Name != runner.JobNames("q", "b")[1] {
		t.Fatalf("names %q and %q: want the first candidate, then b's next", ja.Name, jb.Name)
	}
	if r.LogPath("a") == r.LogPath("b") {
		t.Fatal("one log for two jobs")
	}
	if got := runnertest.EnvFromLog(t, r.LogPath("b"))["ITEMQ_JOB_NAME"]; got != jb.Name {
		t.Fatalf("b's executor saw ITEMQ_JOB_NAME=%q, want %q", got, jb.Name)
	}
	if err := r.Forget(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.LogPath("b")); err != nil {
		t.Fatalf("forgetting a removed b's log: %v", err)
	}
}

// A manager killed during attempts leaves their directories: the next Run
// removes this queue's, and nothing else.
func TestCrashLeftoversRemoved(t *testing.T) {
	work := t.TempDir()
	mine := []string{"q-0123456789-123", "q-0123456789abcdef0123-9"}
	foreign := []string{"q2-0123456789-1", "other", "q-notahash-1", "q-0123456789"}
	for _, d := range append(append([]string{}, mine...), foreign...) {
		if err := os.MkdirAll(filepath.Join(work, d, "out"), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	r, err := local.New(local.Config{Queue: "q", StateDir: t.TempDir(), WorkDir: work, NoSync: true}, &local.ProcessLauncher{Steps: [][]string{{"/bin/true"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is removed before Run (New only reads).
	for _, d := range mine {
		if _, err := os.Stat(filepath.Join(work, d)); err != nil {
			t.Fatalf("New removed %s", d)
		}
	}
	run(t, r)
	deadline := time.Now().Add(10 * time.Second)
	for _, d := range mine {
		for {
			if _, err := os.Stat(filepath.Join(work, d)); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("leftover %s not removed", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, d := range foreign {
		if _, err := os.Stat(filepath.Join(work, d)); err != nil {
			t.Errorf("foreign %s removed: %v", d, err)
		}
	}
}

// Jobs works before Run (the manager lists first); Run then opens the
// store for writing and resumes; a second runner on the same state sees
// the records.
func TestJobsBeforeRunAndReopen(t *testing.T) {
	bin := testutil.Binary(t, "internal/runner/container/testdata/probe")
	state := t.TempDir()
	cfg := local.Config{Queue: "q", StateDir: state, WorkDir: t.TempDir(), NoSync: true}
	r, err := local.New(cfg, &local.ProcessLauncher{Steps: [][]string{{bin}}})
	if err != nil {
		t.Fatal(err)
	}
	if jobs, err := r.Jobs(context.Background()); err != nil || len(jobs) != 0 {
		t.Fatalf("Jobs before Run = %v, %v", jobs, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan runner.Job, 100)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func(j runner.Job) { updates <- j }) }()
	if err := r.Start(ctx, runnertest.ProbeItem("a", runnertest.Succeed)); err != nil {
		t.Fatal(err)
	}
	waitFinished(t, updates, "a")
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r2, err := local.New(cfg, &local.ProcessLauncher{Steps: [][]string{{bin}}})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := r2.Jobs(context.Background())
	if err != nil || len(jobs) != 1 || jobs[0].Phase != runner.PhaseSucceeded {
		t.Fatalf("Jobs of a new runner before Run = %+v, %v", jobs, err)
	}
}
