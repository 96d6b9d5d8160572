package manager

import (
	"math"
	"strings"
	"testing"
	"time"
)

// Erlang C against values computed by hand from its closed form,
// C(c, a) = (aᶜ/c!)·c/(c−a) / (Σ_{k<c} aᵏ/k! + (aᶜ/c!)·c/(c−a)): at a = 8,
// C(10, 8) = 0.40918, C(11, 8) = 0.24496, C(12, 8) = 0.13984.
func TestErlangWait(t *testing.T) {
	for _, tc := range []struct {
		c       int
		a, t, p float64
	}{
		{10, 8, 0, 0.409180},
		{11, 8, 0, 0.244958},
		{11, 8, 0.5, 0.054658}, // 0.24496·e^−1.5
		{12, 8, 0.5, 0.018926}, // 0.13984·e^−2
		{8, 8, 0.5, 1},         // c ≤ a: no steady state
	} {
		if got := erlangWait(tc.c, tc.a, tc.t); math.Abs(got-tc.p) > 1e-5 {
			t.Errorf("P(wait > %v·S) in M/M/%d at a = %v: %.6f, want %.6f", tc.t, tc.c, tc.a, got, tc.p)
		}
	}
}

// With TargetWait, c is the smallest with P(wait > TargetWait) ≤ 5 %:
// λ = 0.8/s and S = 10 s (a = 8) with a target of 5 s give 12 (11 waits
// beyond 5 s with a chance of 5.5 %, 12 of 1.9 %), where ρ 0.9 gives
// ceil(8/0.9) = 9; a backlog adds its drain, ceil(B/T·S).
func TestScalerTargetWait(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := &Scaler{Min: 1, Max: 100, Rho: 0.9, DrainTime: 5 * time.Second, Window: 60 * time.Second}
	for i := 0; i < 48; i++ { // 48 arrivals in the last 60 s: λ = 0.8/s
		s.Arrival(t0.Add(time.Duration(100+i) * time.Second))
	}
	s.Served(10 * time.Second)
	now := t0.Add(159 * time.Second)
	if o := s.Update(now, 0); o.C != 9 {
		t.Fatalf("without a target wait: c = %d, want 9 (λ %.3g, S %.3g)", o.C, o.Lambda, o.S)
	}
	s.TargetWait = 5 * time.Second
	if o := s.Update(now, 0); o.C != 12 {
		t.Fatalf("target wait 5 s: c = %d, want 12 (%s)", o.C, o.Reason)
	}
	// A backlog of 2 to drain within 5 s: + ceil(2/5·10) = 4.
	if o := s.Update(now, 2); o.C != 16 {
		t.Fatalf("target wait 5 s and a backlog of 2: c = %d, want 16 (%s)", o.C, o.Reason)
	}
	s.TargetWait = time.Second // 12 waits beyond 1 s with 9.4 %, 13 with 4.6 %
	s.c = 0
	if o := s.Update(now, 0); o.C != 13 {
		t.Fatalf("target wait 1 s: c = %d, want 13 (%s)", o.C, o.Reason)
	}
}

// S is the mean of the attempts so far until there are 1/Alpha of them,
// then the EWMA (before, the EWMA from the first: with the pool's Alpha
// the first attempt weighed as much as the next two hundred).
func TestScalerMeanFirst(t *testing.T) {
	s := &Scaler{Alpha: 0.01}
	s.Served(10 * time.Second)
	s.Served(20 * time.Second)
	if got := s.Update(time.Unix(0, 0), 0).S; math.Abs(got-15) > 1e-9 {
		t.Errorf("S = %v after 10 s and 20 s, want their mean 15", got)
	}
	for range 98 {
		s.Served(15 * time.Second)
	}
	s.Served(115 * time.Second) // the 101st: the EWMA, weight 0.01
	if got := s.Update(time.Unix(0, 0), 0).S; math.Abs(got-16) > 1e-9 {
		t.Errorf("S = %v after 100 attempts of mean 15 s and one of 115 s, want 15 + 0.01·100 = 16", got)
	}
}

// The reason says when c is held at a bound: GET /v1/scaling showed
// "… = 6" beside a c of 2.
func TestScalerReasonNamesTheBound(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := &Scaler{Min: 1, Max: 2, DrainTime: 5 * time.Second}
	s.Served(time.Second)
	if o := s.Update(t0, 18); o.C != 2 || !strings.HasSuffix(o.Reason, "= 4; capped at the max 2") {
		t.Errorf("c %d, reason %q", o.C, o.Reason)
	}
	s = &Scaler{Min: 3, Max: 10}
	s.Served(time.Second)
	if o := s.Update(t0, 0); o.C != 3 || !strings.HasSuffix(o.Reason, "= 0; raised to the min 3") {
		t.Errorf("c %d, reason %q", o.C, o.Reason)
	}
}
