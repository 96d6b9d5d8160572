package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/itemq/itemq/itemapi"
)

// Phase is where a job is in its life, as its runner reports it.
type Phase string

const (
	// PhasePending: created, not running (waiting for a slot, for a node, or
	// for the backoff before its next attempt).
	PhasePending Phase = "Pending"
	// PhaseRunning: an attempt is running.
	PhaseRunning Phase = "Running"
	// PhaseSucceeded: an attempt succeeded. Final.
	PhaseSucceeded Phase = "Succeeded"
	// PhaseFailed: the job gave up (exit code 2, or out of attempts). Final.
	PhaseFailed Phase = "Failed"
)

// Finished reports whether the phase is final.
func (p Phase) Finished() bool { return p == PhaseSucceeded || p == PhaseFailed }

// Job is a runner's record of the job of one item. The runner's list of
// jobs, finished ones included, is the manager's record of what was started
// (on Kubernetes the Jobs themselves; locally a crash-safe store).
type Job struct {
	Item       string          `json:"item"`
	Name       string          `json:"name"`
	Phase      Phase           `json:"phase"`
	Attempts   int             `json:"attempts"`
	CreatedAt  time.Time       `json:"createdAt"`
	StartedAt  time.Time       `json:"startedAt,omitzero"`
	FinishedAt time.Time       `json:"finishedAt,omitzero"`
	Error      string          `json:"error,omitempty"`
	ExitCode   int             `json:"exitCode,omitempty"`
	Acked      itemapi.Outcome `json:"acked,omitempty"`
	// LastDuration is the run time of the last finished attempt (for the
	// scaler's S).
	LastDuration time.Duration `json:"lastDuration,omitempty"`
}

// Runner starts and tracks jobs. Each job processes one item, making up to
// the configured number of attempts itself (as a Kubernetes Job does with
// its backoffLimit): exit code 0 succeeds, 2 fails at once, anything else is
// retried until the attempts run out.
type Runner interface {
	// Run does the runner's background work (informers, process reaping)
	// until ctx ends. Updates are delivered to notify, one call per change,
	// never concurrently.
	Run(ctx context.Context, notify func(Job)) error
	// Start starts the job of an item. Starting an item that already has a
	// job (running or finished) must not start a second one: it returns
	// ErrAlreadyExists.
	Start(ctx context.Context, item *itemapi.Item) error
	// Jobs lists every job the runner knows, finished ones included.
	Jobs(ctx context.Context) ([]Job, error)
	// MarkAcked records that the source was told the job's outcome.
	MarkAcked(ctx context.Context, item string, outcome itemapi.Outcome) error
	// Forget drops the record of a finished job (its item left the source
	// long ago). Forgetting an unknown item is not an error.
	Forget(ctx context.Context, item string) error
}

// Syncer is a runner whose records reach durable storage after its
// updates are delivered. The manager calls Sync before it acknowledges a
// finished job to the source, so the record that the job finished is never
// lost while the source has already forgotten the item.
type Syncer interface {
	Sync(ctx context.Context) error
}

// ErrAlreadyExists is returned by Runner.Start for an item that already has
// a job.
var ErrAlreadyExists = errors.New("job already exists")

// Exit codes of the executor contract.
const (
	ExitOK        = 0
	ExitRetryable = 1
	ExitPermanent = 2
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// MaxQueueNameLen keeps "<queue>-<10 hex>" within a DNS label (63).
const MaxQueueNameLen = 63 - 11

// ValidateQueueName checks that a queue name is a DNS label short enough to
// prefix job names.
func ValidateQueueName(q string) error {
	if len(q) > MaxQueueNameLen {
		return fmt.Errorf("queue name %q is %d characters; at most %d", q, len(q), MaxQueueNameLen)
	}
	if !dnsLabel.MatchString(q) {
		return fmt.Errorf("queue name %q is not a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit)", q)
	}
	return nil
}

// What the runners that start jobs elsewhere (the Kubernetes and container
// runners) put on those jobs, the same in each, so that an executor image
// sees one contract wherever it runs.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by" // = ManagedBy
	ManagedBy      = "itemq"
	LabelQueue     = "itemq.io/queue"     // the queue's name
	LabelItemHash  = "itemq.io/item-hash" // ItemHash(item)
	LabelItem      = "itemq.io/item"      // the full item name (an annotation on Kubernetes)

	ItemDir   = "/var/run/itemq/item"  // where the item file is mounted, read-only
	ItemFile  = ItemDir + "/item.json" // WORK_ITEM_FILE
	InputDir  = "/var/run/itemq/in"    // INPUT_DIR of steps 2..n of a pipeline
	OutputDir = "/var/run/itemq/out"   // OUTPUT_DIR of every step of a pipeline
)

// ItemHash is the first 10 hex digits of sha256(item name): the item's label
// value and the suffix of its job name.
func ItemHash(item string) string {
	sum := sha256.Sum256([]byte(item))
	return hex.EncodeToString(sum[:])[:10]
}

// JobName is the deterministic name of an item's job: "<queue>-<ItemHash>".
// A second create of the same name is refused by every runner, so an item
// never gets two jobs, even across manager crashes.
func JobName(queue, item string) string {
	return queue + "-" + ItemHash(item)
}
