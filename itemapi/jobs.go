package itemapi

import (
	"fmt"
	"time"
)

// The manager's status API (GET /v1/jobs, GET /v1/jobs/{item}, POST
// /v1/jobs): the documents it answers with, typed here so that Go clients
// share them with the server.

// State is what the status API says of an item's job.
type State string

const (
	StatePending   State = "pending"   // waiting for a job, for a slot, or for a retry
	StateRunning   State = "running"   // an attempt runs
	StateSucceeded State = "succeeded" // done
	StateFailed    State = "failed"    // failed for good; the source has not been told yet
	StateDead      State = "dead"      // failed for good and dead-lettered (acknowledged as failed)
	StateCancelled State = "cancelled" // stopped by a person (POST /v1/cancel); never runs again unless retried
)

// Finished reports whether a job in this state will not run again unless
// it is retried.
func (s State) Finished() bool {
	return s == StateSucceeded || s == StateFailed || s == StateDead || s == StateCancelled
}

// ParseState checks a state filter.
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case StatePending, StateRunning, StateSucceeded, StateFailed, StateDead, StateCancelled:
		return st, nil
	}
	return "", fmt.Errorf("state %q: want pending, running, succeeded, failed, dead or cancelled", s)
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
	// Priority and FairKey: the item's place in the manager's fair
	// dispatch, when MANAGER_PRIORITY_FIELD or MANAGER_FAIR_KEY is set and
	// the manager has read the item's data.
	Priority *int   `json:"priority,omitempty"`
	FairKey  string `json:"fairKey,omitempty"`
	// History lists the job's attempts (GET /v1/jobs/{item} only, not
	// lists), oldest first.
	History []Attempt `json:"history,omitempty"`
}

// Attempt is one attempt of a job.
type Attempt struct {
	Number     int       `json:"number"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// ExitCode is the executor's (-1: it did not exit by itself; absent
	// while it runs).
	ExitCode *int `json:"exitCode,omitempty"`
	// Reason says how it ended: "succeeded", "exit code 1", "cancelled",
	// "timed out after 10m", "interrupted: the manager stopped",
	// a pod's reason (OOMKilled, DeadlineExceeded…).
	Reason string `json:"reason,omitempty"`
	// Where it ran: "pid 4242", "container <name>", "pod <name> on node <node>".
	Where string `json:"where,omitempty"`
}

// JobStatusList is one page of JobStatus documents, sorted by item.
type JobStatusList struct {
	Kind       string      `json:"kind"`
	APIVersion string      `json:"apiVersion"`
	Items      []JobStatus `json:"items"`
	Continue   string      `json:"continue,omitempty"`
}

// JobSelector picks the jobs of a bulk action (POST /v1/cancel, POST
// /v1/retry): the named items, or every job in State whose item starts
// with Prefix. Items and State cannot be combined; an empty selector is
// refused, so that no call acts on every job by accident.
type JobSelector struct {
	Items  []string `json:"items,omitempty"`
	State  State    `json:"state,omitempty"`
	Prefix string   `json:"prefix,omitempty"`
}

// Validate checks a selector.
func (s JobSelector) Validate() error {
	switch {
	case len(s.Items) > 0 && (s.State != "" || s.Prefix != ""):
		return fmt.Errorf("select jobs either by items or by state and prefix, not both")
	case len(s.Items) == 0 && s.State == "" && s.Prefix == "":
		return fmt.Errorf("select jobs by items, state or prefix (an empty selector would act on every job)")
	case len(s.Items) > MaxSelectedItems:
		return fmt.Errorf("%d items: at most %d per call", len(s.Items), MaxSelectedItems)
	}
	if s.State != "" {
		if _, err := ParseState(string(s.State)); err != nil {
			return err
		}
	}
	for _, it := range s.Items {
		if err := ValidateName(it); err != nil {
			return err
		}
	}
	return nil
}

// MaxSelectedItems bounds the item names of one JobSelector.
const MaxSelectedItems = 10000

// Results of one job in an ActionResult.
const (
	ActionDone    = "done"    // cancelled, or back in the queue
	ActionSkipped = "skipped" // nothing to do (already finished, or not retryable)
	ActionError   = "error"   // could not be done; Message says why
)

// ActionItem is what a bulk action did to one job.
type ActionItem struct {
	Item   string `json:"item"`
	Result string `json:"result"`
	// NewItem is the item's name after a retry when the source renamed it
	// (a Kafka or Redis source appends a redriven item anew).
	NewItem string `json:"newItem,omitempty"`
	Message string `json:"message,omitempty"`
}

// ActionResult answers POST /v1/cancel and POST /v1/retry: one entry per
// selected job, sorted by item, and counts.
type ActionResult struct {
	Kind       string       `json:"kind"`
	APIVersion string       `json:"apiVersion"`
	Action     string       `json:"action"`
	Done       int          `json:"done"`
	Skipped    int          `json:"skipped"`
	Errors     int          `json:"errors"`
	Items      []ActionItem `json:"items"`
}

// Manifest is the _SUCCESS.json document an executor writes last under
// OUTPUT_URL/<item key>/: the item, its results, when it ran.
type Manifest struct {
	Item       string           `json:"item"`
	Key        string           `json:"key"`
	Outputs    []ManifestOutput `json:"outputs"`
	StartedAt  time.Time        `json:"startedAt"`
	FinishedAt time.Time        `json:"finishedAt"`
	Executor   string           `json:"executor"`
	Version    string           `json:"version"`
}

// ManifestOutput is one uploaded result: its path under the item key, its
// size in bytes and its SHA-256 (hex).
type ManifestOutput struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ManifestName is the manifest's object name under the item key.
const ManifestName = "_SUCCESS.json"

// Headers of POST /v1/jobs: a client's Idempotency-Key (the IETF
// httpapi draft's header), and the answer's mark that it replays an
// earlier submission with the same key.
const (
	IdempotencyKeyHeader     = "Idempotency-Key"
	IdempotentReplayedHeader = "Idempotent-Replayed"
)

// OutputSHA256Header carries, on GET /v1/outputs/{item}?file=, the output's
// SHA-256 (hex) as its manifest records it, for the client to check.
const OutputSHA256Header = "Itemq-Output-Sha256"

// Scaling says why the manager runs as many jobs as it does (GET
// /v1/scaling): the inputs of its control loop, its decision c, how c was
// computed at the last update and why it last changed (docs/scaling.md).
type Scaling struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Queue      string `json:"queue"`
	// Lambda is the arrival rate (items/s), S the mean run time of an
	// attempt (s), Backlog the items waiting for a job.
	Lambda  float64 `json:"lambda"`
	S       float64 `json:"s"`
	Backlog int     `json:"backlog"`
	// Pending counts jobs created and not running yet (a pod waiting for a
	// node or its image, a Job suspended until Kueue admits it): they hold
	// a slot of c but are not capacity at work. Running counts jobs whose
	// attempt runs; RetryWaiting jobs waiting for their next attempt (they
	// hold no slot).
	Pending      int `json:"pending"`
	Running      int `json:"running"`
	RetryWaiting int `json:"retryWaiting"`
	// C is the parallelism: the most jobs at once now, within [Min, Max].
	C   int `json:"c"`
	Min int `json:"min"`
	Max int `json:"max"`
	// The settings of the control loop (MANAGER_TARGET_UTILIZATION,
	// MANAGER_DRAIN_TIME, MANAGER_SCALE_DOWN_DELAY, MANAGER_TARGET_WAIT), in seconds.
	TargetUtilization     float64 `json:"targetUtilization"`
	DrainTimeSeconds      float64 `json:"drainTimeSeconds"`
	ScaleDownDelaySeconds float64 `json:"scaleDownDelaySeconds"`
	// TargetWaitSeconds is MANAGER_TARGET_WAIT: c sized by Erlang C for
	// P(wait > it) ≤ 5 % rather than by ρ (absent: not set).
	TargetWaitSeconds float64 `json:"targetWaitSeconds,omitempty"`
	// PredictedWait is backlog·S/c, the wait of an item arriving now (s).
	PredictedWait float64 `json:"predictedWait"`
	// Reason is how c was computed at the last update (every second);
	// LastChange and LastChangeReason when, and why, c last changed.
	Reason           string     `json:"reason"`
	LastChange       *time.Time `json:"lastChange,omitempty"`
	LastChangeReason string     `json:"lastChangeReason,omitempty"`
}

// Summary answers GET /v1/summary: the queue at a glance (what itemq top
// shows).
type Summary struct {
	Kind       string        `json:"kind"`
	APIVersion string        `json:"apiVersion"`
	Queue      string        `json:"queue"`
	Counts     map[State]int `json:"counts"`
	// Lambda is the arrival rate (items/s), S the mean run time of an
	// attempt (s), Parallelism the current limit c, Active the jobs that
	// hold a slot, Backlog the items waiting for one.
	Lambda      float64 `json:"lambda"`
	S           float64 `json:"s"`
	Parallelism int     `json:"parallelism"`
	Active      int     `json:"active"`
	Backlog     int     `json:"backlog"`
	// PredictedWait is backlog·S/c, the wait of an item arriving now (s);
	// OldestWaiting the age of the oldest item waiting for a job (s).
	PredictedWait float64 `json:"predictedWait"`
	OldestWaiting float64 `json:"oldestWaiting"`
	// Items the source holds; SourceError the last full listing's error.
	Items       int    `json:"items"`
	SourceError string `json:"sourceError,omitempty"`
	Leader      bool   `json:"leader"`
	Synced      bool   `json:"synced"`
}
