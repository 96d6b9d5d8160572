package sim_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

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
// (make sim runs the full ones): it pays no more than 1.15× the least a
// Job per attempt can pay; items wait no longer than 2·S beyond the pod's
// start (p95); and against the queue-length controllers, it waits no
// longer than any KEDA strategy at no more cost, costs less than the HPA,
// and finishes a burst sooner than all of them.
func TestItemqAgainstQueueLengthControllers(t *testing.T) {
	ws := sim.Workloads(0.1)
	table := sim.Table(ws, []uint64{1, 2})
	for i, w := range ws {
		byName := map[string]sim.Result{}
		for _, r := range table[i] {
			byName[r.Controller] = r
		}
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

// The burst's miss of the goal (makespan ≤ ideal + S) is not the
// controller's: a warm pool of 100 workers that start nothing, faster than
// any controller, misses it too on seeds 1–3 on average (docs/scaling.md).
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
