package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/testutil"
	"github.com/itemq/itemq/internal/testutil/redisserver"
)

// BenchmarkRSS100kPending: itemq-redis holding 100,000 pending entries
// (REDIS_MAX_PENDING=100000, nothing acknowledged); its VmRSS and VmHWM.
func BenchmarkRSS100kPending(b *testing.B) {
	const n = 100000
	srv := redisserver.Start(b, redisserver.Options{})
	c := srv.Client(b)
	for range b.N {
		stream := fmt.Sprintf("rss-%d", time.Now().UnixNano())
		addIDs(b, c, stream, n)
		p := testutil.StartServer(b, testutil.Binary(b, "ambassadors/redis"), "ITEMQ_ADDR",
			"REDIS_ADDRS="+srv.Addr, "REDIS_STREAMS="+stream, "REDIS_CONSUMER=rss", "REDIS_MAX_PENDING=100000", "ITEMQ_LOG_LEVEL=info")
		testutil.Eventually(b, 5*time.Minute, "all pending held", func() error {
			m, err := testutil.Metrics(p.URL())
			if err != nil {
				return err
			}
			if got := m["itemq_ambassador_items"]; got < n {
				return fmt.Errorf("%v items held (metrics %v)", got, len(m))
			}
			return nil
		})
		b.ReportMetric(testutil.ProcMemMB(b, p.Cmd.Process.Pid, "VmRSS"), "rss-MiB")
		b.ReportMetric(testutil.ProcMemMB(b, p.Cmd.Process.Pid, "VmHWM"), "hwm-MiB")
		p.Kill()
	}
}
