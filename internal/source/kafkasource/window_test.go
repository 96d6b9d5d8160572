package kafkasource

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func rec(offset int64) *kgo.Record {
	return &kgo.Record{Topic: "t", Partition: 0, Offset: offset, LeaderEpoch: 3}
}

func offsets(ms []*message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.offset)
	}
	return out
}

func TestWindowCommitsOnlyTheDonePrefix(t *testing.T) {
	w := newWindow(100)
	byOffset := map[int64]*message{}
	for o := int64(10); o < 20; o++ {
		m := w.offer(rec(o))
		if m == nil {
			t.Fatalf("offset %d not admitted", o)
		}
		byOffset[o] = m
	}
	if _, ok := w.toCommit(); ok {
		t.Fatal("nothing done yet, but there is an offset to commit")
	}
	steps := []struct {
		done int64
		want int64 // commit point after; -1: none yet
	}{
		{15, -1}, {13, -1}, {17, -1}, // out of order: the head (10) is not done
		{10, 11},
		{12, 11}, // 11 still open
		{11, 14}, // 10..13 done, 14 open
		{14, 16}, // 15 was done already
		{19, 16},
		{16, 18},
		{18, 20}, // everything done: the offset after the last one
	}
	for _, s := range steps {
		w.markDone(byOffset[s.done])
		eo, ok := w.toCommit()
		if s.want < 0 {
			if ok {
				t.Fatalf("after done %d: commit %v, want none", s.done, eo)
			}
			continue
		}
		if !ok || eo.Offset != s.want || eo.Epoch != 3 {
			t.Fatalf("after done %d: commit %v (%v), want offset %d epoch 3", s.done, eo, ok, s.want)
		}
	}
	w.committed = 20
	if _, ok := w.toCommit(); ok {
		t.Fatal("commit point already committed, but toCommit says commit again")
	}
	if p := w.pending(); len(p) != 0 {
		t.Fatalf("pending after all done: %v", offsets(p))
	}
}

func TestWindowGapsInOffsets(t *testing.T) {
	// A compacted topic (or transaction markers) leaves gaps in offsets.
	w := newWindow(10)
	var ms []*message
	for _, o := range []int64{0, 2, 5, 9} {
		ms = append(ms, w.offer(rec(o)))
	}
	w.markDone(ms[1]) // 2
	if _, ok := w.toCommit(); ok {
		t.Fatal("head 0 not done, yet a commit point")
	}
	w.markDone(ms[0]) // 0 → commit past 2: 3
	if eo, _ := w.toCommit(); eo.Offset != 3 {
		t.Fatalf("commit %d, want 3", eo.Offset)
	}
	w.markDone(ms[3]) // 9, but 5 is open
	if eo, _ := w.toCommit(); eo.Offset != 3 {
		t.Fatalf("commit %d, want 3 (5 is still open)", eo.Offset)
	}
	w.markDone(ms[2])
	if eo, _ := w.toCommit(); eo.Offset != 10 {
		t.Fatalf("commit %d, want 10", eo.Offset)
	}
}

func TestWindowBoundAndOverflow(t *testing.T) {
	w := newWindow(3)
	var admitted []*message
	for o := int64(0); o < 6; o++ {
		if m := w.offer(rec(o)); m != nil {
			admitted = append(admitted, m)
		}
	}
	if got := offsets(admitted); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Fatalf("admitted %v, want [0 1 2]", got)
	}
	if !w.full() || w.canResume() {
		t.Fatalf("full=%v canResume=%v, want full and not resumable", w.full(), w.canResume())
	}
	// Done out of order: no room is made while the head is open (the window
	// spans from the commit point).
	if a := w.markDone(admitted[1]); len(a) != 0 {
		t.Fatalf("done 1 with 0 open admitted %v", offsets(a))
	}
	if a := w.markDone(admitted[0]); !slices.Equal(offsets(a), []int64{3, 4}) {
		t.Fatalf("done 0 admitted %v, want [3 4]", offsets(a))
	}
	if w.canResume() {
		t.Fatal("5 waits in the overflow: must not resume yet")
	}
	if got := offsets(w.pending()); !slices.Equal(got, []int64{2, 3, 4}) {
		t.Fatalf("pending %v, want [2 3 4]", got)
	}
	a := w.markDone(w.pending()[0]) // 2
	if !slices.Equal(offsets(a), []int64{5}) {
		t.Fatalf("done 2 admitted %v, want [5]", offsets(a))
	}
	if w.canResume() {
		t.Fatal("window is full again: must not resume")
	}
	w.markDone(w.pending()[0]) // 3
	if !w.canResume() {
		t.Fatal("room and empty overflow: should resume")
	}
	// A record at or before the newest consumed one is a re-fetch.
	if m := w.offer(rec(4)); m != nil {
		t.Fatal("offset 4 offered twice was admitted twice")
	}
	if m := w.offer(rec(6)); m == nil || m.name != "t/0/6" {
		t.Fatalf("offset 6: %+v", m)
	}
}
