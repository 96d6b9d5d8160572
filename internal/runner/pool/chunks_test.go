package pool

import (
	"bytes"
	"testing"
)

// Output given back after a failed heartbeat, with more written since, is
// sent next within one heartbeat's bound: a chunk over maxRequest was
// refused (413), given back again, and every later heartbeat failed until
// the lease was lost.
func TestGivenBackOutputFitsAHeartbeat(t *testing.T) {
	var c chunks
	_, _ = c.Write(bytes.Repeat([]byte("a"), maxPending))
	chunk := c.take()
	_, _ = c.Write(bytes.Repeat([]byte("b"), maxPending)) // written while the heartbeat failed
	c.giveBack(chunk)
	if got := c.take(); len(got) > maxRequest {
		t.Fatalf("the next heartbeat carries %d bytes, over the %d a heartbeat may", len(got), maxRequest)
	}
}
