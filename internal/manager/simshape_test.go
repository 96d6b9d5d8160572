package manager_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner/local"
	"github.com/itemq/itemq/internal/sim"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// sleeper is a Launcher whose attempts take a fixed time; it records how
// many run at once.
type sleeper struct {
	d        time.Duration
	mu       sync.Mutex
	now, top int
}

func (s *sleeper) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	s.mu.Lock()
	s.now++
	s.top = max(s.top, s.now)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	select {
	case <-time.After(s.d):
		return 0, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// The simulator is tied to the product: a burst of 200 items of 0.3 s
// through the real manager (local runner, the default control loop,
// MANAGER_MAX_ACTIVE=20) has the shape the simulator predicts for the same
// workload — the parallelism goes to its maximum at once, and the burst
// ends within the stated tolerance of the simulated makespan: no sooner
// than 0.9× (the simulator has no overheads) and no later than 1.5× + 1 s
// (process and scheduling overheads on a loaded machine).
func TestBurstHasTheSimulatorsShape(t *testing.T) {
	const n, maxActive, service = 200, 20, 0.3
	w := sim.Workload{
		Name:        "burst-200",
		Arrivals:    func(*rand.Rand) []float64 { return make([]float64, n) },
		MeanService: func(float64) float64 { return service },
		Shape:       func(*rand.Rand) float64 { return 1 },
		StartDelay:  func(*rand.Rand) float64 { return 0 },
		MaxAttempts: 1, Capacity: maxActive, Burst: true,
	}
	want := sim.Run(w, sim.NewItemq(maxActive), 1)

	mem := memsource.New()
	items := names("b", n)
	put(t, mem, items...)
	l := &sleeper{d: time.Duration(service * float64(time.Second))}
	begin := time.Now()
	start(t, mem, t.TempDir(), l, func(c *manager.Config, _ *local.Config) { c.MaxActive, c.MinActive = maxActive, 1 })
	waitOutcomes(t, mem, items, itemapi.Succeeded)
	got := time.Since(begin).Seconds()

	t.Logf("makespan: the manager %.2f s, the simulator %.2f s; most at once: %d and %d", got, want.Makespan, l.top, want.MaxPods)
	if l.top != want.MaxPods {
		t.Errorf("most attempts at once: %d, the simulator says %d", l.top, want.MaxPods)
	}
	if got < 0.9*want.Makespan || got > 1.5*want.Makespan+1 {
		t.Errorf("makespan %.2f s, the simulator's %.2f s: outside [0.9×, 1.5× + 1 s]", got, want.Makespan)
	}
}
