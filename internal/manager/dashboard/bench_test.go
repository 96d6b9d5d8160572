package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/manager/dashboard"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// BenchmarkJobsPage100k: the jobs page with 100,000 jobs (sorted by name,
// by time, filtered by state, searched). Target ≤ 100 ms a page.
//
//	go test -run '^$' -bench JobsPage100k ./internal/manager/dashboard/
func BenchmarkJobsPage100k(b *testing.B) {
	const n = 100_000
	mem := memsource.New()
	var jobs []runner.Job
	now := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("videos/2026/12/clip-%06d.mp4", i)
		if i%2 == 0 {
			jobs = append(jobs, runner.Job{Item: name, Name: runner.JobName("q", name), Phase: runner.PhaseSucceeded, Attempts: 1,
				Acked: itemapi.Succeeded, StartedAt: now.Add(-time.Duration(i) * time.Second), FinishedAt: now.Add(-time.Duration(i) * time.Second / 2)})
		} else {
			_ = mem.Put(name, []byte(`{}`))
		}
	}
	m := manager.New(manager.Config{Queue: "q", MaxActive: 1, Resync: time.Hour}, &manager.InProcess{Src: source.New(mem)}, &runnertest.Held{Records: jobs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for m.Ready() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	d := dashboard.New(m, dashboard.Options{})
	for _, q := range []string{"", "?sort=recent", "?state=succeeded&offset=20000", "?q=clip-0999"} {
		b.Run("jobs"+q, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rec := httptest.NewRecorder()
				d.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/jobs"+q, nil))
				if rec.Code != 200 {
					b.Fatalf("%d", rec.Code)
				}
			}
		})
	}
}

// instant is a launcher whose attempts succeed at once.
type instant struct{}

func (instant) Launch(context.Context, *local.Attempt) (int, error) { return 0, nil }

// BenchmarkLivePagesCost: the time to run 3,000 no-op jobs (about 1,000
// job changes a second and more) with and without the dashboard's live
// overview open in 5 browsers (server-sent events). Target: live pages slow
// dispatch by at most 5 %.
//
//	go test -run '^$' -bench LivePagesCost -benchtime 5x ./internal/manager/dashboard/
func BenchmarkLivePagesCost(b *testing.B) {
	const n = 3000
	for _, pages := range []int{0, 5} {
		b.Run(fmt.Sprintf("live-pages=%d", pages), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				total += runJobs(b, n, pages)
			}
			b.ReportMetric(float64(n)/total.Seconds()*float64(b.N), "jobs/s")
		})
	}
}

func runJobs(b *testing.B, n, pages int) time.Duration {
	b.Helper()
	mem := memsource.New()
	r, err := local.New(local.Config{Queue: "q", StateDir: b.TempDir(), MaxAttempts: 1, NoSync: true}, instant{})
	if err != nil {
		b.Fatal(err)
	}
	m := manager.New(manager.Config{Queue: "q", MinActive: 8, MaxActive: 8, Resync: time.Hour}, &manager.InProcess{Src: source.New(mem)}, r)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if pages > 0 {
		d := dashboard.New(m, dashboard.Options{Interval: time.Second})
		go func() { _ = d.Run(ctx) }()
		srv := httptest.NewServer(d)
		defer func() { srv.CloseClientConnections(); srv.Close() }()
		for p := 0; p < pages; p++ {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/events", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			go func() { defer resp.Body.Close(); _, _ = io.Copy(io.Discard, resp.Body) }()
		}
	}
	for m.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		_ = mem.Put(fmt.Sprintf("j%05d", i), []byte(`{}`))
	}
	for mem.Len() > 0 { // every item acknowledged (cheap to ask: no lock of the manager's)
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}
