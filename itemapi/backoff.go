package itemapi

import (
	"math/rand/v2"
	"time"
)

// Backoff is the one exponential backoff with jitter that itemq's clients,
// runners and manager use: the n-th wait (n from 0) is Min·2ⁿ capped at
// Max, drawn at random from its upper half ("equal jitter"), so that many
// waiters do not retry in step and none retries at once.
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the wait before retry number n+1.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	maxD := max(b.Max, d)
	for i := 0; i < n && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	return d/2 + rand.N(d/2+1)
}
