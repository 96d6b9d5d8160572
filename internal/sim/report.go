package sim

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Table runs every workload through every controller with the seeds and
// returns the results, averaged over the seeds, by workload then
// controller (in the order of Workloads and Controllers). A pool that an
// autoscaler sizes gets its PoolBound, a burst its WarmMakespan. The runs
// go in parallel, on up to GOMAXPROCS goroutines.
func Table(workloads []Workload, seeds []uint64) [][]Result {
	return TableOf(workloads, seeds, Controllers, true)
}

// TableOf is Table with the controllers of each workload given (fresh ones
// at each call), and without the PoolBound searches when bounds is false
// (they take most of the time at full size).
func TableOf(workloads []Workload, seeds []uint64, controllers func(Workload) []Controller, bounds bool) [][]Result {
	runs := make([][][]Result, len(workloads)) // by workload, controller, seed
	warm := make([][]float64, len(workloads))  // WarmMakespan by workload, seed
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	do := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f()
		}()
	}
	for i, w := range workloads {
		n := len(controllers(w))
		runs[i] = make([][]Result, n)
		warm[i] = make([]float64, len(seeds))
		for k := range n {
			runs[i][k] = make([]Result, len(seeds))
			for j, seed := range seeds {
				do(func() {
					c := controllers(w)[k]
					r := Run(w, c, seed)
					if _, warm := c.(Warm); bounds && c.Model() == Pool && !warm {
						b := PoolBound(w, seed, r.WaitP95)
						r.PoolBound = b.WorkerSeconds
					}
					runs[i][k][j] = r
				})
			}
		}
		if w.Burst {
			for j, seed := range seeds {
				do(func() { warm[i][j] = WarmMakespan(w, seed) })
			}
		}
	}
	wg.Wait()
	out := make([][]Result, len(workloads))
	for i := range workloads {
		out[i] = make([]Result, len(runs[i]))
		for k, rs := range runs[i] {
			for j := range rs {
				rs[j].WarmMakespan = warm[i][j]
			}
			out[i][k] = mean(rs)
		}
	}
	return out
}

// mean averages the figures of runs of one workload and controller (the
// first run's samples are kept, for plots).
func mean(runs []Result) Result {
	m := runs[0]
	if len(runs) == 1 {
		return m
	}
	n := float64(len(runs))
	avg := func(f func(Result) float64) float64 {
		s := 0.0
		for _, r := range runs {
			s += f(r)
		}
		return s / n
	}
	avgI := func(f func(Result) int) int {
		return int(math.Round(avg(func(r Result) float64 { return float64(f(r)) })))
	}
	m.Items = avgI(func(r Result) int { return r.Items })
	m.Succeeded = avgI(func(r Result) int { return r.Succeeded })
	// Dead from the finished items' mean, so that Succeeded + Dead is
	// Items when every run finished every item (each rounded alone, they
	// could be one off).
	m.Dead = avgI(func(r Result) int { return r.Succeeded + r.Dead }) - m.Succeeded
	m.WaitMean = avg(func(r Result) float64 { return r.WaitMean })
	m.WaitP50 = avg(func(r Result) float64 { return r.WaitP50 })
	m.WaitP95 = avg(func(r Result) float64 { return r.WaitP95 })
	m.WaitP99 = avg(func(r Result) float64 { return r.WaitP99 })
	m.WaitMax = avg(func(r Result) float64 { return r.WaitMax })
	m.HandedP95 = avg(func(r Result) float64 { return r.HandedP95 })
	m.Makespan = avg(func(r Result) float64 { return r.Makespan })
	m.WorkerSeconds = avg(func(r Result) float64 { return r.WorkerSeconds })
	m.PendingSeconds = avg(func(r Result) float64 { return r.PendingSeconds })
	m.BusySeconds = avg(func(r Result) float64 { return r.BusySeconds })
	m.BoundSeconds = avg(func(r Result) float64 { return r.BoundSeconds })
	m.PoolBound = avg(func(r Result) float64 { return r.PoolBound })
	m.WarmMakespan = avg(func(r Result) float64 { return r.WarmMakespan })
	m.Attempts = avgI(func(r Result) int { return r.Attempts })
	m.IdleExits = avgI(func(r Result) int { return r.IdleExits })
	m.Changes = avgI(func(r Result) int { return r.Changes })
	m.MaxPods = avgI(func(r Result) int { return r.MaxPods })
	m.LongestRun = avg(func(r Result) float64 { return r.LongestRun })
	return m
}

// IdealMakespan is a burst's makespan were every attempt's start delay and
// run spread evenly over the capacity's pods (and never less than the
// longest single attempt): below what any controller reaches, since items
// are whole and go in FIFO order (WarmMakespan is the least reached).
func IdealMakespan(w Workload, r Result) float64 {
	return max(r.BoundSeconds/float64(w.Capacity), r.LongestRun+w.MeanStartDelay)
}

// WriteMarkdown writes the results as one table per workload.
func WriteMarkdown(out io.Writer, workloads []Workload, table [][]Result, seeds int) error {
	var b strings.Builder
	for i, w := range workloads {
		fmt.Fprintf(&b, "\n### %s\n\n%s\n\n", w.Name, describe(w, table[i][0]))
		b.WriteString("| controller | p50 wait | p95 wait | p99 wait | p95 to a worker | makespan | worker-s | ÷ Job bound | ÷ pool bound | ÷ busy | pending pod-s | idle Jobs | c changes | most pods |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range table[i] {
			pool := "–"
			if r.PoolBound > 0 {
				pool = fmt.Sprintf("%.2f", r.WorkerSeconds/r.PoolBound)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.0f | %.2f | %s | %.2f | %.0f | %d | %d | %d |\n",
				r.Controller, secs(r.WaitP50), secs(r.WaitP95), secs(r.WaitP99), secs(r.HandedP95), secs(r.Makespan),
				r.WorkerSeconds, r.WorkerSeconds/r.BoundSeconds, pool, r.WorkerSeconds/r.BusySeconds,
				r.PendingSeconds, r.IdleExits, r.Changes, r.MaxPods)
		}
	}
	fmt.Fprintf(&b, "\nEach figure is the mean of %d runs (seeds 1–%d); the same seed gives every controller the same arrivals, run times and failures. "+
		"÷ Job bound: worker-seconds ÷ (run times + one mean pod start per attempt), the least a Job per attempt pays. "+
		"÷ pool bound (pools that an autoscaler sizes): ÷ the fewest worker-seconds of a pool planned with the trace known, whose pods start at no cost, that waits no longer at p95 on the same seed (sim.PoolBound; an achievable plan, not a proof of the least). "+
		"÷ busy: ÷ the run times alone, what no execution pays less than.\n", seeds, seeds)
	_, err := io.WriteString(out, b.String())
	return err
}

func describe(w Workload, r Result) string {
	var parts []string
	parts = append(parts, fmt.Sprintf("%d items", r.Items))
	if w.Horizon > 0 {
		parts = append(parts, fmt.Sprintf("arriving over %s", secs(w.Horizon)))
	}
	parts = append(parts, fmt.Sprintf("S = %s", secs(w.MeanService(0))))
	if s2 := w.MeanService(w.Horizon); s2 != w.MeanService(0) {
		parts = append(parts, fmt.Sprintf("then %s from %s", secs(s2), secs(w.Horizon/2)))
	}
	parts = append(parts, fmt.Sprintf("pod start %s on average", secs(w.MeanStartDelay)))
	if w.FailRate > 0 {
		parts = append(parts, fmt.Sprintf("%.0f %% of attempts fail (%d attempts, %s apart)", 100*w.FailRate, w.MaxAttempts, secs(w.RetryBackoff)))
	}
	parts = append(parts, fmt.Sprintf("capacity %d pods", w.Capacity))
	if w.Burst {
		parts = append(parts, fmt.Sprintf("least makespan %s (%d warm workers that start nothing; no controller ends sooner)", secs(r.WarmMakespan), w.Capacity),
			fmt.Sprintf("even spread of every start and run %s", secs(IdealMakespan(w, r))))
	}
	return strings.Join(parts, "; ") + "."
}

func secs(s float64) string {
	switch {
	case s >= 3600:
		return fmt.Sprintf("%.1f h", s/3600)
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	default:
		return fmt.Sprintf("%.1f s", s)
	}
}

// WriteSVG draws the pods of each named controller over time in one
// workload's run (from the first seed): a line per controller.
func WriteSVG(out io.Writer, title string, results []Result, names []string) error {
	const W, H, P = 720.0, 300.0, 40.0
	var rs []Result
	for _, r := range results {
		if slices.Contains(names, r.Controller) {
			rs = append(rs, r)
		}
	}
	tmax, ymax := 1.0, 1.0
	for _, r := range rs {
		for _, s := range r.C {
			tmax = max(tmax, s.T)
			ymax = max(ymax, float64(s.Pods))
		}
	}
	colors := []string{"#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/><text x="%.0f" y="16" font-weight="bold">%s</text>`+"\n", P, title)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`+"\n",
		P, H-P, W-P, H-P, P, P, P, H-P)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%.0f</text><text x="%.0f" y="%.0f" text-anchor="end">0</text>`+"\n", P-4, P+4, ymax, P-4, H-P+4)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text><text x="%.0f" y="%.0f">pods</text>`+"\n", W-P, H-P+16, secs(tmax), 4.0, P-8)
	for i, r := range rs {
		// At most one point per pixel column: the most pods in it.
		var pts []string
		col, high := -1, 0
		flush := func() {
			if col >= 0 {
				pts = append(pts, fmt.Sprintf("%d,%.1f", col, H-P-(H-2*P)*float64(high)/ymax))
			}
		}
		for _, s := range r.C {
			x := int(P + (W-2*P)*s.T/tmax)
			if x != col {
				flush()
				col, high = x, 0
			}
			high = max(high, s.Pods)
		}
		flush()
		c := colors[i%len(colors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", W-P-150, P+16*float64(i+1), c, r.Controller)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(out, b.String())
	return err
}
