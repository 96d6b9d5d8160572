package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"github.com/itemq/itemq/internal/fairq"
	"github.com/itemq/itemq/internal/manager"
)

// Fairness workloads (issue 15, fair dispatch): the same arrivals waiting
// in the manager's fair order and in plain FIFO, through itemq's
// controller.

// TenantBurst is one tenant's burst of n items at time 0 beside another
// tenant that sends one item a second for horizon seconds; the keys are
// the tenants (MANAGER_FAIR_KEY=tenant). fair=false waits FIFO.
func TenantBurst(n int, horizon float64, fair bool) Workload {
	w := base("tenant-burst-"+fmt.Sprint(n), 0, horizon)
	w.Streams = []Stream{
		{Name: "a (burst)", Class: fairq.Class{Key: "a"}, Arrivals: func(*rand.Rand) []float64 { return make([]float64, n) }},
		{Name: "b (1/s)", Class: fairq.Class{Key: "b"}, Arrivals: Poisson(constant(1), 1, horizon)},
	}
	if !fair {
		for i := range w.Streams {
			w.Streams[i].Class = fairq.Class{}
		}
	}
	return w
}

// PriorityBurst is a burst of n items of priority 0 at time 0 and urgent
// items of priority 10 at 0.5 a second (MANAGER_PRIORITY_FIELD), with the
// manager's default share of starts for lower priorities
// (MANAGER_PRIORITY_LOW_SHARE). fair=false waits FIFO.
func PriorityBurst(n int, horizon float64, fair bool) Workload {
	w := base("priority-burst-"+fmt.Sprint(n), 0, horizon)
	w.Streams = []Stream{
		{Name: "low (burst)", Class: fairq.Class{Priority: 0}, Arrivals: func(*rand.Rand) []float64 { return make([]float64, n) }},
		{Name: "urgent (0.5/s)", Class: fairq.Class{Priority: 10}, Arrivals: Poisson(constant(0.5), 0.5, horizon)},
	}
	w.Fair = fairq.Config{LowShare: manager.DefaultLowShare}
	if !fair {
		for i := range w.Streams {
			w.Streams[i].Class = fairq.Class{}
		}
		w.Fair = fairq.Config{}
	}
	return w
}

// FairWorkloads returns the fairness workloads, each as a fair and a FIFO
// pair (fair first); size scales the burst and the horizon (1: a burst of
// 10,000).
func FairWorkloads(size float64) [][2]Workload {
	n := max(int(10000*size), 100)
	h := max(1800*size, 120)
	return [][2]Workload{
		{TenantBurst(n, h, true), TenantBurst(n, h, false)},
		{PriorityBurst(n, h, true), PriorityBurst(n, h, false)},
	}
}

// WriteFairMarkdown runs the fairness workloads through itemq's controller
// (seed 1) and writes their table.
func WriteFairMarkdown(out io.Writer, pairs [][2]Workload) error {
	fmt.Fprintf(out, "\n## Fair dispatch\n\nitemq's controller, seed 1; the queueing delay of each stream, in the manager's fair order and in FIFO (S = %s, pods start in 1–5 s).\n\n", secs(DefaultS))
	fmt.Fprintln(out, "| workload | order | stream | items | p50 wait | p95 wait | max wait | makespan |")
	fmt.Fprintln(out, "|---|---|---|---:|---:|---:|---:|---:|")
	for _, p := range pairs {
		for i, w := range p {
			order := "fair"
			if i == 1 {
				order = "FIFO"
			}
			r := Run(w, NewItemq(w.Capacity), 1)
			names := make([]string, 0, len(r.Streams))
			for name := range r.Streams {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				s := r.Streams[name]
				if _, err := fmt.Fprintf(out, "| %s | %s | %s | %d | %s | %s | %s | %s |\n", w.Name, order, name, s.Items,
					secs(s.WaitP50), secs(s.WaitP95), secs(s.WaitMax), secs(r.Makespan)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
