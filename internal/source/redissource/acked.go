package redissource

import "sync"

// ackLog remembers the stream entries acknowledged while a read is in
// flight. An XREADGROUP of this consumer's history or an XAUTOCLAIM answers
// with entries that were pending when Redis ran it; one of them may have
// been acknowledged (through this driver) before the answer is admitted,
// and admitting it again would serve an acknowledged entry a second time.
// An entry id never becomes pending again once acknowledged (a redrive
// adds a new one), so such an answer is stale and is dropped.
//
// Only acknowledgements made after the oldest read in flight began are
// kept, so the log is bounded by the acknowledgements of one read's
// duration.
type ackLog struct {
	mu    sync.Mutex
	seq   uint64
	reads map[uint64]int    // reads in flight by the seq at their start
	acked map[string]uint64 // entry name → the seq of its acknowledgement
	order []ackRecord       // acked in seq order, for pruning
}

type ackRecord struct {
	name string
	seq  uint64
}

func newAckLog() *ackLog {
	return &ackLog{reads: map[uint64]int{}, acked: map[string]uint64{}}
}

// begin marks the start of a read; pass what it returns to stale and end.
func (l *ackLog) begin() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads[l.seq]++
	return l.seq
}

// end marks the end of the read that began at start.
func (l *ackLog) end(start uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reads[start]--; l.reads[start] <= 0 {
		delete(l.reads, start)
	}
	oldest := l.seq + 1
	for s := range l.reads {
		oldest = min(oldest, s)
	}
	// Drop what no read in flight can still need (acknowledged at or
	// before the start of the oldest one).
	i := 0
	for ; i < len(l.order) && l.order[i].seq <= oldest; i++ {
		if l.acked[l.order[i].name] == l.order[i].seq {
			delete(l.acked, l.order[i].name)
		}
	}
	l.order = l.order[i:]
	if len(l.order) == 0 {
		l.order = nil
	}
}

// record notes that the entry name was acknowledged (or dead-lettered).
func (l *ackLog) record(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if len(l.reads) == 0 {
		return // no read in flight can hold it
	}
	l.acked[name] = l.seq
	l.order = append(l.order, ackRecord{name, l.seq})
}

// stale reports whether name was acknowledged after the read that began at
// start was sent.
func (l *ackLog) stale(name string, start uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.acked[name]
	return ok && s > start
}

// size is the number of acknowledgements kept (for tests).
func (l *ackLog) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}
