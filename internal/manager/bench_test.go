package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/dirsource"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// BenchmarkReconcile100k: one full reconcile pass with 100k items in the
// source, half of them with finished jobs, the rest waiting. Target ≤ 50 ms.
//
//	go test -run '^$' -bench Reconcile100k ./internal/manager/
func BenchmarkReconcile100k(b *testing.B) {
	const n = 100_000
	mem := memsource.New()
	var jobs []runner.Job
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("videos/2026/11/clip-%06d.mp4", i)
		_ = mem.Put(name, []byte(`{}`))
		if i%2 == 0 {
			jobs = append(jobs, runner.Job{Item: name, Name: runner.JobName("q", name), Phase: runner.PhaseSucceeded, Attempts: 1, Acked: itemapi.Succeeded, FinishedAt: time.Now()})
		}
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := manager.New(manager.Config{Queue: "q", MaxActive: 1, Resync: time.Hour}, &manager.InProcess{Src: source.New(mem)}, &runnertest.Held{Records: jobs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for m.Ready() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += m.Reconcile()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/reconcile")
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "manager-heap-MiB")
}

// BenchmarkCancel: from Cancel to the job ended cancelled, its attempt (a
// real process, sleep 60, with the local runner's process group) stopped.
// Target: p99 ≤ 1 s.
//
//	go test -run '^$' -bench Cancel -benchtime 100x ./internal/manager/
func BenchmarkCancel(b *testing.B) {
	mem := memsource.New()
	r, err := local.New(local.Config{Queue: "q", StateDir: b.TempDir(), MaxAttempts: 1, NoSync: true},
		&local.ProcessLauncher{Steps: [][]string{{"sleep", "60"}}, Grace: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "q", MinActive: 4, MaxActive: 4, Resync: time.Hour}, &manager.InProcess{Src: source.New(mem)}, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		item := fmt.Sprintf("c%06d", i)
		_ = mem.Put(item, []byte(`{}`))
		for {
			st, _ := m.Status(item)
			if st.State == itemapi.StateRunning {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := m.Cancel(ctx, item); err != nil {
			b.Fatal(err)
		}
		if st, _ := m.WaitStatus(ctx, item, time.Minute); st.State != itemapi.StateCancelled {
			b.Fatalf("%s: %+v", item, st)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBulkRedrive10k: POST /v1/retry's work for 10,000 dead items of a
// directory source (in process, on disk) with the local runner's store
// (fsynced): each item is moved back out of .failed/ and its old record
// dropped. Target ≤ 10 s.
//
//	go test -run '^$' -bench BulkRedrive10k -benchtime 1x ./internal/manager/
func BenchmarkBulkRedrive10k(b *testing.B) {
	const n = 10_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := b.TempDir()
		for j := 0; j < n; j++ {
			if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("v%05d.json", j)), []byte(`{}`), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		d, err := dirsource.Open(context.Background(), []string{"DIR_ROOT=" + root, "DIR_SETTLE=0s"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var fixed atomic.Bool
		l := newScripted(func(string, int) int {
			if fixed.Load() {
				return 0
			}
			return 2
		})
		r, err := local.New(local.Config{Queue: "q", StateDir: b.TempDir(), MaxAttempts: 1}, l)
		if err != nil {
			b.Fatal(err)
		}
		m := manager.New(manager.Config{Queue: "q", MinActive: 64, MaxActive: 64, Resync: time.Hour}, &manager.InProcess{Src: d}, r)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		for len(m.Select(itemapi.JobSelector{State: itemapi.StateDead})) < n {
			time.Sleep(50 * time.Millisecond)
		}
		fixed.Store(true)
		b.StartTimer()
		start := time.Now()
		res := m.RetryJobs(ctx, itemapi.JobSelector{State: itemapi.StateDead})
		took := time.Since(start)
		b.StopTimer()
		if res.Done != n {
			b.Fatalf("%d redriven, %d errors: %+v", res.Done, res.Errors, res.Items[0])
		}
		b.ReportMetric(took.Seconds(), "s/10k")
		cancel()
		<-done
		d.Close()
	}
}

// BenchmarkDispatchFair: 3,000 no-op items of 1,000 tenants through the
// manager with the local runner (its store not fsynced), in FIFO and with
// MANAGER_FAIR_KEY and MANAGER_PRIORITY_FIELD: what the fair order costs
// a dispatch. The items are in the source before the manager starts, so
// with the fair order every one is first read by the classify workers.
//
//	go test -run '^$' -bench DispatchFair -benchtime 3x ./internal/manager/
func BenchmarkDispatchFair(b *testing.B) {
	const n = 3000
	for _, fair := range []bool{false, true} {
		b.Run(fmt.Sprintf("fair=%v", fair), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				mem := memsource.New()
				for j := range n {
					_ = mem.Put(fmt.Sprintf("i%05d", j), json.RawMessage(fmt.Sprintf(`{"tenant":"t%d","prio":%d}`, j%1000, j%3)))
				}
				r, err := local.New(local.Config{Queue: "q", StateDir: b.TempDir(), MaxAttempts: 1, NoSync: true}, newScripted(func(string, int) int { return 0 }))
				if err != nil {
					b.Fatal(err)
				}
				cfg := manager.Config{Queue: "q", MinActive: 64, MaxActive: 64, Resync: time.Hour}
				if fair {
					cfg.Fair = manager.Fair{KeyField: "tenant", PriorityField: "prio"}
				}
				m := manager.New(cfg, &manager.InProcess{Src: source.New(mem)}, r)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- m.Run(ctx) }()
				for m.Summary().Counts[itemapi.StateSucceeded] < n {
					time.Sleep(5 * time.Millisecond)
				}
				b.ReportMetric(n/time.Since(start).Seconds(), "items/s")
				b.StopTimer()
				cancel()
				<-done
			}
		})
	}
}
