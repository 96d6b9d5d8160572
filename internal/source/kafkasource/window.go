package kafkasource

import (
	"github.com/twmb/franz-go/pkg/kgo"
)

// message is one consumed message in a partition's window.
type message struct {
	name   string
	offset int64
	epoch  int32       // the leader epoch of the record, committed with the offset after it
	rec    *kgo.Record // nil once done
	done   bool
	acking bool // an acknowledgement is dead-lettering it right now
}

// window is the state of one assigned partition: the messages from the
// lowest one not yet done (the commit point) to the newest one consumed, in
// offset order, at most max of them; the messages consumed beyond the window
// while it was full (overflow, bounded by what one poll returned before the
// partition was paused); and the offset to commit.
//
// The commit point only moves over a contiguous prefix of done messages, so
// committing it never skips a message that is not done: a crash re-delivers
// everything from the first unfinished message on. Offsets need not be
// contiguous (compacted topics, transaction markers): order is what counts.
//
// A window is not safe for concurrent use; the driver's mutex guards it.
type window struct {
	max      int
	msgs     []*message    // offset order; msgs[0] is the commit point when not done
	overflow []*kgo.Record // consumed, not yet admitted (window was full)
	next     int64         // the offset after the newest consumed; -1 before the first
	commit   kgo.EpochOffset
	// committed is the offset last committed successfully (-1: none by us).
	committed int64
	paused    bool
	// hw is the partition's high watermark at the last fetch (-1: none yet).
	hw int64
}

func newWindow(max int) *window {
	return &window{max: max, next: -1, commit: kgo.EpochOffset{Epoch: -1, Offset: -1}, committed: -1, hw: -1}
}

// lag is the high watermark minus the first message not yet done; false
// before the first fetch.
func (w *window) lag() (int64, bool) {
	if w.hw < 0 {
		return 0, false
	}
	from := w.hw
	switch {
	case len(w.msgs) > 0:
		from = w.msgs[0].offset
		for _, m := range w.msgs {
			if !m.done {
				from = m.offset
				break
			}
			from = m.offset + 1
		}
	case len(w.overflow) > 0:
		from = w.overflow[0].Offset
	case w.next >= 0:
		from = w.next
	}
	return max(0, w.hw-from), true
}

// inOverflow reports whether the message at off was consumed and waits in
// the overflow (not admitted to the window, so not listed yet).
func (w *window) inOverflow(off int64) bool {
	for _, r := range w.overflow {
		if r.Offset == off {
			return true
		}
	}
	return false
}

// offer takes a consumed record. It returns the message when the record was
// admitted to the window (to be listed), nil when it waits in the overflow
// or was a duplicate of something already consumed.
func (w *window) offer(r *kgo.Record) *message {
	if w.next >= 0 && r.Offset < w.next {
		return nil // already consumed (a re-fetch); never list it twice
	}
	w.next = r.Offset + 1
	if len(w.overflow) > 0 || len(w.msgs) >= w.max {
		w.overflow = append(w.overflow, r)
		return nil
	}
	return w.admit(r)
}

func (w *window) admit(r *kgo.Record) *message {
	m := &message{name: itemName(r.Topic, r.Partition, r.Offset), offset: r.Offset, epoch: r.LeaderEpoch, rec: r}
	w.msgs = append(w.msgs, m)
	return m
}

// full reports whether the window holds max messages: fetching should pause.
func (w *window) full() bool { return len(w.msgs) >= w.max }

// canResume reports whether a paused partition may fetch again: the window
// has room and nothing waits in the overflow.
func (w *window) canResume() bool { return len(w.msgs) < w.max && len(w.overflow) == 0 }

// markDone marks m done, moves the commit point over the done prefix, and
// admits waiting messages into the room that made; it returns them.
func (w *window) markDone(m *message) (admitted []*message) {
	m.done = true
	m.rec = nil
	i := 0
	for i < len(w.msgs) && w.msgs[i].done {
		i++
	}
	if i > 0 {
		last := w.msgs[i-1]
		w.commit = kgo.EpochOffset{Epoch: last.epoch, Offset: last.offset + 1}
		clear(w.msgs[:i])
		w.msgs = w.msgs[i:]
	}
	for len(w.overflow) > 0 && len(w.msgs) < w.max {
		r := w.overflow[0]
		w.overflow[0] = nil
		w.overflow = w.overflow[1:]
		admitted = append(admitted, w.admit(r))
	}
	if len(w.overflow) == 0 {
		w.overflow = nil
	}
	return admitted
}

// toCommit returns the offset to commit and whether it differs from what
// was last committed.
func (w *window) toCommit() (kgo.EpochOffset, bool) {
	return w.commit, w.commit.Offset >= 0 && w.commit.Offset != w.committed
}

// pending returns the messages of the window not yet done, in offset order.
func (w *window) pending() []*message {
	var out []*message
	for _, m := range w.msgs {
		if !m.done {
			out = append(out, m)
		}
	}
	return out
}
