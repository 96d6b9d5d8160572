package queue_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/queue"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// fakeRunner holds finished jobs and starts nothing.
type fakeRunner struct{ jobs []queue.Job }

func (f *fakeRunner) Run(ctx context.Context, _ func(queue.Job)) error { <-ctx.Done(); return nil }
func (f *fakeRunner) Start(context.Context, *itemapi.Item) error       { return nil }
func (f *fakeRunner) Jobs(context.Context) ([]queue.Job, error)        { return f.jobs, nil }
func (f *fakeRunner) MarkAcked(context.Context, string, itemapi.Outcome) error {
	return nil
}
func (f *fakeRunner) Forget(context.Context, string) error { return nil }

// BenchmarkReconcile100k: one full reconcile pass with 100k items in the
// source, half of them with finished jobs, the rest waiting. Target ≤ 50 ms.
//
//	go test -run '^$' -bench Reconcile100k ./internal/queue/
func BenchmarkReconcile100k(b *testing.B) {
	const n = 100_000
	mem := memsource.New()
	var jobs []queue.Job
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("videos/2026/11/clip-%06d.mp4", i)
		_ = mem.Put(name, []byte(`{}`))
		if i%2 == 0 {
			jobs = append(jobs, queue.Job{Item: name, Name: queue.JobName("q", name), Phase: queue.PhaseSucceeded, Attempts: 1, Acked: itemapi.Succeeded, FinishedAt: time.Now()})
		}
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := queue.New(queue.Config{Queue: "q", MaxActive: 1, Resync: time.Hour}, &queue.InProcess{Src: source.New(mem)}, &fakeRunner{jobs: jobs})
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
