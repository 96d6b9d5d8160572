package itemapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// JobsClient talks to a manager's status API (jobs, submit, cancel,
// retry, logs, outputs) with the same transport, retries and
// errors as Client.
type JobsClient struct{ c *Client }

// NewJobsClient returns a client of the manager at baseURL (e.g.
// "http://127.0.0.1:8090"). The options are Client's.
func NewJobsClient(baseURL string, opts ...ClientOption) (*JobsClient, error) {
	c, err := NewClient(baseURL, opts...)
	if err != nil {
		return nil, err
	}
	return &JobsClient{c: c}, nil
}

// JobsPath is the status API's path of an item's job.
func JobsPath(item string) string { return "/v1/jobs/" + EscapeName(item) }

// List returns one page of jobs sorted by item, filtered by state when it
// is not empty; limit 0 lets the server choose; the page's Continue fetches
// the next one.
func (j *JobsClient) List(ctx context.Context, state State, limit int, continueToken string) (*JobStatusList, error) {
	return j.ListPrefix(ctx, state, "", limit, continueToken)
}

// ListPrefix is List of the items whose names start with prefix.
func (j *JobsClient) ListPrefix(ctx context.Context, state State, prefix string, limit int, continueToken string) (*JobStatusList, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if continueToken != "" {
		q.Set("continue", continueToken)
	}
	var l JobStatusList
	if err := j.c.call(ctx, request{method: http.MethodGet, path: "/v1/jobs", query: q, idempotent: true, maxBody: MaxListResponseBytes}, &l); err != nil {
		return nil, err
	}
	if l.Items == nil {
		l.Items = []JobStatus{}
	}
	return &l, nil
}

// Get returns the status of one item's job; IsNotFound is true of the error
// when the manager knows nothing of the item.
func (j *JobsClient) Get(ctx context.Context, item string) (*JobStatus, error) {
	if err := ValidateName(item); err != nil {
		return nil, NewStatus(ReasonBadRequest, "get job %q: %v", item, err)
	}
	var st JobStatus
	if err := j.c.call(ctx, request{method: http.MethodGet, path: JobsPath(item), idempotent: true, maxBody: MaxResponseBytes}, &st); err != nil {
		return nil, err
	}
	if st.Item != item {
		return nil, fmt.Errorf("GET %s: answer is the job of %q", JobsPath(item), st.Item)
	}
	return &st, nil
}

// Submit adds a job with the given data (a JSON document) through the
// manager's source and returns its status; its Item is the job's id to poll.
// Like Client.Submit it is retried only when the request cannot have
// reached the server.
func (j *JobsClient) Submit(ctx context.Context, data json.RawMessage) (*JobStatus, error) {
	return j.SubmitWithKey(ctx, data, "")
}

// SubmitWithKey is Submit with an Idempotency-Key (none when key is ""):
// the manager answers every request with the same key and body with the
// same job, and a different body with a Conflict error. With a key the
// request is retried after any temporary failure, as that cannot make a
// second job.
func (j *JobsClient) SubmitWithKey(ctx context.Context, data json.RawMessage, key string) (*JobStatus, error) {
	return j.SubmitWith(ctx, data, SubmitOptions{Key: key})
}

// SubmitOptions of SubmitWith.
type SubmitOptions struct {
	// Key is an Idempotency-Key ("" for none; see SubmitWithKey).
	Key string
	// Priority, when set, is written into the data's priority field by the
	// manager (POST /v1/jobs?priority=N; a manager without
	// MANAGER_PRIORITY_FIELD answers BadRequest).
	Priority *int
}

// SubmitWith is Submit with options.
func (j *JobsClient) SubmitWith(ctx context.Context, data json.RawMessage, o SubmitOptions) (*JobStatus, error) {
	if !json.Valid(data) {
		return nil, NewStatus(ReasonBadRequest, "submit job: data is not valid JSON")
	}
	req := request{method: http.MethodPost, path: "/v1/jobs", body: data, maxBody: MaxResponseBytes}
	if o.Key != "" {
		req.header = http.Header{IdempotencyKeyHeader: {o.Key}}
		req.idempotent = true
	}
	if o.Priority != nil {
		req.query = url.Values{"priority": {strconv.Itoa(*o.Priority)}}
	}
	var st JobStatus
	if err := j.c.call(ctx, req, &st); err != nil {
		return nil, err
	}
	if strings.TrimSpace(st.Item) == "" {
		return nil, fmt.Errorf("POST /v1/jobs: the answer names no item")
	}
	return &st, nil
}

// Wait returns the status of an item's job as soon as it has finished
// (State.Finished), or after d (at most the server's bound, 5 minutes by
// default) when it has not: a long poll. Call it again to wait longer.
func (j *JobsClient) Wait(ctx context.Context, item string, d time.Duration) (*JobStatus, error) {
	if err := ValidateName(item); err != nil {
		return nil, NewStatus(ReasonBadRequest, "wait for job %q: %v", item, err)
	}
	var st JobStatus
	q := url.Values{"wait": {d.String()}}
	if err := j.c.call(ctx, request{method: http.MethodGet, path: JobsPath(item), query: q, idempotent: true, maxBody: MaxResponseBytes, wait: d}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Cancel cancels the selected jobs (POST /v1/cancel).
func (j *JobsClient) Cancel(ctx context.Context, sel JobSelector) (*ActionResult, error) {
	return j.action(ctx, "/v1/cancel", sel)
}

// Retry runs the selected failed, dead or cancelled jobs again (POST
// /v1/retry), redriving dead-lettered items.
func (j *JobsClient) Retry(ctx context.Context, sel JobSelector) (*ActionResult, error) {
	return j.action(ctx, "/v1/retry", sel)
}

func (j *JobsClient) action(ctx context.Context, path string, sel JobSelector) (*ActionResult, error) {
	if err := sel.Validate(); err != nil {
		return nil, NewStatus(ReasonBadRequest, "%s: %v", path, err)
	}
	body, err := json.Marshal(sel)
	if err != nil {
		return nil, err
	}
	var res ActionResult
	// Cancelling or retrying twice does no harm: the second finds nothing
	// to do. A bulk action may take a while: allow a minute beyond the
	// request timeout.
	if err := j.c.call(ctx, request{method: http.MethodPost, path: path, body: body, idempotent: true, maxBody: MaxListResponseBytes, wait: time.Minute}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Logs opens the log of an item's job: all of it, or its last tail lines;
// with follow, the stream goes on until the job ends. The caller closes it.
func (j *JobsClient) Logs(ctx context.Context, item string, tail int, follow bool) (io.ReadCloser, error) {
	if err := ValidateName(item); err != nil {
		return nil, NewStatus(ReasonBadRequest, "logs of job %q: %v", item, err)
	}
	q := url.Values{}
	if tail > 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := j.c.open(ctx, "/v1/logs/"+EscapeName(item), q)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Outputs returns the manifest of an item's results (its _SUCCESS.json).
func (j *JobsClient) Outputs(ctx context.Context, item string) (*Manifest, error) {
	if err := ValidateName(item); err != nil {
		return nil, NewStatus(ReasonBadRequest, "outputs of job %q: %v", item, err)
	}
	var m Manifest
	if err := j.c.call(ctx, request{method: http.MethodGet, path: "/v1/outputs/" + EscapeName(item), idempotent: true, maxBody: MaxListResponseBytes}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Output opens one output file of an item's results, streamed through the
// manager, with its size and its SHA-256 as the manifest records it. The
// caller closes it.
func (j *JobsClient) Output(ctx context.Context, item, file string) (rc io.ReadCloser, size int64, sha256 string, err error) {
	if err := ValidateName(item); err != nil {
		return nil, 0, "", NewStatus(ReasonBadRequest, "output of job %q: %v", item, err)
	}
	resp, err := j.c.open(ctx, "/v1/outputs/"+EscapeName(item), url.Values{"file": {file}})
	if err != nil {
		return nil, 0, "", err
	}
	return resp.Body, resp.ContentLength, resp.Header.Get(OutputSHA256Header), nil
}

// Scaling returns the state of the manager's control loop (GET
// /v1/scaling).
func (j *JobsClient) Scaling(ctx context.Context) (*Scaling, error) {
	var s Scaling
	if err := j.c.call(ctx, request{method: http.MethodGet, path: "/v1/scaling", idempotent: true, maxBody: MaxResponseBytes}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Summary returns the queue at a glance (GET /v1/summary).
func (j *JobsClient) Summary(ctx context.Context) (*Summary, error) {
	var s Summary
	if err := j.c.call(ctx, request{method: http.MethodGet, path: "/v1/summary", idempotent: true, maxBody: MaxResponseBytes}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
