package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/servers"
)

// BenchmarkList100k: a full paged listing (pages of 1000) of 100k objects
// through itemq-bucket, on versitygw (S3) and on file://. It reports the
// names per second of the HTTP listing, the time from start to ready, the
// time of the ambassador's first listing of the bucket and of its second
// (a steady-state poll at the default interval), and the ambassador's
// resident memory after those and at its peak.
//
// The objects are written straight into the storage directories (versitygw's
// posix backend serves files written there; they have no stored ETag), which
// takes seconds where 100k PUTs would take minutes. ITEMQ_BENCH_OBJECTS
// changes the count.
//
//	go test -run '^$' -bench List100k -benchtime 3x ./ambassadors/bucket/
func BenchmarkList100k(b *testing.B) {
	n := 100000
	if v := os.Getenv("ITEMQ_BENCH_OBJECTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	b.Run("s3-versitygw", func(b *testing.B) {
		srv := servers.VersityGW(b)
		u := srv.NewBucket(b)
		bucket := strings.TrimPrefix(u[:strings.Index(u, "?")], "s3://")
		writeObjects(b, filepath.Join(srv.Dir, bucket), n)
		benchList(b, srv, u, n)
	})
	b.Run("file", func(b *testing.B) {
		dir := b.TempDir()
		writeObjects(b, dir, n)
		benchList(b, nil, "file://"+dir, n)
	})
}

// writeObjects writes n small files under dir/clips/ in 100 subdirectories.
func writeObjects(b *testing.B, dir string, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, "clips", fmt.Sprintf("%02d", i%100))
		if i < 100 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("clip-%07d.mp4", i)), []byte("0123456789"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func benchList(b *testing.B, srv *servers.Server, bucketURL string, n int) {
	testutil.Binary(b, "ambassadors/bucket") // built before the clock starts
	start := time.Now()
	// The default poll interval: the second listing (a steady-state poll,
	// every object already known) is measured too, and the memory after it.
	a := startAmb(b, srv, false, "BUCKET_URL="+bucketURL, "BUCKET_PREFIX=clips/", "BUCKET_POLL_INTERVAL=15s")
	ready := time.Since(start)
	var polls []time.Duration
	testutil.Eventually(b, 5*time.Minute, "second listing", func() error {
		polls = listings(a)
		if len(polls) < 2 {
			return fmt.Errorf("%d listings so far", len(polls))
		}
		return nil
	})
	b.ResetTimer()
	var names int
	for i := 0; i < b.N; i++ {
		got, err := a.listPages(1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != n {
			b.Fatalf("listed %d names, want %d", len(got), n)
		}
		names += len(got)
	}
	b.StopTimer()
	b.ReportMetric(float64(names)/b.Elapsed().Seconds(), "names/s")
	b.ReportMetric(ready.Seconds(), "s-to-ready")
	b.ReportMetric(polls[0].Seconds(), "s-first-poll")
	b.ReportMetric(polls[1].Seconds(), "s-second-poll")
	pid := a.Cmd.Process.Pid
	rss, hwm := testutil.ProcMemMB(b, pid, "VmRSS"), testutil.ProcMemMB(b, pid, "VmHWM")
	b.ReportMetric(rss, "MB-RSS")
	b.ReportMetric(hwm, "MB-peak-RSS")
}

// listings reads the durations of the ambassador's bucket listings from its
// debug log.
func listings(a *amb) []time.Duration {
	var out []time.Duration
	for _, line := range strings.Split(a.Logs(), "\n") {
		var rec struct{ Msg, Dur string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listed bucket" {
			if d, err := time.ParseDuration(rec.Dur); err == nil {
				out = append(out, d)
			}
		}
	}
	return out
}
