package manager

import (
	"testing"
	"time"
)

func TestScalerFollowsTheModel(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := &Scaler{Min: 1, Max: 20, Rho: 0.9, DrainTime: time.Second, ScaleDownDelay: 10 * time.Second}
	if o := s.Update(t0, 0); o.C != 1 {
		t.Fatalf("idle: c = %d, want min 1", o.C)
	}
	if o := s.Update(t0, 5); o.C != 20 {
		t.Fatalf("backlog before any S is known: c = %d, want max 20", o.C)
	}
	// Arrivals every 0.5 s (λ = 2/s), S = 3 s: λS/ρ = 6.67 → 7.
	for i := 0; i < 50; i++ {
		s.Arrival(t0.Add(time.Duration(i) * 500 * time.Millisecond))
		s.Served(3 * time.Second)
	}
	now := t0.Add(49 * 500 * time.Millisecond)
	// A big backlog grows c to the max at once; shrinking then goes one
	// step per ScaleDownDelay.
	if o := s.Update(now, 1000); o.C != 20 {
		t.Fatalf("backlog of 1000: c = %d, want 20", o.C)
	}
	o := s.Update(now.Add(5*time.Second), 0)
	if o.C != 20 {
		t.Fatalf("shrank before the delay: %d", o.C)
	}
	o = s.Update(now.Add(11*time.Second), 0)
	if o.C != 19 || !o.Changed {
		t.Fatalf("after the delay: c = %d (changed %v), want 19", o.C, o.Changed)
	}
	// λ decays when arrivals stop: long after the last one, c goes to min.
	late := now.Add(time.Hour)
	for i := 0; i < 30; i++ {
		late = late.Add(11 * time.Second)
		o = s.Update(late, 0)
	}
	if o.C != 1 {
		t.Fatalf("c = %d after an hour without arrivals, want 1", o.C)
	}
	// A burst grows c at once.
	for i := 0; i < 20; i++ {
		s.Arrival(late.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	o = s.Update(late.Add(2*time.Second), 0)
	if o.C < 7 {
		t.Fatalf("burst of 10/s with S=3s: c = %d, want ≥ 7", o.C)
	}
}

func TestScalerModelValue(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := &Scaler{Min: 0, Max: 100, Rho: 0.5}
	for i := 0; i <= 100; i++ {
		s.Arrival(t0.Add(time.Duration(i) * time.Second)) // λ = 1/s
	}
	s.Served(4 * time.Second) // S = 4 s
	// λS/ρ = 1·4/0.5 = 8.
	if o := s.Update(t0.Add(100*time.Second), 0); o.C != 8 {
		t.Fatalf("c = %d, want 8 (λ %.3g, S %.3g)", o.C, o.Lambda, o.S)
	}
	// A backlog of 10 to drain within 5 s adds 2/s: (1+2)·4/0.5 = 24.
	s.DrainTime = 5 * time.Second
	if o := s.Update(t0.Add(100*time.Second), 10); o.C != 24 {
		t.Fatalf("with backlog: c = %d, want 24", o.C)
	}
}
