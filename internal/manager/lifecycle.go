package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

// The job lifecycle a person steers: cancel, retry (redrive) and waiting
// for a job to end.

// cancelMark is a cancellation of an item that had no job yet: the item
// is acknowledged as cancelled without running. (A job that exists is
// cancelled through its runner, whose record keeps Cancelled.)
type cancelMark struct {
	at    time.Time
	acked bool
}

// bulkWorkers act on the jobs of one bulk action concurrently.
const bulkWorkers = 16

// changedLocked wakes the waiters of WaitStatus: some job's state changed.
func (m *Manager) changedLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Cancel stops an item's job for good: a running attempt is stopped (the
// runner's Cancel, within its grace), the job ends cancelled, the source
// is told (outcome cancelled: it dead-letters the item) and it never runs
// again unless retried. An item still waiting for a job is acknowledged as
// cancelled at once. done is false (and err nil) when there was nothing to
// do: the job had already finished.
func (m *Manager) Cancel(ctx context.Context, item string) (done bool, err error) {
	m.mu.Lock()
	if !m.leader {
		m.mu.Unlock()
		return false, itemapi.NewStatus(itemapi.ReasonUnavailable, "this manager is a standby replica; ask the leader")
	}
	j := m.jobs[item]
	_, present := m.present[item]
	_, marked := m.cancelled[item]
	switch {
	case j != nil && j.Phase.Finished(), marked:
		m.mu.Unlock()
		return false, nil
	case j == nil && !present:
		m.mu.Unlock()
		return false, itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", item)
	case j == nil:
		// Not started: it never will be.
		mark := &cancelMark{at: time.Now()}
		m.cancelled[item] = mark
		delete(m.queued, item)
		delete(m.docs, item)
		m.changedLocked()
		if m.cfg.OnFinish != nil {
			st, _ := m.statusLocked(item)
			m.cfg.OnFinish(EventCancelled, st, fmt.Sprintf("%s.%d.cancelled", runner.JobName(m.cfg.Queue, item), mark.at.UnixNano()))
		}
		if _, starting := m.starting[item]; !starting {
			m.queueAckLocked(item)
		}
		// else a dispatch worker is creating its job: it cancels the job
		// once created (which then ends cancelled, or had already ended,
		// and is acknowledged as it ended), or acknowledges the item as
		// cancelled if the job was not created. Acknowledging it now would
		// dead-letter an item whose job may run to success.
		m.mu.Unlock()
		m.met.cancelled.Inc()
		m.log.Info("job cancelled before it started", "item", item)
		return true, nil
	}
	m.mu.Unlock()
	if err := m.runner.Cancel(ctx, item); err != nil {
		if errors.Is(err, runner.ErrNotFound) {
			return false, itemapi.NewStatus(itemapi.ReasonConflict, "the job of item %q is being created; try again", item)
		}
		return false, fmt.Errorf("cancel the job of %q: %w", item, err)
	}
	m.met.cancelled.Inc()
	m.log.Info("job cancelled", "item", item)
	return true, nil
}

// Retry runs a finished, unsuccessful job's item again, with a fresh count
// of attempts: a failed, dead or cancelled job. An item the source still
// holds runs again at once; one the source dead-lettered is redriven (the
// source's POST /v1/redrive), and may come back under a new name, which is
// returned. done is false (and err nil) when there was nothing to do: the
// job succeeded, or has not finished.
func (m *Manager) Retry(ctx context.Context, item string) (newName string, done bool, err error) {
	m.mu.Lock()
	for {
		// An acknowledgement being made decides where the item is (still
		// in the queue, or dead-lettered): wait for it.
		done := m.acking[item]
		if done == nil {
			break
		}
		m.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return "", false, fmt.Errorf("retry %q: wait for its acknowledgement: %w", item, ctx.Err())
		}
		m.mu.Lock()
	}
	if !m.leader {
		m.mu.Unlock()
		return "", false, itemapi.NewStatus(itemapi.ReasonUnavailable, "this manager is a standby replica; ask the leader")
	}
	if _, busy := m.resetting[item]; busy {
		m.mu.Unlock()
		return item, false, nil // being queued again already
	}
	j := m.jobs[item]
	mark := m.cancelled[item]
	_, present := m.present[item]
	switch {
	case j == nil && mark == nil && present:
		m.mu.Unlock()
		return item, false, nil // waiting for its job already
	case j == nil && mark == nil:
		m.mu.Unlock()
		return "", false, itemapi.NewStatus(itemapi.ReasonNotFound, "no job for item %q", item)
	case j != nil && !j.Phase.Finished():
		m.mu.Unlock()
		return item, false, nil
	case j != nil && j.Phase == runner.PhaseSucceeded:
		m.mu.Unlock()
		return item, false, nil
	}
	acked := (j != nil && j.Acked != "") || (mark != nil && mark.acked)
	holds := present && (!acked || m.noAck)
	// Until its old job is dropped, nothing else queues it (the redriven
	// item's ADDED event, a listing).
	m.resetting[item] = struct{}{}
	m.mu.Unlock()
	unmark := func() {
		m.mu.Lock()
		delete(m.resetting, item)
		m.queueAckLocked(item) // an acknowledgement skipped meanwhile, if any
		m.mu.Unlock()
	}

	if !holds {
		it, err := m.src.Redrive(ctx, item)
		if err != nil {
			unmark()
			if itemapi.IsMethodNotAllowed(err) {
				return "", false, itemapi.NewStatus(itemapi.ReasonMethodNotAllowed,
					"the source cannot put dead-lettered items back (it answered 405 to POST /v1/redrive): move %q back into the queue by hand", item)
			}
			return "", false, fmt.Errorf("redrive %q: %w", item, err)
		}
		newName = it.Name
	} else {
		newName = item
	}
	if j != nil {
		if err := m.runner.Forget(ctx, item); err != nil {
			// The item is back in the queue; the old record keeps it from
			// running until the next pass finds it listed again and drops it.
			m.log.Warn("cannot drop the old job of a retried item; it runs once the record is dropped", "item", item, "err", err)
		}
	}
	now := time.Now()
	m.mu.Lock()
	delete(m.resetting, item)
	m.dropFinishedLocked(item, now)
	delete(m.cancelled, item)
	delete(m.gone, item)
	delete(m.ackedAt, item)
	delete(m.backs, item)
	if _, ok := m.present[newName]; !ok {
		m.present[newName] = now
		if newName != item {
			// A name the source answered but has not listed yet (a stream
			// source reads the redriven entry a moment later).
			m.expected[newName] = now
		}
	}
	if m.jobs[newName] == nil {
		m.enqueueLocked(newName)
	}
	m.changedLocked()
	m.mu.Unlock()
	m.signal()
	m.met.retried.Inc()
	m.log.Info("job retried", "item", item, "as", newName, "redriven", !holds)
	return newName, true, nil
}

// WaitStatus returns an item's status as soon as its job has finished, or
// after d, whichever comes first (a long poll). ok is false when the
// manager knows nothing of the item.
func (m *Manager) WaitStatus(ctx context.Context, item string, d time.Duration) (itemapi.JobStatus, bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		m.mu.Lock()
		st, ok := m.statusLocked(item)
		ch := m.changed
		m.mu.Unlock()
		if !ok || st.State.Finished() {
			return st, ok
		}
		select {
		case <-ch:
		case <-t.C:
			return st, ok
		case <-ctx.Done():
			return st, ok
		}
	}
}

// Select returns the items a selector picks, sorted.
func (m *Manager) Select(sel itemapi.JobSelector) []string {
	if len(sel.Items) > 0 {
		items := slices.Clone(sel.Items)
		slices.Sort(items)
		return slices.Compact(items)
	}
	var out []string
	after := ""
	for {
		page, last := m.StatusList(sel.State, sel.Prefix, after, 5000)
		for _, st := range page {
			out = append(out, st.Item)
		}
		if last == "" {
			return out
		}
		after = last
	}
}

// CancelJobs cancels the selected jobs.
func (m *Manager) CancelJobs(ctx context.Context, sel itemapi.JobSelector) itemapi.ActionResult {
	return m.bulk(ctx, "cancel", sel, func(ctx context.Context, item string) itemapi.ActionItem {
		done, err := m.Cancel(ctx, item)
		switch {
		case err != nil:
			return itemapi.ActionItem{Item: item, Result: itemapi.ActionError, Message: err.Error()}
		case !done:
			return itemapi.ActionItem{Item: item, Result: itemapi.ActionSkipped, Message: "already finished"}
		}
		return itemapi.ActionItem{Item: item, Result: itemapi.ActionDone}
	})
}

// RetryJobs retries the selected jobs.
func (m *Manager) RetryJobs(ctx context.Context, sel itemapi.JobSelector) itemapi.ActionResult {
	return m.bulk(ctx, "retry", sel, func(ctx context.Context, item string) itemapi.ActionItem {
		newName, done, err := m.Retry(ctx, item)
		switch {
		case err != nil:
			return itemapi.ActionItem{Item: item, Result: itemapi.ActionError, Message: err.Error()}
		case !done:
			st, _ := m.Status(item)
			return itemapi.ActionItem{Item: item, Result: itemapi.ActionSkipped, Message: "nothing to retry: the job is " + string(st.State)}
		}
		ai := itemapi.ActionItem{Item: item, Result: itemapi.ActionDone}
		if newName != item {
			ai.NewItem = newName
		}
		return ai
	})
}

func (m *Manager) bulk(ctx context.Context, action string, sel itemapi.JobSelector, do func(context.Context, string) itemapi.ActionItem) itemapi.ActionResult {
	items := m.Select(sel)
	res := itemapi.ActionResult{Kind: "ActionResult", APIVersion: itemapi.APIVersion, Action: action, Items: make([]itemapi.ActionItem, len(items))}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(bulkWorkers, len(items)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res.Items[i] = do(ctx, items[i])
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, it := range res.Items {
		switch it.Result {
		case itemapi.ActionDone:
			res.Done++
		case itemapi.ActionSkipped:
			res.Skipped++
		default:
			res.Errors++
		}
	}
	return res
}

// eventID names one completion event of one job: the same after a restart.
func eventID(j *runner.Job, event string) string {
	return fmt.Sprintf("%s.%d.%s", j.Name, j.CreatedAt.UnixNano(), event)
}

// emitLocked tells OnFinish of an event of a job (the leader only).
func (m *Manager) emitLocked(event string, j *runner.Job) {
	if m.cfg.OnFinish == nil || !m.leader {
		return
	}
	st, ok := m.statusLocked(j.Item)
	if !ok {
		return
	}
	m.cfg.OnFinish(event, st, eventID(j, event))
}

// emitFinishedLocked tells OnFinish that a job finished.
func (m *Manager) emitFinishedLocked(j *runner.Job) {
	switch {
	case j.Phase == runner.PhaseSucceeded:
		m.emitLocked(EventSucceeded, j)
	case j.Cancelled:
		m.emitLocked(EventCancelled, j)
	case j.Phase == runner.PhaseFailed:
		m.emitLocked(EventFailed, j)
	}
}

// replayEventsLocked emits again the events of jobs that finished within
// EventReplay: the receiver drops those it delivered, and sends those a
// crash or a change of leader kept from it.
func (m *Manager) replayEventsLocked() {
	if m.cfg.OnFinish == nil || !m.leader || m.cfg.EventReplay <= 0 {
		return
	}
	since := time.Now().Add(-m.cfg.EventReplay)
	for _, j := range m.jobs {
		if !j.Phase.Finished() || j.FinishedAt.Before(since) {
			continue
		}
		m.emitFinishedLocked(j)
		if j.Acked == itemapi.Failed {
			m.emitLocked(EventDead, j)
		}
	}
}
