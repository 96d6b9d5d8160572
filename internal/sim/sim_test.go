package sim_test

import (
	"math"
	"math/rand/v2"
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

// Recommended is what docs/scaling.md tells a user to choose for a
// workload when cost comes first (against KEDA's ScaledJob, a Job per
// message): a pool (MANAGER_EXECUTION=pool) where pods take longer to start
// than items take to run, or for a burst; a Job per item otherwise. When
// the wait comes first (against an HPA's pool of workers), the pool with
// MANAGER_TARGET_WAIT: itemq-pool-tw.
func Recommended(w sim.Workload) string {
	if w.Burst || w.MeanStartDelay > w.MeanService(0) {
		return "itemq-pool"
	}
	return "itemq"
}

// The goal of issue 15, on every workload, for itemq with the settings a
// user should choose there: Recommended when cost comes first, and the
// pool with a target wait (itemq-pool-tw) when the wait does. Each of the
// two meets p95 wait ≤ 2·S (a burst: makespan ≤ the least any controller
// reaches + S) with worker-seconds ≤ 1.15 × the bound of its model (a Job
// per attempt: the run times plus a mean pod start each; a pool:
// PoolBound, the fewest of a planned pool that waits no longer).
//
// Against each queue-length controller, the choice for what that
// controller's users want is better on wait (makespan for a burst) or
// cost without being worse on the other: Recommended against each KEDA
// strategy (within half a second and 1 %), itemq-pool-tw against the HPA
// (no longer a wait, fewer worker-seconds). No one setting can do both
// where a Job per item is recommended, and the test shows why: a pool
// that waits no longer than the HPA costs more than KEDA even when planned
// with the whole trace known (the HPA's PoolBound), and a Job per item
// waits for its pod's start, longer than the HPA's p95. One exception,
// checked as what holds instead: in the burst the pool and KEDA tie on
// cost (the pool's idle workers while the last long items run against
// KEDA's pod start per item: 0.94–1.07 of KEDA's worker-seconds by seed,
// 0.99 over seeds 1–12), so that clause is cost within 7 % with the
// makespan less than half. The RQ autoscaler is cheaper than all (it runs
// its workers nearly full, below the least a Job per attempt pays) with
// waits of minutes: no controller that meets the wait clause matches its
// cost, and none is checked against it but on the burst's makespan
// (TestItemqAgainstQueueLengthControllers).
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
