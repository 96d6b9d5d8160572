package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/itemq/itemq/internal/runner"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/itemq/itemq/itemapi"
)

// stateLocked is the state of an item's job, cheaply (no status built);
// ok is false when the manager knows nothing of it.
func (m *Manager) stateLocked(item string) (itemapi.State, bool) {
	if j := m.jobs[item]; j != nil {
		return m.jobStateLocked(j), true
	}
	if m.cancelled[item] != nil {
		return itemapi.StateCancelled, true
	}
	_, present := m.present[item]
	return itemapi.StatePending, present
}

func (m *Manager) jobStateLocked(j *runner.Job) itemapi.State {
	switch j.Phase {
	case runner.PhaseRunning:
		return itemapi.StateRunning
	case runner.PhaseSucceeded:
		return itemapi.StateSucceeded
	case runner.PhaseFailed:
		switch {
		case j.Cancelled:
			return itemapi.StateCancelled
		case j.Acked != "" || m.noAck:
			return itemapi.StateDead
		}
		return itemapi.StateFailed
	}
	return itemapi.StatePending
}

// statusLocked builds the status of an item; ok is false when the manager
// knows nothing of it.
func (m *Manager) statusLocked(item string) (itemapi.JobStatus, bool) {
	j := m.jobs[item]
	_, present := m.present[item]
	mark := m.cancelled[item]
	if j == nil && !present && mark == nil {
		return itemapi.JobStatus{}, false
	}
	st := itemapi.JobStatus{Kind: "Job", APIVersion: itemapi.APIVersion, Item: item, Job: runner.JobName(m.cfg.Queue, item), State: itemapi.StatePending}
	if m.cfg.Fair.enabled() {
		if c, ok := m.fq.Class(item); ok {
			if m.cfg.Fair.PriorityField != "" {
				st.Priority = &c.Priority
			}
			st.FairKey = c.Key
		}
	}
	if m.cfg.OutputURL != "" {
		if u, err := itemapi.JoinObjectURL(m.cfg.OutputURL, itemapi.ItemKey(item)+"/"); err == nil {
			st.OutputURL = u
		}
	}
	if j == nil {
		if mark != nil {
			st.State = itemapi.StateCancelled
			st.FinishedAt = mark.at
			st.Error = runner.CancelledError
		}
		return st, true
	}
	st.Job = j.Name
	st.Attempts = j.Attempts
	st.StartedAt = j.StartedAt
	st.FinishedAt = j.FinishedAt
	st.Error = j.Error
	st.State = m.jobStateLocked(j)
	if lp, ok := m.runner.(runner.LogPather); ok && (j.Attempts > 0) {
		st.LogPath = lp.LogPath(item)
	}
	return st, true
}

// Status returns the status of one item's job.
func (m *Manager) Status(item string) (itemapi.JobStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statusLocked(item)
}

// StatusList returns a page of statuses sorted by item name, after the item
// named after, filtered by state and name prefix when they are not empty.
// last, when not empty, is where the next page starts (after=last).
func (m *Manager) StatusList(state itemapi.State, prefix, after string, limit int) (page []itemapi.JobStatus, last string) {
	if prefix != "" && after < prefix {
		after = prefix[:len(prefix)-1] // every name with the prefix sorts after this
	}
	keep := func(n string) bool { return (after == "" || n > after) && strings.HasPrefix(n, prefix) }
	m.mu.Lock()
	names := make([]string, 0, len(m.present)+len(m.jobs))
	for n := range m.present {
		if keep(n) {
			names = append(names, n)
		}
	}
	for n := range m.jobs {
		if _, dup := m.present[n]; !dup && keep(n) {
			names = append(names, n)
		}
	}
	for n := range m.cancelled {
		_, dup := m.present[n]
		if !dup && m.jobs[n] == nil && keep(n) {
			names = append(names, n)
		}
	}
	m.mu.Unlock()
	slices.Sort(names)
	out := []itemapi.JobStatus{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, n := range names {
		st, ok := m.statusLocked(n)
		if !ok || (state != "" && st.State != state) {
			continue
		}
		if limit > 0 && len(out) == limit {
			return out, names[i-1]
		}
		out = append(out, st)
	}
	return out, ""
}

// Submit adds an item through the source and remembers it at once, so that
// its status can be polled right away.
func (m *Manager) Submit(ctx context.Context, data json.RawMessage) (*itemapi.Item, error) {
	it, err := m.src.Submit(ctx, data)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	now := time.Now()
	if _, ok := m.present[it.Name]; !ok {
		m.present[it.Name] = now
		if m.jobs[it.Name] == nil {
			m.scaler.Arrival(now)
			m.classifyLocked(it.Name, &itemapi.Item{Name: it.Name, Data: data})
			m.enqueueLocked(it.Name)
		}
	}
	m.mu.Unlock()
	m.signal()
	m.log.Info("job submitted", "item", it.Name)
	return it, nil
}

// Ready reports whether the manager has seen the whole source once.
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		return fmt.Errorf("the source has not been listed yet")
	}
	return nil
}

// OutputURL is the bucket URL executors upload results to ("" when the
// manager was not told).
func (m *Manager) OutputURL() string { return m.cfg.OutputURL }

// Logger is the manager's logger (for the servers built around it).
func (m *Manager) Logger() *slog.Logger { return m.log }

// Summary is the queue at a glance: jobs by state and the scaler's view.
func (m *Manager) Summary() itemapi.Summary {
	m.mu.Lock()
	defer m.mu.Unlock()
	sum := itemapi.Summary{Kind: "Summary", APIVersion: itemapi.APIVersion, Queue: m.cfg.Queue, Counts: map[itemapi.State]int{},
		Lambda: m.lastObs.Lambda, S: m.lastObs.S, Parallelism: m.limit, Active: m.active, Backlog: len(m.queued),
		Leader: m.leader, Synced: m.synced, Items: len(m.present)}
	if m.lastObs.C > 0 {
		sum.PredictedWait = float64(len(m.queued)) * m.lastObs.S / float64(m.lastObs.C)
	}
	if m.sourceErr != nil {
		sum.SourceError = m.sourceErr.Error()
	}
	now := time.Now()
	for name := range m.queued {
		if at, ok := m.present[name]; ok {
			sum.OldestWaiting = max(sum.OldestWaiting, now.Sub(at).Seconds())
		}
	}
	for _, j := range m.jobs {
		sum.Counts[m.jobStateLocked(j)]++
	}
	for n := range m.present {
		if _, dup := m.jobs[n]; !dup {
			if m.cancelled[n] != nil {
				sum.Counts[itemapi.StateCancelled]++
			} else {
				sum.Counts[itemapi.StatePending]++
			}
		}
	}
	for n := range m.cancelled {
		if _, dup := m.present[n]; !dup && m.jobs[n] == nil {
			sum.Counts[itemapi.StateCancelled]++
		}
	}
	return sum
}

// Scaling returns the state of the control loop (GET /v1/scaling).
func (m *Manager) Scaling() itemapi.Scaling {
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := itemapi.Scaling{Kind: "Scaling", APIVersion: itemapi.APIVersion, Queue: m.cfg.Queue,
		Lambda: m.lastObs.Lambda, S: m.lastObs.S, Backlog: len(m.queued), C: m.limit,
		Min: m.scaler.Min, Max: m.scaler.Max, TargetUtilization: m.scaler.Rho,
		DrainTimeSeconds: m.scaler.DrainTime.Seconds(), ScaleDownDelaySeconds: m.scaler.ScaleDownDelay.Seconds(),
		TargetWaitSeconds: m.scaler.TargetWait.Seconds(), Reason: m.lastObs.Reason, LastChangeReason: m.lastChangeReason}
	if sc.TargetUtilization <= 0 || sc.TargetUtilization > 1 {
		sc.TargetUtilization = 0.9 // the scaler's default
	}
	if m.lastObs.C > 0 {
		sc.PredictedWait = float64(len(m.queued)) * m.lastObs.S / float64(m.lastObs.C)
	}
	if !m.lastChange.IsZero() {
		at := m.lastChange
		sc.LastChange = &at
	}
	sc.Pending, sc.Running, sc.RetryWaiting = m.phasesLocked()
	return sc
}

// phasesLocked counts the unfinished jobs: created and not running yet,
// running, and waiting for a retry.
func (m *Manager) phasesLocked() (pending, running, retryWaiting int) {
	for _, j := range m.jobs {
		switch {
		case j.Phase.Finished():
		case !j.RetryAt.IsZero():
			retryWaiting++
		case j.Phase == runner.PhaseRunning:
			running++
		default:
			pending++
		}
	}
	return pending, running, retryWaiting
}

// History returns the attempts of an item's job: from the runner when it
// reads them from elsewhere (runner.Historian), else from its record.
func (m *Manager) History(ctx context.Context, item string) ([]itemapi.Attempt, error) {
	if h, ok := m.runner.(runner.Historian); ok {
		m.mu.Lock()
		j := m.jobs[item]
		m.mu.Unlock()
		if j == nil {
			return nil, nil
		}
		return h.History(ctx, item)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if j := m.jobs[item]; j != nil {
		return slices.Clone(j.History), nil
	}
	return nil, nil
}

// Logs opens the log of an item's job from a runner that serves logs
// itself (runner.LogStreamer); ok is false for a runner that writes log
// files (JobStatus.LogPath) or none.
func (m *Manager) Logs(ctx context.Context, item string, tail int, follow bool) (rc io.ReadCloser, ok bool, err error) {
	ls, ok := m.runner.(runner.LogStreamer)
	if !ok {
		return nil, false, nil
	}
	rc, err = ls.Logs(ctx, item, tail, follow)
	return rc, true, err
}

// JobsPage returns limit jobs from offset of those in state (all states
// when empty) whose item's name holds search (all when empty), sorted by
// item, or by their last change (most recent first) with byTime; and how
// many match in all. Only the page's statuses are built, so a page of
// 100,000 jobs stays cheap.
func (m *Manager) JobsPage(state itemapi.State, search string, byTime bool, offset, limit int) (page []itemapi.JobStatus, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	type entry struct {
		name string
		at   time.Time
	}
	match := make([]entry, 0, len(m.present)+len(m.jobs))
	keep := func(n string, st itemapi.State) bool {
		return (state == "" || st == state) && (search == "" || strings.Contains(n, search))
	}
	// One pass over each map, each name looked up at most once more.
	for n, j := range m.jobs {
		if keep(n, m.jobStateLocked(j)) {
			at := j.FinishedAt
			if at.IsZero() {
				at = j.StartedAt
			}
			match = append(match, entry{n, at})
		}
	}
	for n := range m.present {
		if _, dup := m.jobs[n]; dup {
			continue
		}
		if c := m.cancelled[n]; c != nil {
			if keep(n, itemapi.StateCancelled) {
				match = append(match, entry{n, c.at})
			}
		} else if keep(n, itemapi.StatePending) {
			match = append(match, entry{name: n})
		}
	}
	for n, c := range m.cancelled {
		if _, dup := m.present[n]; !dup && m.jobs[n] == nil && keep(n, itemapi.StateCancelled) {
			match = append(match, entry{n, c.at})
		}
	}
	cmp := func(a, b entry) int { return strings.Compare(a.name, b.name) }
	if byTime {
		cmp = func(a, b entry) int {
			if c := b.at.Compare(a.at); c != 0 {
				return c
			}
			return strings.Compare(a.name, b.name)
		}
	}
	total = len(match)
	match = smallest(match, offset+limit, cmp)
	for i := offset; i < len(match) && len(page) < limit; i++ {
		if st, ok := m.statusLocked(match[i].name); ok {
			page = append(page, st)
		}
	}
	return page, total
}

// Item reads an item from the source.
func (m *Manager) Item(ctx context.Context, item string) (*itemapi.Item, error) {
	return m.src.Get(ctx, item)
}

// smallest returns the k smallest of xs by cmp, sorted: a bounded max-heap
// (O(n log k)) when k is small beside n, a sort otherwise. xs is reordered.
func smallest[T any](xs []T, k int, cmp func(a, b T) int) []T {
	if k <= 0 {
		return nil
	}
	if k >= len(xs)/4 {
		slices.SortFunc(xs, cmp)
		return xs[:min(k, len(xs))]
	}
	h := make([]T, 0, k)
	down := func(i int) {
		for {
			l, r, big := 2*i+1, 2*i+2, i
			if l < len(h) && cmp(h[l], h[big]) > 0 {
				big = l
			}
			if r < len(h) && cmp(h[r], h[big]) > 0 {
				big = r
			}
			if big == i {
				return
			}
			h[i], h[big] = h[big], h[i]
			i = big
		}
	}
	for _, x := range xs {
		switch {
		case len(h) < k:
			h = append(h, x)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if cmp(h[i], h[p]) <= 0 {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
		case cmp(x, h[0]) < 0:
			h[0] = x
			down(0)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}
