// Package pool is the pool execution model: long-running workers take item
// after item from the manager, each under a lease, instead of a process,
// container or Kubernetes Job being started for every item. A pod's start
// is then paid once per worker, not once per item (docs/pool.md).
//
// The manager's side is a local.Launcher (Launcher): the local runner's
// record, retries, history, logs and cancel are the pool's too; an attempt
// is offered to the workers and waits, PhasePending, until one takes it.
// The workers' side is Work, which executor.Main runs when ITEMQ_POOL_URL
// is set: it leases an attempt, runs the executor (its own program, once
// per item, with the executor contract's environment), sends its output
// and heartbeats, and reports the exit code. Workers come from a Workers
// provisioner: processes on this machine (Processes), or a Deployment on
// Kubernetes (runner/kube). The protocol, over HTTP with a bearer token:
//
//	POST /v1/pool/lease                    {"worker":"w"} → 200 Lease | 204 (nothing within the wait)
//	POST /v1/pool/leases/{id}/heartbeat    the output since the last → 200 Beat | 410 (lease gone: stop)
//	POST /v1/pool/leases/{id}/result       Result → 204 | 410
//
// A worker that cannot renew its lease stops the attempt within the lease's
// TTL (SIGTERM, then SIGKILL after the grace period); the manager declares
// the worker lost only after TTL + grace without a heartbeat (the attempt
// fails and is retried), and offers an attempt interrupted by its own
// restart only once TTL + grace have passed since it started, so an item
// never runs twice at once.
package pool

import "encoding/json"

// Paths of the protocol.
const (
	PathPrefix = "/v1/pool/"
	pathLease  = PathPrefix + "lease"
	pathLeases = PathPrefix + "leases/"
)

// Environment of a worker (set by its provisioner).
const (
	EnvURL    = "ITEMQ_POOL_URL"    // the manager's base URL; its presence makes an executor a worker
	EnvToken  = "ITEMQ_POOL_TOKEN"  // the bearer token (MANAGER_POOL_TOKEN)
	EnvWorker = "ITEMQ_POOL_WORKER" // the worker's name (default: the pod's or host's name and the pid)
)

// LeaseRequest asks for an attempt.
type LeaseRequest struct {
	Worker string `json:"worker"`
}

// Lease is an attempt a worker has taken.
type Lease struct {
	ID      string            `json:"id"`
	Queue   string            `json:"queue"`
	Job     string            `json:"job"`
	Item    string            `json:"item"`
	Attempt int               `json:"attempt"`
	Doc     json.RawMessage   `json:"doc"` // the item document: WORK_ITEM_FILE's contents
	Env     map[string]string `json:"env"` // the executors' environment (MANAGER_JOB_ENV_*), below the contract's
	// TTLSeconds: a lease not renewed for this long is lost, on both sides.
	TTLSeconds float64 `json:"ttlSeconds"`
	// GraceSeconds: how long a stopped attempt gets between SIGTERM and
	// SIGKILL; the manager waits it out before it runs the item again.
	GraceSeconds float64 `json:"graceSeconds"`
}

// Beat answers a heartbeat.
type Beat struct {
	// Cancel: the job was cancelled; stop the attempt and report how it
	// ended.
	Cancel bool `json:"cancel,omitempty"`
}

// Result is how an attempt ended.
type Result struct {
	ExitCode int `json:"exitCode"`
	// Error: the attempt could not run (the executor did not start, or
	// was killed by a signal); then ExitCode is -1.
	Error string `json:"error,omitempty"`
}
