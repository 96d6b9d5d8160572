package main_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/itemapi"
)

// The figures these benchmarks report, and the commands that produced them,
// are recorded in docs/benchmarks/dir.md. hack/bench-dir.sh runs them all.

// makeTree creates n empty files, 1000 per directory, named
// cam-DDD/clip-NNNNNNN.mp4 (23 bytes), with an mtime an hour ago (settled),
// in parallel. It returns the names in creation order.
func makeTree(tb testing.TB, root string, n int) []string {
	tb.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("cam-%03d/clip-%07d.mp4", i/1000, i)
	}
	old := time.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	workers := 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for d := w; d*1000 < n; d += workers {
				dir := filepath.Join(root, fmt.Sprintf("cam-%03d", d))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					errs <- err
					return
				}
				for i := d * 1000; i < min(n, (d+1)*1000); i++ {
					p := filepath.Join(root, names[i])
					f, err := os.Create(p)
					if err != nil {
						errs <- err
						return
					}
					f.Close()
					if err := os.Chtimes(p, old, old); err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return names
}

// metric reads one unlabelled gauge from /metrics.
func (s *server) metric(name string) (float64, error) {
	m, err := testutil.Metrics(s.URL())
	if err != nil {
		return 0, err
	}
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return v, nil
}

// waitItems waits until the ambassador holds n items (read from /metrics,
// so that no listing inflates its memory).
func (s *server) waitItems(n int, timeout time.Duration) {
	s.t.Helper()
	testutil.Eventually(s.t, timeout, "items indexed", func() error {
		v, err := s.metric("itemq_ambassador_items")
		if err != nil {
			return err
		}
		if int(v) != n {
			return fmt.Errorf("%d items, want %d", int(v), n)
		}
		return nil
	})
}

// BenchmarkListPaged100k: a full paged listing of 100,000 files over HTTP,
// decoded by the client, with page sizes of 1000 and 10,000.
func BenchmarkListPaged100k(b *testing.B) {
	root := b.TempDir()
	const n = 100_000
	makeTree(b, root, n)
	s := start(b, root)
	s.waitItems(n, 5*time.Minute)
	for _, limit := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			total := 0
			start := time.Now()
			cpu0 := procCPU(b, s.Cmd.Process.Pid)
			for b.Loop() {
				names, err := s.listAll(limit)
				if err != nil {
					b.Fatal(err)
				}
				if len(names) != n || !slices.IsSorted(names) {
					b.Fatalf("listed %d names", len(names))
				}
				total += len(names)
			}
			b.ReportMetric(float64(total)/time.Since(start).Seconds(), "names/s")
			// The ambassador's own CPU time: its capacity, whatever else runs.
			b.ReportMetric(float64(total)/(procCPU(b, s.Cmd.Process.Pid)-cpu0).Seconds(), "names/server-cpu-s")
		})
	}
}

// BenchmarkGet: GET /v1/items/{name} of random names among 10,000 files,
// from 16 concurrent keep-alive connections (the load generator shares the
// 2 cores with the ambassador). One iteration is 20,000 requests.
func BenchmarkGet(b *testing.B) {
	for _, data := range []string{"file", "json"} {
		b.Run("data="+data, func(b *testing.B) {
			root := b.TempDir()
			const n = 10_000
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("d%02d/job-%05d.json", i%20, i)
				writeFile(b, root, names[i], fmt.Sprintf(`{"job":%d,"input":"s3://in/clips/%05d.mp4"}`, i, i))
			}
			s := start(b, root, "DIR_DATA="+data, "DIR_SETTLE=0")
			s.waitItems(n, 2*time.Minute)
			const workers, perIter = 16, 20_000
			tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: wait}
			var lat []time.Duration
			var latMu sync.Mutex
			total := 0
			start := time.Now()
			cpu0 := procCPU(b, s.Cmd.Process.Pid)
			for b.Loop() {
				var wg sync.WaitGroup
				errc := make(chan error, workers)
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func(w int) {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(w), 7))
						mine := make([]time.Duration, 0, perIter/workers)
						for i := 0; i < perIter/workers; i++ {
							t0 := time.Now()
							resp, err := c.Get(s.URL() + itemapi.ItemPath(names[rng.IntN(n)]))
							if err != nil {
								errc <- err
								return
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != 200 {
								errc <- fmt.Errorf("GET: %d", resp.StatusCode)
								return
							}
							mine = append(mine, time.Since(t0))
						}
						latMu.Lock()
						lat = append(lat, mine...)
						latMu.Unlock()
					}(w)
				}
				wg.Wait()
				close(errc)
				for err := range errc {
					b.Fatal(err)
				}
				total += perIter
			}
			b.ReportMetric(float64(total)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64(total)/(procCPU(b, s.Cmd.Process.Pid)-cpu0).Seconds(), "req/server-cpu-s")
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkWatchLatency: the time from a file's rename into place to its
// ADDED event read from the watch stream (DIR_SETTLE=0). "spaced" renames
// one file every 5 ms; "burst" renames 500 files as fast as it can.
func BenchmarkWatchLatency(b *testing.B) {
	for _, mode := range []string{"spaced", "burst"} {
		b.Run(mode, func(b *testing.B) {
			root := b.TempDir()
			makeTree(b, root, 10_000) // some items, so the index is not trivial
			if err := os.Mkdir(filepath.Join(root, "incoming"), 0o755); err != nil {
				b.Fatal(err)
			}
			s := start(b, root, "DIR_SETTLE=0")
			s.waitItems(10_000, 2*time.Minute)
			w := s.watch()
			testutil.Eventually(b, wait, "synced", func() error { return w.has(itemapi.Synced, "") })
			const perIter = 500
			var lat []time.Duration
			iter := 0
			for b.Loop() {
				renamed := make(map[string]time.Time, perIter)
				for i := 0; i < perIter; i++ {
					name := fmt.Sprintf("incoming/clip-%03d-%04d.mp4", iter, i)
					tmp := filepath.Join(root, "incoming", ".clip.tmp")
					if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
						b.Fatal(err)
					}
					if err := os.Rename(tmp, filepath.Join(root, filepath.FromSlash(name))); err != nil {
						b.Fatal(err)
					}
					renamed[name] = time.Now()
					if mode == "spaced" {
						time.Sleep(5 * time.Millisecond)
					}
				}
				testutil.Eventually(b, wait, "all ADDED", func() error {
					got := 0
					w.mu.Lock()
					for _, ev := range w.evs {
						if _, ok := renamed[ev.Name]; ok && ev.Type == itemapi.Added {
							got++
						}
					}
					w.mu.Unlock()
					if got < perIter {
						return fmt.Errorf("%d of %d", got, perIter)
					}
					return nil
				})
				w.mu.Lock()
				for i, ev := range w.evs {
					if t0, ok := renamed[ev.Name]; ok && ev.Type == itemapi.Added {
						lat = append(lat, w.at[i].Sub(t0))
					}
				}
				w.mu.Unlock()
				iter++
			}
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		})
	}
}

// BenchmarkRSS: the resident memory of the real binary with 1M indexed
// files (ITEMQ_BENCH_RSS_FILES to change; ITEMQ_BENCH_RSS_DIR to keep and
// reuse the tree, which takes a minute or two to create). Reported: VmRSS
// once the index is built, after two full rescans, after a full paged
// listing, and VmHWM (the peak).
func BenchmarkRSS(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc")
	}
	n := 1_000_000
	if v := os.Getenv("ITEMQ_BENCH_RSS_FILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	root := os.Getenv("ITEMQ_BENCH_RSS_DIR")
	if root == "" {
		root = b.TempDir()
	}
	marker := filepath.Join(root, ".bench-files")
	if got, _ := os.ReadFile(marker); string(got) != strconv.Itoa(n) {
		created := time.Now()
		makeTree(b, root, n)
		_ = os.WriteFile(marker, []byte(strconv.Itoa(n)), 0o644)
		b.Logf("created %d files in %v", n, time.Since(created).Round(time.Second))
	}
	for b.Loop() {
		t0 := time.Now()
		s := start(b, root, "DIR_POLL_INTERVAL=5s")
		s.waitItems(n, 10*time.Minute)
		scan := time.Since(t0)
		pid := s.Cmd.Process.Pid
		built := testutil.ProcMemMB(b, pid, "VmRSS")
		// Two full rescans (every 5 s) make their garbage.
		time.Sleep(11 * time.Second)
		rescanned := testutil.ProcMemMB(b, pid, "VmRSS")
		if _, err := s.listAll(1000); err != nil {
			b.Fatal(err)
		}
		listed := testutil.ProcMemMB(b, pid, "VmRSS")
		hwm := testutil.ProcMemMB(b, pid, "VmHWM")
		b.ReportMetric(float64(n), "files")
		b.ReportMetric(scan.Seconds(), "scan-s")
		b.ReportMetric(built, "rss-MB")
		b.ReportMetric(rescanned, "rss-rescanned-MB")
		b.ReportMetric(listed, "rss-listed-MB")
		b.ReportMetric(hwm, "peak-MB")
		if err := s.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}

// procCPU is the CPU time (user and system) a process has used so far,
// from /proc/PID/stat, in clock ticks of 1/100 s.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count from the ")".
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatus reads a kB field of /proc/PID/status, in MB.
