package sim

import (
	"math"
	"math/rand/v2"
)

// Defaults of the workloads: S, the reference parallelism the
// utilisations are of, the cluster's capacity, a pod's start delay.
const (
	DefaultS        = 10.0 // seconds
	RefC            = 10   // λ = ρ·RefC/S
	DefaultCapacity = 100
	minStart        = 1.0
	maxStart        = 5.0
)

// Exp draws an exponential time of mean 1.
func Exp(r *rand.Rand) float64 { return r.ExpFloat64() }

// Lognormal returns a draw of mean 1 with the given σ.
func Lognormal(sigma float64) func(*rand.Rand) float64 {
	mu := -sigma * sigma / 2
	return func(r *rand.Rand) float64 { return math.Exp(mu + sigma*r.NormFloat64()) }
}

// Pareto returns a draw of mean 1 with tail index α (> 1).
func Pareto(alpha float64) func(*rand.Rand) float64 {
	xm := (alpha - 1) / alpha
	return func(r *rand.Rand) float64 { return xm / math.Pow(1-r.Float64(), 1/alpha) }
}

// Uniform returns draws in [lo, hi).
func Uniform(lo, hi float64) func(*rand.Rand) float64 {
	return func(r *rand.Rand) float64 { return lo + (hi-lo)*r.Float64() }
}

// Poisson returns arrivals at rate λ(t) (per second) until horizon, by
// thinning at the rate's maximum lmax.
func Poisson(rate func(t float64) float64, lmax, horizon float64) func(*rand.Rand) []float64 {
	return func(r *rand.Rand) []float64 {
		var out []float64
		for t := r.ExpFloat64() / lmax; t < horizon; t += r.ExpFloat64() / lmax {
			if r.Float64()*lmax < rate(t) {
				out = append(out, t)
			}
		}
		return out
	}
}

func constant(v float64) func(float64) float64 { return func(float64) float64 { return v } }

// base is a Poisson workload at utilisation rho of RefC workers, with
// exponential service times of mean S and pod starts of 1–5 s.
func base(name string, rho, horizon float64) Workload {
	lambda := rho * RefC / DefaultS
	return Workload{
		Name: name, Horizon: horizon,
		Arrivals:       Poisson(constant(lambda), lambda, horizon),
		MeanService:    constant(DefaultS),
		Shape:          Exp,
		StartDelay:     Uniform(minStart, maxStart),
		MeanStartDelay: (minStart + maxStart) / 2,
		MaxAttempts:    3, RetryBackoff: 1,
		Capacity: DefaultCapacity,
	}
}

// Workloads returns the workloads; size scales their length (1:
// the full runs of make sim, hours of arrivals and a day of the diurnal
// ramp; make test runs a fraction).
func Workloads(size float64) []Workload {
	h := 4 * 3600 * size // hours of Poisson arrivals
	var ws []Workload
	for _, rho := range []float64{0.5, 0.8, 0.95} {
		ws = append(ws, base(fmtRho(rho), rho, h))
	}
	burst := base("burst-1000", 0, 0)
	burst.Arrivals = func(*rand.Rand) []float64 { return make([]float64, 1000) }
	burst.Burst = true
	ws = append(ws, burst)

	day := 86400 * size
	peak := 1.0 * RefC / DefaultS // ρ = 1 of RefC at the peak, 0.1 at night
	diurnal := base("diurnal-10x", 0, day)
	diurnal.Arrivals = Poisson(func(t float64) float64 {
		return peak * (0.1 + 0.9*(1-math.Cos(2*math.Pi*t/day))/2)
	}, peak, day)
	ws = append(ws, diurnal)

	logn := base("lognormal-1.5", 0.8, h)
	logn.Shape = Lognormal(1.5)
	ws = append(ws, logn)
	par := base("pareto-1.5", 0.8, h)
	par.Shape = Pareto(1.5)
	ws = append(ws, par)

	step := base("step-S-x2", 0.5, h)
	step.MeanService = func(t float64) float64 {
		if t < h/2 {
			return DefaultS
		}
		return 2 * DefaultS // a slower script deployed: ρ 0.5 → 1.0 of RefC
	}
	ws = append(ws, step)

	slow := base("pod-start-1-30s", 0.8, h)
	slow.StartDelay, slow.MeanStartDelay = Uniform(1, 30), 15.5
	ws = append(ws, slow)

	fail := base("fail-10pct", 0.8, h)
	fail.FailRate = 0.1
	ws = append(ws, fail)
	return ws
}

func fmtRho(rho float64) string {
	switch rho {
	case 0.5:
		return "poisson-0.5"
	case 0.8:
		return "poisson-0.8"
	default:
		return "poisson-0.95"
	}
}

// Controllers returns every controller of the comparison, fresh (they keep
// state), for the workload's cluster (its capacity; its pods' mean start
// for itemq-pool-tw's scale-down delay, as a user would set it).
func Controllers(w Workload) []Controller {
	capacity := w.Capacity
	return []Controller{
		NewItemq(capacity),
		NewItemqPool(capacity),
		NewItemqPoolTargetWait(capacity, TargetWait, ScaleDownDelay(w.MeanStartDelay)),
		NewItemqPoolLean(capacity),
		NewItemqPoolJobDefaults(capacity),
		&KEDA{Strategy: "default", Max: capacity, Poll: 30},
		&KEDA{Strategy: "accurate", Max: capacity, Poll: 30},
		&KEDA{Strategy: "eager", Max: capacity, Poll: 30},
		&HPA{Min: 1, Max: capacity, Target: 1, Sync: 15, Window: 300},
		&RQ{Max: capacity, Every: 120},
		&Fixed{C: 5}, &Fixed{C: 10}, &Fixed{C: 20},
	}
}
