package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/itemq/itemq/internal/inputallow"
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
	// RetryAt is set while the job waits (PhasePending) for its next
	// attempt after a failed one, and zero otherwise: such a job runs
	// nothing and does not count as active work. The local and container
	// runners set it when the backoff starts and clear it when the next
	// attempt starts; the Kubernetes runner sets it (best effort, to the
	// time it saw the state) while the Job has failed pods and no active
	// one, i.e. during the Job controller's backoff.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// Cancelled: the job was stopped by Runner.Cancel (then Phase is
	// PhaseFailed and Error "cancelled"); it is never retried.
	Cancelled bool `json:"cancelled,omitempty"`
	// History is the job's attempts, oldest first, the last MaxHistory of
	// them (runners that keep it in the record; see Historian).
	History []itemapi.Attempt `json:"history,omitempty"`
}

// MaxHistory bounds Job.History.
const MaxHistory = 20

// AppendHistory appends an attempt to a job's history, keeping the last
// MaxHistory.
func (j *Job) AppendHistory(a itemapi.Attempt) {
	j.History = append(j.History, a)
	if n := len(j.History); n > MaxHistory {
		j.History = append([]itemapi.Attempt(nil), j.History[n-MaxHistory:]...)
	}
}

// Historian is a runner that reads a job's attempts from elsewhere than
// its record (the Kubernetes runner: from the Job's pods).
type Historian interface {
	History(ctx context.Context, item string) ([]itemapi.Attempt, error)
}

// LogStreamer is a runner that serves a job's log itself (the Kubernetes
// runner: the pod log of the latest attempt), rather than a file
// (LogPather). tail > 0 keeps the last lines; follow streams until the
// attempt ends.
type LogStreamer interface {
	Logs(ctx context.Context, item string, tail int, follow bool) (io.ReadCloser, error)
}

// Active reports whether the job holds a slot of the parallelism: it is
// not finished and not waiting for a retry.
func (j *Job) Active() bool { return !j.Phase.Finished() && j.RetryAt.IsZero() }

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
	// Cancel stops the job's running attempt, or its wait for a retry, for
	// good: the job ends PhaseFailed with Cancelled set and Error
	// "cancelled", and is not retried. Cancelling a finished job returns nil
	// and changes nothing; an unknown item returns an error wrapping
	// ErrNotFound.
	Cancel(ctx context.Context, item string) error
}

// ErrNotFound is wrapped by the errors of Cancel for an item without a job.
var ErrNotFound = errors.New("no such job")

// CancelledError is the Error of a cancelled job.
const CancelledError = "cancelled"

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

// InputAllowEnv is the executor's variable that confines what an item's
// data.url and data.path may read (docs/security.md); the manager sets it
// from MANAGER_INPUT_ALLOW and its in-process source.
const InputAllowEnv = inputallow.Env

// ItemHash is the first 10 hex digits of sha256(item name): the item's label
// value and the suffix of its job name.
func ItemHash(item string) string {
	sum := sha256.Sum256([]byte(item))
	return hex.EncodeToString(sum[:])[:10]
}

// JobName is the deterministic name of an item's job: "<queue>-<ItemHash>".
// A second create of the same name is refused by every runner, so an item
// never gets two jobs, even across manager crashes. It is the first of
// JobNames: a runner that finds it taken by another item (a hash
// collision: likely somewhere among a million items, as it has 40 bits)
// uses the next.
func JobName(queue, item string) string {
	return queue + "-" + ItemHash(item)
}

// JobNames are the candidate names of an item's job, in the order a runner
// tries them: JobName, then 20 and then 32 hex digits of the item's hash
// (the queue name shortened if needed to stay within a DNS label). Each is
// deterministic, so a restarted runner finds the name it used.
func JobNames(queue, item string) []string {
	sum := sha256.Sum256([]byte(item))
	h := hex.EncodeToString(sum[:])
	names := []string{JobName(queue, item)}
	for _, n := range []int{20, 32} {
		q := queue
		if len(q)+1+n > 63 {
			q = strings.TrimRight(q[:63-1-n], "-")
		}
		names = append(names, q+"-"+h[:n])
	}
	return names
}

// ResolveJobName is the first of names that no other item holds: owner
// reports the item a name belongs to ("" if free). ok is false when every
// candidate is taken by another item.
func ResolveJobName(names []string, item string, owner func(name string) string) (string, bool) {
	for _, n := range names {
		if o := owner(n); o == "" || o == item {
			return n, true
		}
	}
	return "", false
}

// EnvVar is one variable of an executor's environment.
type EnvVar struct{ Name, Value string }

// EnvSpec is what ExecutorEnv needs to know about one step of one attempt.
type EnvSpec struct {
	Queue, Job string
	// Attempt is 1 for the first attempt; 0 when the runner cannot know it
	// when it builds the environment (Kubernetes: ITEMQ_ATTEMPT is then
	// left out; see docs/executors.md).
	Attempt     int
	Step, Steps int // 1..Steps; Steps is 1 without a pipeline
	// Paths as the executor sees them (in a container: ItemFile, InputDir,
	// OutputDir).
	ItemFile, InputDir, OutputDir string
	// Base is the user's environment for executors (MANAGER_JOB_ENV_*,
	// without the prefix). The runner's own variables win over it.
	Base map[string]string
}

// ExecutorEnv is the environment of an executor, sorted by name: the one
// definition of the executor contract (docs/executors.md), used by every
// runner.
//
//   - Base, but OUTPUT_URL only on the last step, and Base's INPUT_DIR only
//     on step 1;
//   - WORK_ITEM_FILE, OUTPUT_DIR; INPUT_DIR (steps 2..n: the previous
//     step's OUTPUT_DIR);
//   - ITEMQ_QUEUE, ITEMQ_JOB_NAME, ITEMQ_ATTEMPT (unless 0), ITEMQ_STEP,
//     ITEMQ_STEPS.
func ExecutorEnv(s EnvSpec) []EnvVar {
	steps := max(s.Steps, 1)
	step := min(max(s.Step, 1), steps)
	env := make(map[string]string, len(s.Base)+9)
	for k, v := range s.Base {
		env[k] = v
	}
	if step < steps {
		delete(env, "OUTPUT_URL")
	}
	if step > 1 {
		env["INPUT_DIR"] = s.InputDir
	}
	env["WORK_ITEM_FILE"] = s.ItemFile
	env["OUTPUT_DIR"] = s.OutputDir
	env["ITEMQ_QUEUE"] = s.Queue
	env["ITEMQ_JOB_NAME"] = s.Job
	if s.Attempt > 0 {
		env["ITEMQ_ATTEMPT"] = strconv.Itoa(s.Attempt)
	} else {
		delete(env, "ITEMQ_ATTEMPT")
	}
	env["ITEMQ_STEP"] = strconv.Itoa(step)
	env["ITEMQ_STEPS"] = strconv.Itoa(steps)
	out := make([]EnvVar, 0, len(env))
	for k, v := range env {
		out = append(out, EnvVar{k, v})
	}
	slices.SortFunc(out, func(a, b EnvVar) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// EnvStrings is env as KEY=VALUE strings (for os/exec).
func EnvStrings(env []EnvVar) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = e.Name + "=" + e.Value
	}
	return out
}

// LogPather is a runner that keeps each job's output in a file.
type LogPather interface {
	LogPath(item string) string
}

// Sizer is a runner whose capacity follows the manager's parallelism c
// (the pool: its workers). The manager calls SetParallelism with c on
// every turn of its scale loop; it must not block.
type Sizer interface {
	SetParallelism(c int)
}
