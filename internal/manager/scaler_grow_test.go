package manager

import (
	"testing"
	"time"
)

// GrowByBacklog (a pool): before any service time is measured, waiting
// items add one each to c rather than taking it to Max; once S is known
// the model decides as without it.
func TestScalerGrowByBacklog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := &Scaler{Min: 1, Max: 100, Rho: 0.9, DrainTime: 5 * time.Second, ScaleDownDelay: 30 * time.Second, GrowByBacklog: true}
	if o := s.Update(t0, 0); o.C != 1 {
		t.Fatalf("idle: c = %d, want min 1", o.C)
	}
	if o := s.Update(t0.Add(time.Second), 3); o.C != 4 {
		t.Fatalf("3 waiting before any S: c = %d, want 1 + 3 = 4", o.C)
	}
	if o := s.Update(t0.Add(2*time.Second), 0); o.C != 4 {
		t.Fatalf("nothing waiting: c = %d, want it kept at 4 until a delay passes", o.C)
	}
	if o := s.Update(t0.Add(3*time.Second), 2); o.C != 6 {
		t.Fatalf("2 more waiting: c = %d, want 4 + 2 = 6", o.C)
	}
	// λ = 1/s, S = 3 s, a backlog of 10 within 5 s: (1 + 2)·3/0.9 = 10,
	// as without the setting.
	for i := 0; i < 10; i++ {
		s.Arrival(t0.Add(time.Duration(i) * time.Second))
	}
	s.Served(3 * time.Second)
	if o := s.Update(t0.Add(9*time.Second), 10); o.C != 10 {
		t.Fatalf("S known: c = %d (%s), want 10", o.C, o.Reason)
	}
	// Without it, a backlog before any S takes c to Max (a Job per item).
	j := &Scaler{Min: 1, Max: 100, Rho: 0.9}
	j.Update(t0, 0)
	if o := j.Update(t0.Add(time.Second), 3); o.C != 100 {
		t.Fatalf("a Job per item: c = %d, want max 100", o.C)
	}
}
