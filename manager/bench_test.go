package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/testutil"
)

// BenchmarkDispatchLatency measures item created → executor started: a
// file renamed into the directory of an itemq-dir ambassador (DIR_SETTLE=0,
// fsnotify) until the executor command runs. Target: p99 ≤ 250 ms.
//
//	go test -run '^$' -bench DispatchLatency -benchtime 1x ./manager/
func BenchmarkDispatchLatency(b *testing.B) {
	const n = 200
	base := b.TempDir()
	root, marks := filepath.Join(base, "in"), filepath.Join(base, "marks")
	_ = os.MkdirAll(root, 0o755)
	_ = os.MkdirAll(marks, 0o755)
	amb := testutil.StartServer(b, testutil.Binary(b, "ambassadors/dir"), "ITEMQ_ADDR",
		"DIR_ROOT="+root, "DIR_SETTLE=0s", "DIR_ON_DONE=delete")
	// The executor records when it started, under its job's name (a hash of
	// the item name: the shell sees no item data).
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", `date +%s%N > "$MARKS/$ITEMQ_JOB_NAME"`})
	testutil.StartServer(b, testutil.Binary(b, "manager"), "MANAGER_ADDR",
		"MANAGER_SOURCE="+amb.URL(), "MANAGER_COMMAND="+string(cmd), "MANAGER_STATE_DIR="+filepath.Join(base, "state"),
		"MANAGER_MAX_ACTIVE=8", "MANAGER_MIN_ACTIVE=8", "MANAGER_JOB_ENV_MARKS="+marks)
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		created := map[string]time.Time{}
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("r%d-%04d", it, i)
			tmp := filepath.Join(root, "."+name)
			_ = os.WriteFile(tmp, []byte("x"), 0o644)
			created[runner.JobName("default", name)] = time.Now()
			if err := os.Rename(tmp, filepath.Join(root, name)); err != nil {
				b.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		var lat []time.Duration
		testutil.Eventually(b, time.Minute, "all started", func() error {
			lat = lat[:0]
			for job, t0 := range created {
				raw, err := os.ReadFile(filepath.Join(marks, job))
				if err != nil || len(raw) < 2 {
					return fmt.Errorf("%s not started", job)
				}
				ns, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
				if err != nil {
					return err
				}
				lat = append(lat, time.Unix(0, ns).Sub(t0))
			}
			return nil
		})
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	}
}

// BenchmarkThroughput runs 1,000 no-op items (/bin/true) end to end —
// itemq-dir ambassador, itemq-manager with the local runner, each item
// archived — and the same 1,000 runs of /bin/true with xargs -P<cores>.
// Target: itemq ≥ 0.7× xargs's throughput. The same run through the pool
// (MANAGER_EXECUTION=pool, <cores> workers each running /bin/true per
// item) measures the pool's protocol against a process per item.
//
//	go test -run '^$' -bench Throughput -benchtime 3x ./manager/
func BenchmarkThroughput(b *testing.B) {
	const n = 1000
	cores := strconv.Itoa(numCPU())
	worker := testutil.Binary(b, "internal/runner/pool/testdata/worker")
	var itemq, pool, xargs time.Duration
	for it := 0; it < b.N; it++ {
		base := b.TempDir()
		root := filepath.Join(base, "in")
		var list strings.Builder
		put := func() {
			_ = os.MkdirAll(root, 0o755)
			list.Reset()
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("item%04d", i)
				_ = os.WriteFile(filepath.Join(root, name), []byte("x"), 0o644)
				list.WriteString(name + "\n")
			}
		}
		put()
		// xargs: the same no-op command per item, cores at a time.
		start := time.Now()
		x := exec.Command("xargs", "-P", cores, "-n", "1", "/bin/true")
		x.Stdin = strings.NewReader(list.String())
		if out, err := x.CombinedOutput(); err != nil {
			b.Fatalf("xargs: %v %s", err, out)
		}
		xargs += time.Since(start)

		run := func(state string, env ...string) time.Duration {
			amb := testutil.StartServer(b, testutil.Binary(b, "ambassadors/dir"), "ITEMQ_ADDR",
				"DIR_ROOT="+root, "DIR_SETTLE=0s")
			start := time.Now()
			mgr := testutil.StartServer(b, testutil.Binary(b, "manager"), "MANAGER_ADDR",
				append([]string{"MANAGER_SOURCE=" + amb.URL(), "MANAGER_STATE_DIR=" + filepath.Join(base, state),
					"MANAGER_MAX_ACTIVE=" + cores}, env...)...)
			testutil.Eventually(b, 5*time.Minute, "all archived", func() error {
				left, err := os.ReadDir(root)
				if err != nil {
					return err
				}
				if len(left) > 1 { // .done
					return fmt.Errorf("%d left", len(left)-1)
				}
				return nil
			})
			d := time.Since(start)
			_ = mgr.Stop()
			_ = amb.Stop()
			return d
		}
		itemq += run("state", "MANAGER_COMMAND=/bin/true")
		_ = os.RemoveAll(root)
		put()
		pool += run("state-pool", "MANAGER_COMMAND="+worker+" /bin/true", "MANAGER_EXECUTION=pool",
			"MANAGER_POOL_TOKEN=bench-pool-token-0123456789", "MANAGER_MIN_ACTIVE="+cores)
	}
	b.ReportMetric(float64(n*b.N)/itemq.Seconds(), "itemq-items/s")
	b.ReportMetric(float64(n*b.N)/pool.Seconds(), "pool-items/s")
	b.ReportMetric(float64(n*b.N)/xargs.Seconds(), "xargs-items/s")
	b.ReportMetric(xargs.Seconds()/itemq.Seconds(), "ratio")
}

// BenchmarkRSS100k: the resident memory of the real itemq-manager binary
// holding 100,000 waiting items (two running a long sleep, the rest in the
// backlog), with the source in process (dir://) and behind an itemq-dir
// ambassador, and the times the binary itself reports in /metrics while
// it resyncs every second: a reconcile pass (the diff, target ≤ 50 ms) and
// a full resync (listing 100k items, then the diff). Target: RSS ≤ 300 MB.
//
//	go test -run '^$' -bench RSS100k -benchtime 1x ./manager/
func BenchmarkRSS100k(b *testing.B) {
	const n = 100_000
	root := filepath.Join(b.TempDir(), "in")
	_ = os.MkdirAll(root, 0o755)
	for i := 0; i < n; i++ {
		name := filepath.Join(root, fmt.Sprintf("clip-%06d.mp4", i))
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	manager := testutil.Binary(b, "manager")
	amb := testutil.StartServer(b, testutil.Binary(b, "ambassadors/dir"), "ITEMQ_ADDR", "DIR_ROOT="+root)
	for _, src := range []struct{ name, url string }{
		{"in-process", "dir://" + root},
		{"ambassador", amb.URL()},
	} {
		b.Run(src.name, func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				mgr := testutil.StartServer(b, manager, "MANAGER_ADDR",
					"MANAGER_SOURCE="+src.url, `MANAGER_COMMAND=["/bin/sleep","600"]`,
					"MANAGER_STATE_DIR="+filepath.Join(b.TempDir(), "state"),
					"MANAGER_MAX_ACTIVE=2", "MANAGER_RESYNC=1s")
				var m map[string]float64
				testutil.Eventually(b, 5*time.Minute, "100k items held and 10 resyncs", func() error {
					var err error
					if m, err = testutil.Metrics(mgr.URL()); err != nil {
						return err
					}
					if m["itemq_manager_items"] != n || m["itemq_manager_active"] != 2 {
						return fmt.Errorf("items %v, active %v", m["itemq_manager_items"], m["itemq_manager_active"])
					}
					if r := m["itemq_manager_resync_seconds_count"]; r < 10 {
						return fmt.Errorf("%v resyncs", r)
					}
					return nil
				})
				pid := mgr.Cmd.Process.Pid
				b.ReportMetric(testutil.ProcMemMB(b, pid, "VmRSS"), "RSS-MiB")
				b.ReportMetric(testutil.ProcMemMB(b, pid, "VmHWM"), "peak-RSS-MiB")
				b.ReportMetric(m["itemq_manager_reconcile_seconds_sum"]/m["itemq_manager_reconcile_seconds_count"]*1000, "ms/reconcile")
				b.ReportMetric(m["itemq_manager_resync_seconds_sum"]/m["itemq_manager_resync_seconds_count"]*1000, "ms/resync")
				_ = mgr.Stop()
			}
		})
	}
}

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 2
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return max(n, 1)
}
