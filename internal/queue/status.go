package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/itemq/itemq/itemapi"
)

// State is what the status API says of an item's job.
type State string

const (
	StatePending   State = "pending"   // waiting for a job, for a slot, or for a retry
	StateRunning   State = "running"   // an attempt runs
	StateSucceeded State = "succeeded" // done
	StateFailed    State = "failed"    // failed for good; the source has not been told yet
	StateDead      State = "dead"      // failed for good and dead-lettered (acknowledged as failed)
)

// ParseState checks a state filter.
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case StatePending, StateRunning, StateSucceeded, StateFailed, StateDead:
		return st, nil
	}
	return "", fmt.Errorf("state %q: want pending, running, succeeded, failed or dead", s)
}

// JobStatus is the status API's document of one item's job.
type JobStatus struct {
	Kind       string    `json:"kind"`
	APIVersion string    `json:"apiVersion"`
	Item       string    `json:"item"`
	Job        string    `json:"job"`
	State      State     `json:"state"`
	Attempts   int       `json:"attempts"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	OutputURL  string    `json:"outputURL,omitempty"`
	Error      string    `json:"error,omitempty"`
	LogPath    string    `json:"logPath,omitempty"`
}

// JobStatusList is one page of JobStatus documents, sorted by item.
type JobStatusList struct {
	Kind       string      `json:"kind"`
	APIVersion string      `json:"apiVersion"`
	Items      []JobStatus `json:"items"`
	Continue   string      `json:"continue,omitempty"`
}

// LogPather is a runner that keeps each job's output in a file.
type LogPather interface {
	LogPath(item string) string
}

// statusLocked builds the status of an item; ok is false when the manager
// knows nothing of it.
func (m *Manager) statusLocked(item string) (JobStatus, bool) {
	j := m.jobs[item]
	_, present := m.present[item]
	if j == nil && !present {
		return JobStatus{}, false
	}
	st := JobStatus{Kind: "Job", APIVersion: itemapi.APIVersion, Item: item, Job: JobName(m.cfg.Queue, item), State: StatePending}
	if m.cfg.OutputURL != "" {
		if u, err := itemapi.JoinObjectURL(m.cfg.OutputURL, itemapi.ItemKey(item)+"/"); err == nil {
			st.OutputURL = u
		}
	}
	if j == nil {
		return st, true
	}
	st.Job = j.Name
	st.Attempts = j.Attempts
	st.StartedAt = j.StartedAt
	st.FinishedAt = j.FinishedAt
	st.Error = j.Error
	switch j.Phase {
	case PhaseRunning:
		st.State = StateRunning
	case PhaseSucceeded:
		st.State = StateSucceeded
	case PhaseFailed:
		st.State = StateFailed
		if j.Acked != "" || m.noAck {
			st.State = StateDead
		}
	}
	if lp, ok := m.runner.(LogPather); ok && (j.Attempts > 0) {
		st.LogPath = lp.LogPath(item)
	}
	return st, true
}

// Status returns the status of one item's job.
func (m *Manager) Status(item string) (JobStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.statusLocked(item)
}

// StatusList returns a page of statuses sorted by item name, after the item
// named after, filtered by state when state is not empty.
func (m *Manager) StatusList(state State, after string, limit int) ([]JobStatus, string) {
	m.mu.Lock()
	names := make([]string, 0, len(m.present)+len(m.jobs))
	for n := range m.present {
		if after == "" || n > after {
			names = append(names, n)
		}
	}
	for n := range m.jobs {
		if _, dup := m.present[n]; !dup && (after == "" || n > after) {
			names = append(names, n)
		}
	}
	m.mu.Unlock()
	slices.Sort(names)
	out := []JobStatus{}
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
