package manager_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/itemq/itemq/internal/manager"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/internal/runner/runnertest"
	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/source/memsource"
	"github.com/itemq/itemq/itemapi"
)

// Paging through JobsPage gives every job once, in order, by name and by
// time, with filters.
func TestJobsPagePaging(t *testing.T) {
	var jobs []runner.Job
	var names []string
	base := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for i, p := range rand.Perm(1000) {
		n := fmt.Sprintf("item-%04d", p)
		names = append(names, n)
		phase := runner.PhaseSucceeded
		if i%3 == 0 {
			phase = runner.PhaseFailed
		}
		jobs = append(jobs, runner.Job{Item: n, Name: runner.JobName("q", n), Phase: phase, Acked: itemapi.Succeeded,
			StartedAt: base.Add(time.Duration(p) * time.Second), FinishedAt: base.Add(time.Duration(p) * time.Second)})
	}
	m := manager.New(manager.Config{Queue: "q", MaxActive: 1, Resync: time.Hour}, &manager.InProcess{Src: source.New(memsource.New())}, &runnertest.Held{Records: jobs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for m.Ready() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	collect := func(state itemapi.State, search string, byTime bool, size int) ([]string, int) {
		var out []string
		total := -1
		for off := 0; ; off += size {
			page, n := m.JobsPage(state, search, byTime, off, size)
			total = n
			for _, st := range page {
				out = append(out, st.Item)
			}
			if len(page) < size {
				return out, total
			}
		}
	}
	slices.Sort(names)
	for _, size := range []int{7, 100, 1000} {
		got, total := collect("", "", false, size)
		if total != 1000 || !slices.Equal(got, names) {
			t.Fatalf("by name, pages of %d: %d of %d, in order %v", size, len(got), total, slices.IsSorted(got))
		}
		byTime, _ := collect("", "", true, size)
		want := slices.Clone(names)
		slices.Reverse(want) // item-0999 finished last
		if !slices.Equal(byTime, want) {
			t.Fatalf("by time, pages of %d: %v…", size, byTime[:3])
		}
	}
	dead, total := collect(itemapi.StateDead, "item-00", false, 10)
	if total != len(dead) || len(dead) == 0 || !slices.IsSorted(dead) {
		t.Fatalf("dead with item-00: %v (total %d)", dead, total)
	}
}
