package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// The pool's bound and the burst's ideal: what a pool planned with the
// whole trace known in advance pays for a p95 wait, and the shortest burst
// any controller of the simulator can reach.

// PlanWindow is the length of the windows a planned pool's size is
// constant over (seconds).
const PlanWindow = 600.0

// Planned is a pool whose size follows a plan made with the trace known in
// advance: C[k] workers in window k (of PlanWindow seconds; the last size
// stays). Its workers start at no cost (PoolBound runs it with no start
// delay), and the first window's exist before the run starts.
type Planned struct {
	C []int
	// Arrivals, when Record is set, receives every arrival time.
	Record   bool
	Arrivals []float64
}

func (c *Planned) size(t float64) int {
	if len(c.C) == 0 {
		return 1
	}
	return c.C[min(int(t/PlanWindow), len(c.C)-1)]
}

func (c *Planned) Name() string          { return "planned" }
func (c *Planned) Model() Model          { return Pool }
func (c *Planned) Interval() float64     { return PlanWindow }
func (c *Planned) Served(float64)        {}
func (c *Planned) Decide(o Observed) int { return c.size(o.Now) }
func (c *Planned) WarmWorkers() int      { return c.size(0) }
func (c *Planned) Arrived(t float64) {
	if c.Record {
		c.Arrivals = append(c.Arrivals, t)
	}
}

// Bound is the fewest worker-seconds PoolBound found for a p95 wait.
type Bound struct {
	WorkerSeconds float64
	WaitP95       float64
	// Plan says which plan it is: "fixed 12" or "√-staffing β=1.25".
	Plan string
	// Reached is false when not even the cluster's capacity of warm
	// workers reaches the wait (then WorkerSeconds is that pool's).
	Reached bool
}

// noStart is w with pods that start at once.
func noStart(w Workload) Workload {
	w.StartDelay = func(*rand.Rand) float64 { return 0 }
	w.MeanStartDelay = 0
	return w
}

// PoolBound is the fewest worker-seconds of a planned pool whose p95 wait
// on the seed's trace is at most p95: a pool that knows the trace in
// advance, whose workers exist when the plan says with no start delay
// and no pending time (so it pays only the seconds its workers exist),
// and whose size is one of two plans, searched on the same trace:
//
//   - fixed: c workers all along (the smallest c that reaches the wait);
//   - √-staffing: in each window of PlanWindow seconds,
//     c = ceil(a + β·√a) workers, where a is the window's offered load
//     known in hindsight (its arrivals × attempts per item × the mean run
//     time ÷ the window) — the square-root staffing rule, near-optimal for
//     many-server queues (Halfin–Whitt) — with the smallest β found that
//     reaches the wait.
//
// It is an achievable plan, not a proof of the least: a pool that knew
// every single arrival and run time could pay less (down to the busy
// seconds, workers that exist only while they run). It is what an
// operator who knew the load of every ten minutes in advance would
// provision, starting pods for free.
func PoolBound(w Workload, seed uint64, p95 float64) Bound {
	w = noStart(w)
	rec := &Planned{C: []int{w.Capacity}, Record: true}
	r0 := Run(w, rec, seed)
	try := func(plan []int) Result { return Run(w, &Planned{C: plan}, seed) }
	ok := func(r Result) bool { return r.WaitP95 <= p95+1e-9 }
	best := Bound{WorkerSeconds: math.Inf(1)}
	note := func(r Result, plan string) {
		if ok(r) && r.WorkerSeconds < best.WorkerSeconds {
			best = Bound{WorkerSeconds: r.WorkerSeconds, WaitP95: r.WaitP95, Plan: plan, Reached: true}
		}
	}
	if !ok(r0) {
		return Bound{WorkerSeconds: r0.WorkerSeconds, WaitP95: r0.WaitP95, Plan: fmt.Sprintf("fixed %d (does not reach it)", w.Capacity)}
	}
	note(r0, fmt.Sprintf("fixed %d", w.Capacity))

	// fixed: bisect c in [1, capacity] (more workers never wait longer).
	lo, hi := 1, w.Capacity
	for lo < hi {
		mid := (lo + hi) / 2
		if r := try([]int{mid}); ok(r) {
			note(r, fmt.Sprintf("fixed %d", mid))
			hi = mid
		} else {
			lo = mid + 1
		}
	}

	// √-staffing: the windows' offered loads, then bisect β.
	end := max(w.Horizon, r0.Makespan+r0.LongestRun)
	n := max(int(math.Ceil(end/PlanWindow)), 1)
	counts := make([]float64, n)
	for _, t := range rec.Arrivals {
		counts[min(int(t/PlanWindow), n-1)]++
	}
	perItem := 1.0
	if r0.Items > 0 {
		perItem = float64(r0.Attempts) / float64(r0.Items)
	}
	load := make([]float64, n)
	for k := range load {
		s := 0.0
		for j := range 10 {
			s += w.MeanService((float64(k) + (float64(j)+0.5)/10) * PlanWindow)
		}
		load[k] = counts[k] / PlanWindow * perItem * s / 10
	}
	staff := func(beta float64) []int {
		plan := make([]int, n)
		for k, a := range load {
			plan[k] = min(max(int(math.Ceil(a+beta*math.Sqrt(a)-1e-9)), 1), w.Capacity)
		}
		return plan
	}
	bl, bh := -2.0, 10.0
	if r := try(staff(bh)); ok(r) {
		note(r, fmt.Sprintf("√-staffing β=%.2f", bh))
		for range 10 {
			mid := (bl + bh) / 2
			if r := try(staff(mid)); ok(r) {
				note(r, fmt.Sprintf("√-staffing β=%.2f", mid))
				bh = mid
			} else {
				bl = mid
			}
		}
	}
	return best
}

// WarmMakespan is a burst's shortest makespan in the simulator: the
// cluster's capacity of warm workers that exist before the burst and start
// nothing, taking items in FIFO order as soon as one is free. No
// controller reaches less (for a burst without failures): none has more
// pods at once, none starts a pod in less than no time, and with the
// order fixed (FIFO) handing every item to the first free worker starts
// every item at its earliest, so ends the last at its earliest.
func WarmMakespan(w Workload, seed uint64) float64 {
	return Run(noStart(w), &Fixed{C: w.Capacity}, seed).Makespan
}
