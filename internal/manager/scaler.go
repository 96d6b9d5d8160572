package manager

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Scaler keeps the parallelism c of a queue where the work-queue model says
// it is stable: with arrival rate λ (items/s) and mean service time S (s),
// c = clamp(ceil((λ + B/T)·S / ρ), min, max), where ρ is the target
// utilisation, and B/T the extra rate needed to drain a backlog of B
// waiting items within T (without it, a backlog that exists at start-up, or
// builds in a burst, would drain at the arrival rate only). It grows at
// once and shrinks by one step only after c was more than needed for a
// whole ScaleDownDelay (and again after each further delay).
//
// With TargetWait set, c is sized for a wait instead (Erlang C; see the
// field).
//
// λ is a moving average: the arrivals (retries included) of the last Window (default 10 s)
// divided by its length (equivalently, the inverse of the mean inter-arrival
// time over the window); it falls to 0 a Window after arrivals stop. S is an
// exponentially weighted moving average of finished attempts' run times
// (the plain mean of the first 1/Alpha).
type Scaler struct {
	Min, Max       int
	Rho            float64       // target utilisation, (0, 1]
	DrainTime      time.Duration // T
	ScaleDownDelay time.Duration
	// Window of the arrival rate (default 10s, at most 60s).
	Window time.Duration
	// Alpha is the EWMA weight of a new service time (default 0.2).
	Alpha float64
	// GrowByBacklog: before any service time is measured, waiting items
	// add one each to c (c + backlog, within Max) instead of taking c to
	// Max at once. A pool of workers (MANAGER_EXECUTION=pool) sets it: it
	// pays for each of its c workers, busy or idle, and Max of them for a
	// queue's first items would idle until c shrank back, one step per
	// ScaleDownDelay. Its backlog must then leave out the items that
	// workers already starting will take, or c grows by them again at
	// every update. (A Job per item leaves it unset: no Job runs without
	// an item, so Max costs nothing.)
	GrowByBacklog bool
	// TargetWait, when set, sizes c for a wait rather than a utilisation
	// (Rho is then unused for the arrivals): with a = λS, c is the
	// smallest c ≥ ceil(a) for which M/M/c (Poisson arrivals, exponential
	// run times, c workers) predicts P(wait > TargetWait) ≤ 5 %, by
	// Erlang C (erlangWait), plus the backlog's drain ceil(B/T·S) as
	// before. 0 keeps c = ceil((λ + B/T)·S/ρ).
	TargetWait time.Duration

	mu         sync.Mutex
	counts     [64]int   // arrivals per second, by unix second mod 64
	seconds    [64]int64 // the unix second each count is for
	service    float64   // EWMA of service time, seconds
	served     int       // attempts measured
	c          int
	lastNeeded time.Time // the last time c was needed in full
}

// Observation is what the scaler computed, for metrics and logs.
type Observation struct {
	Lambda  float64 // items/s
	S       float64 // seconds
	Backlog int
	C       int
	Changed bool
	Reason  string
}

func (s *Scaler) alpha() float64 {
	if s.Alpha <= 0 || s.Alpha > 1 {
		return 0.2
	}
	return s.Alpha
}

// Arrival records a new item, or an item whose attempt failed and that will
// run again (λ counts attempts, as S does: λ·S is the work offered).
func (s *Scaler) Arrival(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := t.Unix()
	i := sec & 63
	if s.seconds[i] != sec {
		s.seconds[i], s.counts[i] = sec, 0
	}
	s.counts[i]++
}

// Served records the run time of a finished attempt.
func (s *Scaler) Served(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := d.Seconds()
	s.served++
	// The mean of the attempts so far until there are 1/Alpha of them,
	// then the EWMA: an EWMA's first sample would otherwise weigh as much
	// as all that follow for a long while (with the pool's Alpha, the
	// first two hundred attempts).
	w := max(s.alpha(), 1/float64(s.served))
	if s.service == 0 {
		s.service = v
	} else {
		s.service += w * (v - s.service)
	}
}

func (s *Scaler) window() int64 {
	w := int64(s.Window / time.Second)
	if w <= 0 {
		w = 10
	}
	return min(w, 60)
}

// lambda is the arrival rate over the window ending now.
func (s *Scaler) lambda(now time.Time) float64 {
	w := s.window()
	sec := now.Unix()
	n := 0
	for k := int64(0); k < w; k++ {
		i := (sec - k) & 63
		if s.seconds[i] == sec-k {
			n += s.counts[i]
		}
	}
	return float64(n) / float64(w)
}

// Update computes c for the given backlog at time now.
func (s *Scaler) Update(now time.Time, backlog int) Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := max(s.Min, 0), max(s.Max, 1)
	if lo > hi {
		lo = hi
	}
	rho := s.Rho
	if rho <= 0 || rho > 1 {
		rho = 0.9
	}
	lam := s.lambda(now)
	obs := Observation{Lambda: lam, S: s.service, Backlog: backlog}
	var want int
	var reason string
	switch {
	case s.service == 0 && backlog > 0 && s.GrowByBacklog:
		want = max(s.c, lo) + backlog
		reason = fmt.Sprintf("no service time measured yet: c %d + backlog %d", max(s.c, lo), backlog)
	case s.service == 0 && backlog > 0:
		// No run time measured yet: give the backlog everything we have.
		want, reason = hi, "no service time measured yet and items are waiting"
	case s.service == 0:
		want, reason = lo, "idle"
	default:
		drain := 0.0
		if s.DrainTime > 0 {
			drain = float64(backlog) / s.DrainTime.Seconds()
		}
		if s.TargetWait > 0 {
			c := cForWait(lam*s.service, s.TargetWait.Seconds()/s.service, targetWaitTail, hi)
			want = c + int(math.Ceil(drain*s.service-1e-9))
			reason = fmt.Sprintf("Erlang C: c %d for P(wait > %v) ≤ %.2g at λ %.3g/s, S %.3gs; + ceil(backlog %d/%v·S) = %d",
				c, s.TargetWait, targetWaitTail, lam, s.service, backlog, s.DrainTime, want)
			break
		}
		raw := (lam + drain) * s.service / rho
		want = int(math.Ceil(raw - 1e-9))
		reason = fmt.Sprintf("ceil((λ %.3g/s + backlog %d/%v)·S %.3gs / ρ %.2g) = %d", lam, backlog, s.DrainTime, s.service, rho, want)
	}
	if want < lo && s.service > 0 {
		reason += fmt.Sprintf("; raised to the min %d", lo)
	}
	if want > hi {
		reason += fmt.Sprintf("; capped at the max %d", hi)
	}
	want = min(max(want, lo), hi)
	prev := s.c
	switch {
	case prev == 0 || want >= prev:
		s.c = want
		s.lastNeeded = now
	case now.Sub(s.lastNeeded) >= s.ScaleDownDelay:
		// Fewer were enough for a whole delay: shrink one step, then wait
		// another delay before the next.
		s.c = prev - 1
		s.lastNeeded = now
		reason += fmt.Sprintf("; shrinking by one step every %v", s.ScaleDownDelay)
	}
	obs.C = s.c
	obs.Changed = s.c != prev
	obs.Reason = reason
	return obs
}

// targetWaitTail is the chance of a wait beyond Scaler.TargetWait that
// c is sized for.
const targetWaitTail = 0.05

// erlangWait is P(wait > t) in M/M/c with offered load a = λS and t in
// units of S: Erlang C(c, a), the chance that an arrival finds every
// worker busy, times exp(−(c − a)·t), the chance that such an arrival
// still waits after t (the queue drains at cμ − λ = (c − a)/S). 1 when
// c ≤ a (no steady state). Erlang C comes from Erlang B by its
// recursion B(k) = a·B(k−1) / (k + a·B(k−1)), B(0) = 1, which stays
// within float64 for any c: C = c·B / (c − a·(1 − B)).
func erlangWait(c int, a, t float64) float64 {
	if float64(c) <= a {
		return 1
	}
	b := 1.0
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	erlangC := float64(c) * b / (float64(c) - a*(1-b))
	return erlangC * math.Exp(-(float64(c)-a)*t)
}

// cForWait is the smallest c ≥ ceil(a) with erlangWait(c, a, t) ≤ tail,
// at most hi (0 when a is 0: nothing arrives).
func cForWait(a, t, tail float64, hi int) int {
	if a <= 0 {
		return 0
	}
	c := max(int(math.Ceil(a-1e-9)), 1)
	for c < hi && erlangWait(c, a, t) > tail {
		c++
	}
	return c
}

// C is the current parallelism (0 before the first Update).
func (s *Scaler) C() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

// The scaler's tuning for a pool of workers (Config.Pool, MANAGER_EXECUTION=
// pool), where it differs from a Job per item's. A pool pays for every
// worker of c, busy or idle, so c must not ride the noise of its estimates
// — λ over a minute rather than 10 s, S averaged over some two hundred
// attempts (with a weight of 0.2 one long attempt of a heavy-tailed run
// time moved S, and c with it: 0.005 rather than 0.05 cost 6 % less with
// heavy tails in the simulator, and waited less everywhere) — and c shrinks as soon as fewer are needed: a worker a
// second rather than one every 30 s, each idle worker being paid for. The
// simulator (internal/sim, docs/scaling.md) chose them and runs with them.
const (
	PoolWindow         = 60 * time.Second
	PoolAlpha          = 0.005
	PoolScaleDownDelay = time.Second
)

// TargetWaitScaleDownDelay is the pool's scale-down delay with a target
// wait (Config.TargetWait, MANAGER_TARGET_WAIT): a worker fewer every 4 s
// rather than every second — c sized for a short wait moves with the
// noise of λ's estimate, and a worker shrunk on it and started again costs
// a pod's start, items waiting for it meanwhile. Chosen in the simulator
// (docs/scaling.md), which runs with it.
const TargetWaitScaleDownDelay = 4 * time.Second

// newScaler is the scaler of a manager's configuration.
func newScaler(cfg Config) *Scaler {
	s := &Scaler{Min: cfg.MinActive, Max: cfg.MaxActive, Rho: cfg.TargetUtilization,
		DrainTime: cfg.DrainTime, ScaleDownDelay: cfg.ScaleDownDelay}
	if cfg.Pool {
		s.Window, s.Alpha, s.GrowByBacklog = PoolWindow, PoolAlpha, true
	}
	s.TargetWait = cfg.TargetWait
	return s
}
