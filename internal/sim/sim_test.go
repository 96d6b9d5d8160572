package sim_test

import (
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/sim"
)

// erlangC is the probability that an arrival waits in M/M/c with offered
// load a = λ/μ.
func erlangC(c int, a float64) float64 {
	sum, term := 0.0, 1.0
	for k := 0; k < c; k++ {
		if k > 0 {
			term *= a / float64(k)
		}
		sum += term
	}
	last := term * a / float64(c) // a^c / c!
	top := last * float64(c) / (float64(c) - a)
	return top / (sum + top)
}

// On M/M/c (Poisson arrivals, exponential service, c workers always up)
// the simulator's mean queueing delay is Erlang C's, within 5 %.
func TestErlangC(t *testing.T) {
	for _, tc := range []struct {
		c      int
		lambda float64
	}{{1, 0.5}, {4, 3.2}, {10, 9}} {
		const s = 1.0
		horizon := 300000 / tc.lambda
		w := sim.Workload{
			Name: "mmc", Horizon: horizon,
			Arrivals:    sim.Poisson(func(float64) float64 { return tc.lambda }, tc.lambda, horizon),
			MeanService: func(float64) float64 { return s },
			Shape:       sim.Exp,
			StartDelay:  func(*rand.Rand) float64 { return 0 },
			MaxAttempts: 1, Capacity: tc.c,
		}
		res := sim.Run(w, &sim.Fixed{C: tc.c}, 1)
		a := tc.lambda * s
		want := erlangC(tc.c, a) / (float64(tc.c)/s - tc.lambda)
		if math.Abs(res.WaitMean-want)/want > 0.05 {
			t.Errorf("M/M/%d at λ=%v: mean wait %.4f s, Erlang C %.4f s", tc.c, tc.lambda, res.WaitMean, want)
		}
		t.Logf("M/M/%d at λ=%v: mean wait %.4f s, Erlang C %.4f s (%d items)", tc.c, tc.lambda, res.WaitMean, want, res.Items)
	}
}

// The same seed gives the same result; another seed another.
func TestDeterministic(t *testing.T) {
	w := sim.Workloads(0.05)[1]
	a := sim.Run(w, sim.NewItemq(100), 7)
	b := sim.Run(w, sim.NewItemq(100), 7)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two runs of seed 7 differ:\n%+v\n%+v", a, b)
	}
	if c := sim.Run(w, sim.NewItemq(100), 8); reflect.DeepEqual(a, c) {
		t.Error("seeds 7 and 8 gave the same run")
	}
}

// What itemq's controller promises, on every workload at a small size
// (make sim runs the full ones). In a Job per item (itemq): it pays no
// more than 1.15× the least a Job per attempt can pay; items wait no
// longer than 2·S beyond the pod's start (p95); it waits no longer than
// any KEDA strategy at no more cost, costs less than the HPA where pods
// start faster than items run, and finishes a burst sooner than every
// autoscaler. And the goal of issue 15, in the execution model a user
// should choose (Recommended): see TestGoal.
func TestItemqAgainstQueueLengthControllers(t *testing.T) {
	ws, table := smallTable(t)
	for i, w := range ws {
		byName := byController(table[i])
		q := byName["itemq"]
		if q.Succeeded+q.Dead != q.Items {
			t.Errorf("%s: itemq finished %d+%d of %d items", w.Name, q.Succeeded, q.Dead, q.Items)
		}
		if q.WorkerSeconds > 1.15*q.BoundSeconds {
			t.Errorf("%s: itemq's worker-seconds %.0f > 1.15 × the bound %.0f", w.Name, q.WorkerSeconds, q.BoundSeconds)
		}
		s := w.MeanService(w.Horizon)
		if startP95 := startP95(w); !w.Burst && q.WaitP95 > 2*s+startP95 {
			t.Errorf("%s: itemq's p95 wait %.1f s > 2·S (%.0f s) + the pods' p95 start (%.1f s)", w.Name, q.WaitP95, 2*s, startP95)
		}
		for _, k := range []string{"keda-default", "keda-accurate", "keda-eager"} {
			o := byName[k]
			if q.WaitP95 > o.WaitP95+0.5 || q.WorkerSeconds > 1.01*o.WorkerSeconds {
				t.Errorf("%s: itemq p95 %.1f s, %.0f worker-s; %s p95 %.1f s, %.0f worker-s", w.Name, q.WaitP95, q.WorkerSeconds, k, o.WaitP95, o.WorkerSeconds)
			}
		}
		if h := byName["hpa"]; q.WorkerSeconds > h.WorkerSeconds && w.MeanStartDelay < s {
			t.Errorf("%s: itemq %.0f worker-s, the HPA %.0f", w.Name, q.WorkerSeconds, h.WorkerSeconds)
		}
		if w.Burst {
			for _, k := range []string{"keda-default", "keda-accurate", "keda-eager", "hpa", "rq-autoscaler"} {
				if q.Makespan > byName[k].Makespan {
					t.Errorf("%s: itemq's makespan %.0f s > %s's %.0f s", w.Name, q.Makespan, k, byName[k].Makespan)
				}
			}
		}
	}
}

// Recommended is what docs/scaling.md tells a user who wants a pod per
// item (KEDA's ScaledJob offer) to choose for a workload: a pool
// (MANAGER_EXECUTION=pool) where pods take longer to start than items take
// to run, or for a burst; a Job per item otherwise. Wait first (an HPA's
// offer) it is the pool with MANAGER_TARGET_WAIT, itemq-pool-tw; cost first
// (KEDA's and the RQ autoscaler's) the lean pool, itemq-pool-lean
// (TestLeanPool).
func Recommended(w sim.Workload) string {
	if w.Burst || w.MeanStartDelay > w.MeanService(0) {
		return "itemq-pool"
	}
	return "itemq"
}

// The goal of issue 15, on every workload, for itemq with the settings a
// user should choose there: Recommended, and the pool with a target wait
// (itemq-pool-tw); the lean pool at full size in TestLeanPool. Each meets
// p95 wait ≤ 2·S (a burst: makespan ≤ the least any controller reaches +
// S) with worker-seconds ≤ 1.15 × the bound of its model (a Job per
// attempt: the run times plus a mean pod start each; a pool: PoolBound,
// the fewest of a planned pool that waits no longer).
//
// Against each queue-length controller, the setting for what that
// controller offers is better on wait (makespan for a burst) or cost
// without being worse on the other: Recommended against each KEDA
// strategy (within half a second and 1 %), itemq-pool-tw against the HPA
// (no longer a wait, fewer worker-seconds). No one setting can beat both
// where a Job per item is recommended, and the test shows why: a pool
// that waits no longer than the HPA costs more than KEDA even when planned
// with the whole trace known (the HPA's PoolBound), and a Job per item
// waits for its pod's start, longer than the HPA's p95. One exception,
// checked as what holds instead: in the burst the pool and KEDA tie on
// cost (the pool's idle workers while the last long items run against
// KEDA's pod start per item: 0.94–1.07 of KEDA's worker-seconds by seed,
// 0.99 over seeds 1–12), so that clause is cost within 7 % with the
// makespan less than half (the lean pool is better on both there).
func TestGoal(t *testing.T) {
	ws, table := smallTable(t)
	for i, w := range ws {
		byName := byController(table[i])
		s := w.MeanService(w.Horizon)
		wait := func(r sim.Result) float64 {
			if w.Burst {
				return r.Makespan
			}
			return r.WaitP95
		}
		for _, name := range []string{Recommended(w), "itemq-pool-tw"} {
			q := byName[name]
			if q.Succeeded+q.Dead != q.Items {
				t.Errorf("%s: %s finished %d+%d of %d items", w.Name, name, q.Succeeded, q.Dead, q.Items)
			}
			switch {
			case w.Burst && q.Makespan > q.WarmMakespan+sim.DefaultS:
				t.Errorf("%s: %s's makespan %.0f s > the least %.0f s + S", w.Name, name, q.Makespan, q.WarmMakespan)
			case !w.Burst && q.WaitP95 > 2*s:
				t.Errorf("%s: %s's p95 wait %.1f s > 2·S = %.0f s", w.Name, name, q.WaitP95, 2*s)
			}
			bound := q.BoundSeconds
			if strings.HasPrefix(name, "itemq-pool") && !w.Burst {
				bound = q.PoolBound
			}
			if q.WorkerSeconds > 1.15*bound {
				t.Errorf("%s: %s's worker-seconds %.0f > 1.15 × its bound %.0f", w.Name, name, q.WorkerSeconds, bound)
			}
			t.Logf("%-16s %-13s p95 %5.2f s  makespan %5.0f s  ÷ bound %.2f  ÷ busy %.2f", w.Name, name, q.WaitP95, q.Makespan, q.WorkerSeconds/bound, q.WorkerSeconds/q.BusySeconds)
		}

		q := byName[Recommended(w)]
		others := []string{"keda-default", "keda-accurate", "keda-eager"}
		if w.Burst {
			others = append(others, "hpa")
		}
		for _, k := range others {
			o := byName[k]
			tie := 1.01
			if w.Burst && strings.HasPrefix(k, "keda-") {
				tie = 1.07
				if q.Makespan > o.Makespan/2 {
					t.Errorf("%s: %s's makespan %.0f s, more than half %s's %.0f s", w.Name, Recommended(w), q.Makespan, k, o.Makespan)
				}
			}
			notWorse := wait(q) <= wait(o)+0.5 && q.WorkerSeconds <= tie*o.WorkerSeconds
			better := wait(q) < wait(o)-0.5 || q.WorkerSeconds < 0.99*o.WorkerSeconds
			if !notWorse || !better {
				t.Errorf("%s: %s wait %.1f s, %.0f worker-s; %s wait %.1f s, %.0f worker-s", w.Name, Recommended(w), wait(q), q.WorkerSeconds, k, wait(o), o.WorkerSeconds)
			}
		}

		tw, h := byName["itemq-pool-tw"], byName["hpa"]
		if wait(tw) > wait(h) || tw.WorkerSeconds >= h.WorkerSeconds {
			t.Errorf("%s: itemq-pool-tw wait %.2f s, %.0f worker-s; the HPA wait %.2f s, %.0f worker-s", w.Name, wait(tw), tw.WorkerSeconds, wait(h), h.WorkerSeconds)
		}
		t.Logf("%-16s itemq-pool-tw against the HPA: wait %.2f s (the HPA %.2f s), worker-s ÷ the HPA's %.3f", w.Name, wait(tw), wait(h), tw.WorkerSeconds/h.WorkerSeconds)

		if Recommended(w) == "itemq" {
			cheapest := math.Inf(1)
			for _, k := range []string{"keda-default", "keda-accurate", "keda-eager"} {
				cheapest = min(cheapest, byName[k].WorkerSeconds)
			}
			if h.PoolBound <= cheapest {
				t.Errorf("%s: a planned pool waits no longer than the HPA (p95 %.2f s) for %.0f worker-s, no more than KEDA's %.0f: one setting could beat both", w.Name, h.WaitP95, h.PoolBound, cheapest)
			}
			if startP95(w) <= h.WaitP95 {
				t.Errorf("%s: the pods' p95 start %.2f s is within the HPA's p95 wait %.2f s", w.Name, startP95(w), h.WaitP95)
			}
		}
	}
}

// smallTable is every workload at a tenth of make sim's size through every
// controller, seeds 1 and 2, computed once for the tests that need it.
func smallTable(t *testing.T) ([]sim.Workload, [][]sim.Result) {
	t.Helper()
	small.once.Do(func() {
		small.ws = sim.Workloads(0.1)
		small.table = sim.Table(small.ws, []uint64{1, 2})
	})
	return small.ws, small.table
}

var small struct {
	once  sync.Once
	ws    []sim.Workload
	table [][]sim.Result
}

func byController(rs []sim.Result) map[string]sim.Result {
	m := map[string]sim.Result{}
	for _, r := range rs {
		m[r.Controller] = r
	}
	return m
}

// A pool worker reports the attempt's run alone as S; a Job per item its
// Job's life, the pod's start included (what the Kubernetes runner
// measures). With every run exactly 10 s and pods that take 50 s to
// start: the pool's S is 10 s, the Job's 60 s.
func TestPoolServiceIsTheRunAlone(t *testing.T) {
	w := sim.Workloads(0.02)[1]
	w.Shape = func(*rand.Rand) float64 { return 1 }
	w.StartDelay = func(*rand.Rand) float64 { return 50 }
	w.MeanStartDelay = 50
	w.FailRate = 0
	for _, tc := range []struct {
		c    *sim.Itemq
		want float64
	}{{sim.NewItemqPool(w.Capacity), 10}, {sim.NewItemq(w.Capacity), 60}} {
		r := sim.Run(w, tc.c, 1)
		if r.Attempts == 0 {
			t.Fatal("no attempts")
		}
		if got := tc.c.S.Update(time.Unix(2_000_000_000, 0), 0).S; math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%s: S = %.3f s, want %.0f s", tc.c.Name(), got, tc.want)
		}
	}
}

// The bounds are what they say: on every workload the planned pool
// reaches the wait it is asked for, pays no less than the run times, and
// a burst's least makespan is no more than any controller's.
func TestBounds(t *testing.T) {
	ws, table := smallTable(t)
	for i, w := range ws {
		for _, r := range table[i] {
			if w.Burst && r.Makespan < r.WarmMakespan-1e-6 {
				t.Errorf("%s: %s's makespan %.1f s < the least %.1f s", w.Name, r.Controller, r.Makespan, r.WarmMakespan)
			}
			if r.PoolBound > 0 && r.PoolBound < r.BusySeconds {
				t.Errorf("%s: %s's pool bound %.0f < the run times %.0f", w.Name, r.Controller, r.PoolBound, r.BusySeconds)
			}
		}
		if w.Burst {
			continue
		}
		b := sim.PoolBound(w, 1, 5)
		if !b.Reached || b.WaitP95 > 5 {
			t.Errorf("%s: the pool bound for a p95 of 5 s waits %.1f s (reached %v, %s)", w.Name, b.WaitP95, b.Reached, b.Plan)
		}
	}
}

// startP95 is the 95th percentile of a workload's pod start delays, from
// 10,000 draws.
func startP95(w sim.Workload) float64 {
	r := rand.New(rand.NewPCG(1, 2))
	d := make([]float64, 10000)
	for i := range d {
		d[i] = w.StartDelay(r)
	}
	slices.Sort(d)
	return d[9500]
}

// Fair dispatch in the simulator: a tenant's burst cannot starve another
// tenant that sends one item a second (its p95 wait stays within 2·S plus
// the pods' start), where FIFO makes it wait for the burst; urgent items
// go before a burst of low ones, and ageing lets every low one run. At a
// small size (make sim runs a burst of 10,000).
func TestFairDispatch(t *testing.T) {
	for _, p := range sim.FairWorkloads(0.2) {
		fair, fifo := sim.Run(p[0], sim.NewItemq(p[0].Capacity), 1), sim.Run(p[1], sim.NewItemq(p[1].Capacity), 1)
		limit := 2*sim.DefaultS + startP95(p[0])
		var small string
		for name := range fair.Streams {
			if name != "a (burst)" && name != "low (burst)" {
				small = name
			}
		}
		f, o := fair.Streams[small], fifo.Streams[small]
		if f.Items == 0 || f.Items != o.Items {
			t.Fatalf("%s: stream %q has %d items fair, %d FIFO", p[0].Name, small, f.Items, o.Items)
		}
		if f.WaitP95 > limit {
			t.Errorf("%s: %s waits %.1f s (p95) in the fair order, want ≤ 2·S + start p95 = %.1f s", p[0].Name, small, f.WaitP95, limit)
		}
		if o.WaitP95 <= limit {
			t.Errorf("%s: %s waits only %.1f s (p95) in FIFO: the workload shows nothing", p[0].Name, small, o.WaitP95)
		}
		if fair.Succeeded+fair.Dead != fair.Items {
			t.Errorf("%s: %d+%d of %d items finished in the fair order", p[0].Name, fair.Succeeded, fair.Dead, fair.Items)
		}
		// Fairness moves waits between streams, not work: the burst ends
		// about when it would.
		if fair.Makespan > 1.05*fifo.Makespan {
			t.Errorf("%s: makespan %.0f s fair, %.0f s FIFO", p[0].Name, fair.Makespan, fifo.Makespan)
		}
	}
}

// The even spread of a burst's starts and runs (IdealMakespan) is beyond
// every controller: a warm pool of 100 workers that start nothing, faster
// than any controller, misses it + S on seeds 1–3 on average
// (docs/scaling.md). The burst's goal is measured from that pool's
// makespan instead (WarmMakespan).
func TestBurstGoalBeyondEveryController(t *testing.T) {
	var w sim.Workload
	for _, x := range sim.Workloads(0.1) {
		if x.Name == "burst-1000" {
			w = x
		}
	}
	w.StartDelay = func(*rand.Rand) float64 { return 0 }
	var pool, ideal float64
	for seed := uint64(1); seed <= 3; seed++ {
		r := sim.Run(w, &sim.Fixed{C: w.Capacity}, seed)
		pool += r.Makespan / 3
		ideal += sim.IdealMakespan(w, r) / 3
	}
	if pool <= ideal+sim.DefaultS {
		t.Errorf("a warm pool's burst makespan %.0f s meets ideal + S = %.0f s: the goal is within reach, docs/scaling.md is wrong", pool, ideal+sim.DefaultS)
	}
	t.Logf("warm pool of %d: makespan %.0f s, ideal + S %.0f s", w.Capacity, pool, ideal+sim.DefaultS)
}

// leanRuns is itemq-pool-lean and the controllers it is held against at
// make sim's size, averaged over seeds 1–3 (the figures of
// docs/scaling.md), by workload then controller name, computed once: at
// make test's tenth the RQ autoscaler never reaches its steady state (it
// takes 20 minutes to reach 10 workers) and the lean pool's minute of
// backlog is a large part of the run. About three seconds of CPU.
func leanRuns(t *testing.T) ([]sim.Workload, []map[string]sim.Result) {
	t.Helper()
	lean.once.Do(func() {
		lean.ws = sim.Workloads(1)
		table := sim.TableOf(lean.ws, []uint64{1, 2, 3}, func(w sim.Workload) []sim.Controller {
			return []sim.Controller{sim.NewItemqPoolLean(w.Capacity), &sim.RQ{Max: w.Capacity, Every: 120},
				&sim.KEDA{Strategy: "default", Max: w.Capacity, Poll: 30},
				&sim.KEDA{Strategy: "accurate", Max: w.Capacity, Poll: 30},
				&sim.KEDA{Strategy: "eager", Max: w.Capacity, Poll: 30}}
		}, false)
		for _, rs := range table {
			lean.byName = append(lean.byName, byController(rs))
		}
	})
	return lean.ws, lean.byName
}

var lean struct {
	once   sync.Once
	ws     []sim.Workload
	byName []map[string]sim.Result
}

// The third offer, cost first in a pool (itemq-pool-lean: ρ 1, a backlog
// drained within a minute), at make sim's size: on every workload its p95
// wait is within 2·S (the burst: its makespan within the least + S), and
// it is better than every KEDA strategy on both wait and cost; and than
// the RQ autoscaler, the cheapest of the controllers people run, on every
// workload but the burst: worker-seconds at most the RQ autoscaler's
// (within the 1 % tie) with a p95 within 2·S where the RQ autoscaler's is
// minutes. In the burst the RQ autoscaler, a worker more every 2 minutes,
// pays for almost nothing idle (1.03 × the busy seconds) and ends ten
// times later; with the cluster's 100 pods the lean pool ends it in a
// fifth of the time for at most 10 % more (100 pods started, and idle
// while the last long items run), and capped at 20 workers
// (MANAGER_MAX_ACTIVE) it is better on both.
func TestLeanPool(t *testing.T) {
	ws, byName := leanRuns(t)
	for i, w := range ws {
		b := byName[i]
		q, rq := b["itemq-pool-lean"], b["rq-autoscaler"]
		for _, r := range b {
			if r.Succeeded+r.Dead != r.Items {
				t.Errorf("%s: %s finished %d+%d of %d items", w.Name, r.Controller, r.Succeeded, r.Dead, r.Items)
			}
		}
		s := w.MeanService(w.Horizon)
		wait := func(r sim.Result) float64 {
			if w.Burst {
				return r.Makespan
			}
			return r.WaitP95
		}
		switch {
		case w.Burst && q.Makespan > q.WarmMakespan+sim.DefaultS:
			t.Errorf("%s: makespan %.0f s > the least %.0f s + S", w.Name, q.Makespan, q.WarmMakespan)
		case !w.Burst && q.WaitP95 > 2*s:
			t.Errorf("%s: p95 wait %.1f s > 2·S = %.0f s", w.Name, q.WaitP95, 2*s)
		}
		for _, k := range []string{"keda-default", "keda-accurate", "keda-eager"} {
			if o := b[k]; wait(q) >= wait(o) || q.WorkerSeconds >= o.WorkerSeconds {
				t.Errorf("%s: wait %.1f s, %.0f worker-s; %s wait %.1f s, %.0f worker-s", w.Name, wait(q), q.WorkerSeconds, k, wait(o), o.WorkerSeconds)
			}
		}
		cost := q.WorkerSeconds / rq.WorkerSeconds
		if w.Burst {
			if q.Makespan > rq.Makespan/5 || cost > 1.10 {
				t.Errorf("%s: makespan %.0f s, %.3f × the RQ autoscaler's worker-seconds; its makespan %.0f s", w.Name, q.Makespan, cost, rq.Makespan)
			}
			// Capped at 20 workers (MANAGER_MAX_ACTIVE=20, twice the
			// steady workloads' mean load), better on both.
			var capped sim.Result
			for _, seed := range []uint64{1, 2, 3} {
				r := sim.Run(w, sim.NewItemqPoolLean(20), seed)
				capped.Makespan += r.Makespan / 3
				capped.WorkerSeconds += r.WorkerSeconds / 3
			}
			if capped.Makespan >= rq.Makespan || capped.WorkerSeconds >= rq.WorkerSeconds {
				t.Errorf("%s: capped at 20, makespan %.0f s, %.0f worker-s; the RQ autoscaler %.0f s, %.0f worker-s", w.Name, capped.Makespan, capped.WorkerSeconds, rq.Makespan, rq.WorkerSeconds)
			}
			t.Logf("%-16s capped at 20: makespan %.0f s (RQ %.0f s), worker-s ÷ RQ's %.3f", w.Name, capped.Makespan, rq.Makespan, capped.WorkerSeconds/rq.WorkerSeconds)
		} else if q.WaitP95 >= rq.WaitP95 || cost > 1.01 {
			t.Errorf("%s: p95 %.1f s, %.3f × the RQ autoscaler's worker-seconds; its p95 %.0f s", w.Name, q.WaitP95, cost, rq.WaitP95)
		}
		t.Logf("%-16s wait %6.1f s (KEDA %5.1f s, RQ %6.0f s)  worker-s ÷ KEDA's %.3f, ÷ RQ's %.3f", w.Name, wait(q), wait(b["keda-default"]), wait(rq), q.WorkerSeconds/b["keda-default"].WorkerSeconds, cost)
	}
}

// The lean pool's worker-seconds are within 1.15 × its bound, the planned
// pool that waits no longer, at make sim's size (the goal's second
// clause). The search for the planned pools takes a minute at this size:
// make sim runs it (ITEMQ_SIM_FULL=1), make test does not.
func TestLeanPoolBound(t *testing.T) {
	if os.Getenv("ITEMQ_SIM_FULL") == "" {
		t.Skip("ITEMQ_SIM_FULL=1 (make sim) runs it: a minute of planned pools at full size")
	}
	for _, w := range sim.Workloads(1) {
		if w.Burst {
			continue // the burst's clause is its makespan (TestLeanPool)
		}
		var ws, bound float64
		for _, seed := range []uint64{1, 2, 3} {
			r := sim.Run(w, sim.NewItemqPoolLean(w.Capacity), seed)
			ws += r.WorkerSeconds
			bound += sim.PoolBound(w, seed, r.WaitP95).WorkerSeconds
		}
		if ws > 1.15*bound {
			t.Errorf("%s: %.0f worker-s > 1.15 × the pool bound %.0f", w.Name, ws/3, bound/3)
		}
		t.Logf("%-16s worker-s ÷ the pool bound %.2f", w.Name, ws/bound)
	}
}

// No controller runs more pods at once than the cluster's capacity: a pool
// that scaled down while workers drained their last item and then up
// again ran 104 pods on 100 in the burst (itemq-pool-lean), the draining
// ones not counted against the capacity.
func TestPodsWithinCapacity(t *testing.T) {
	ws, table := smallTable(t)
	for i, w := range ws {
		for _, r := range table[i] {
			if r.MaxPods > w.Capacity {
				t.Errorf("%s: %s ran %d pods at once, capacity %d", w.Name, r.Controller, r.MaxPods, w.Capacity)
			}
		}
	}
}
