package pool

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/itemq/itemq/internal/runner/local"
)

// LauncherConfig configures the manager's side of the pool.
type LauncherConfig struct {
	Queue string
	// Env is the executors' environment (MANAGER_JOB_ENV_*), sent with
	// every lease; the contract's variables are added by the worker.
	Env map[string]string
	// Token is the workers' bearer token (MANAGER_POOL_TOKEN); required.
	Token string
	// TTL: a lease not renewed for this long is lost (default 15s).
	TTL time.Duration
	// Wait bounds a lease request's long poll (default 20s).
	Wait time.Duration
	// Grace: how long a stopped attempt gets between SIGTERM and SIGKILL
	// on its worker (MANAGER_GRACE; default 10s). A worker cut off from
	// the manager has stopped its attempt TTL + Grace after its last
	// heartbeat: only then is the attempt lost, and run again.
	Grace time.Duration
	Log   *slog.Logger
}

// Launcher is the manager's side of the pool: a local.Launcher that offers
// each attempt to the workers and serves the protocol (Handler).
type Launcher struct {
	cfg     LauncherConfig
	log     *slog.Logger
	started time.Time

	mu      sync.Mutex
	offers  []*lease          // waiting for a worker, oldest first
	leases  map[string]*lease // taken, by id
	waiting map[string]int    // workers in a lease request now: idle
	changed chan struct{}     // closed and replaced when an offer is added
	closed  chan struct{}     // closed by Close: lease requests end
	once    sync.Once
}

type lease struct {
	Lease
	taken    chan struct{} // closed when a worker takes it
	ended    chan Result   // the worker's result (buffered)
	log      local.AttemptLog
	worker   string
	lastBeat time.Time
	cancel   bool
	gone     bool // Launch returned: the lease is no more
}

// MinTokenLen is the shortest MANAGER_POOL_TOKEN accepted.
const MinTokenLen = 16

// NewLauncher checks the configuration.
func NewLauncher(cfg LauncherConfig) (*Launcher, error) {
	if len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("the pool needs a token of at least %d characters (MANAGER_POOL_TOKEN): its workers are handed items and the executors' environment", MinTokenLen)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 20 * time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Launcher{cfg: cfg, log: cfg.Log, started: time.Now(), leases: map[string]*lease{},
		waiting: map[string]int{}, changed: make(chan struct{}), closed: make(chan struct{})}, nil
}

// Close ends the lease requests waiting now and answers later ones 503:
// the manager is stopping (its restart serves them again).
func (l *Launcher) Close() { l.once.Do(func() { close(l.closed) }) }

// Idle names the workers waiting for an attempt now.
func (l *Launcher) Idle() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.waiting))
	for w := range l.waiting {
		out = append(out, w)
	}
	slices.Sort(out)
	return out
}

// Offered is the number of attempts waiting for a worker.
func (l *Launcher) Offered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.offers)
}

// Launch offers the attempt to the workers and waits for its end.
func (l *Launcher) Launch(ctx context.Context, a *local.Attempt) (int, error) {
	if a.Resumed {
		// The attempt the manager's restart interrupted may still run on
		// a worker until its lease, which no one renews now, expires and
		// the worker has stopped it.
		if d := l.cfg.TTL + l.cfg.Grace - time.Now().Sub(l.started); d > 0 {
			a.Log.Notef("waiting %v for the interrupted attempt's lease to expire", d.Round(time.Millisecond))
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return -1, ctx.Err()
			}
		}
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	ls := &lease{
		Lease: Lease{ID: hex.EncodeToString(id), Queue: l.cfg.Queue, Job: a.Job, Item: a.Item.Name, Attempt: a.Number,
			Doc: json.RawMessage(a.ItemDoc), Env: l.cfg.Env, TTLSeconds: l.cfg.TTL.Seconds(), GraceSeconds: l.cfg.Grace.Seconds()},
		taken: make(chan struct{}), ended: make(chan Result, 1), log: a.Log,
	}
	l.mu.Lock()
	l.offers = append(l.offers, ls)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	defer l.drop(ls)

	a.Log.Notef("waiting for a worker of the pool")
	select {
	case <-ls.taken:
	case <-ctx.Done():
		l.mu.Lock()
		taken := ls.worker != ""
		if !taken {
			ls.gone = true // no worker takes it now
		}
		l.mu.Unlock()
		if !taken {
			return -1, ctx.Err()
		}
	}
	l.mu.Lock()
	worker := ls.worker
	l.mu.Unlock()
	a.Log.Notef("taken by worker %s", worker)
	if a.Ran != nil {
		a.Ran("worker " + worker)
	}

	tick := time.NewTicker(max(l.cfg.TTL/5, 10*time.Millisecond))
	defer tick.Stop()
	var deadline <-chan time.Time // after a cancel: how long the worker gets
	done := ctx.Done()
	for {
		select {
		case res := <-ls.ended:
			if res.Error != "" {
				return -1, errors.New(res.Error)
			}
			return res.ExitCode, nil
		case <-done:
			if !errors.Is(context.Cause(ctx), local.ErrCancelled) && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// The manager is stopping: the lease goes with it, and the
				// worker stops the attempt at its next heartbeat.
				return -1, ctx.Err()
			}
			// Cancelled, or out of time (MANAGER_JOB_TIMEOUT): the worker
			// stops the attempt, and it ends when the worker says so — a
			// retry must not start beside it.
			l.mu.Lock()
			ls.cancel = true
			l.mu.Unlock()
			done = nil
			deadline = time.After(l.cfg.Grace + l.cfg.TTL)
		case <-deadline:
			return -1, fmt.Errorf("worker %s did not report the cancelled attempt's end within %v", worker, l.cfg.Grace+l.cfg.TTL)
		case <-tick.C:
			l.mu.Lock()
			since := time.Now().Sub(ls.lastBeat)
			l.mu.Unlock()
			// A worker cut off stops the attempt within TTL + grace.
			if since > l.cfg.TTL+l.cfg.Grace {
				return -1, fmt.Errorf("worker %s lost: no heartbeat for %v", worker, since.Round(time.Millisecond))
			}
		}
	}
}

// drop ends a lease: it is no longer offered, and its worker's heartbeats
// are answered 410.
func (l *Launcher) drop(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls.gone = true
	delete(l.leases, ls.ID)
	if i := slices.Index(l.offers, ls); i >= 0 {
		l.offers = slices.Delete(l.offers, i, i+1)
	}
}

// Handler serves the protocol under PathPrefix.
func (l *Launcher) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathLease, l.serveLease)
	mux.HandleFunc("POST "+pathLeases+"{id}/heartbeat", l.serveBeat)
	mux.HandleFunc("POST "+pathLeases+"{id}/result", l.serveResult)
	return l.auth(mux)
}

func (l *Launcher) auth(h http.Handler) http.Handler {
	want := []byte("Bearer " + l.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="itemq pool"`)
			httpError(w, http.StatusUnauthorized, "a pool worker's bearer token (ITEMQ_POOL_TOKEN = the manager's MANAGER_POOL_TOKEN) is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

const maxRequest = 1 << 20 // a heartbeat's output, or a small JSON body

func (l *Launcher) serveLease(w http.ResponseWriter, r *http.Request) {
	var req LeaseRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req); err != nil || req.Worker == "" || len(req.Worker) > 253 || strings.ContainsAny(req.Worker, "\n\r") {
		httpError(w, http.StatusBadRequest, `want {"worker":"<name>"}, a name of one line and at most 253 bytes`)
		return
	}
	select {
	case <-l.closed:
		httpError(w, http.StatusServiceUnavailable, "the manager is stopping")
		return
	default:
	}
	t := time.NewTimer(l.cfg.Wait)
	defer t.Stop()
	l.mu.Lock()
	l.waiting[req.Worker]++
	defer func() {
		l.mu.Lock()
		if l.waiting[req.Worker]--; l.waiting[req.Worker] <= 0 {
			delete(l.waiting, req.Worker)
		}
		l.mu.Unlock()
	}()
	for {
		for len(l.offers) > 0 && l.offers[0].gone {
			l.offers = l.offers[1:]
		}
		if len(l.offers) > 0 {
			ls := l.offers[0]
			l.offers = l.offers[1:]
			ls.worker = req.Worker
			ls.lastBeat = time.Now()
			l.leases[ls.ID] = ls
			close(ls.taken)
			body := ls.Lease
			l.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(body)
			return
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
			l.mu.Lock()
		case <-t.C:
			w.WriteHeader(http.StatusNoContent)
			return
		case <-l.closed:
			httpError(w, http.StatusServiceUnavailable, "the manager is stopping")
			return
		case <-r.Context().Done():
			return
		}
	}
}

// leaseOf is the lease a request names, renewed; nil (and 410 answered) if
// it is gone.
func (l *Launcher) leaseOf(w http.ResponseWriter, r *http.Request) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[r.PathValue("id")]
	if ls == nil || ls.gone {
		httpError(w, http.StatusGone, "no such lease: it expired, the job was stopped, or the manager restarted; stop the attempt")
		return nil
	}
	ls.lastBeat = time.Now()
	return ls
}

func (l *Launcher) serveBeat(w http.ResponseWriter, r *http.Request) {
	out, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil {
		httpError(w, http.StatusBadRequest, "read the output: "+err.Error())
		return
	}
	if len(out) > maxRequest {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("at most %d bytes of output per heartbeat", maxRequest))
		return
	}
	ls := l.leaseOf(w, r)
	if ls == nil {
		return
	}
	// Launch returns (and the job log closes) only after drop, which takes
	// the lock: the log is open while it is held here.
	l.mu.Lock()
	if !ls.gone && len(out) > 0 {
		_, _ = ls.log.Write(out)
	}
	cancel := ls.cancel
	l.mu.Unlock()
	writeJSON(w, Beat{Cancel: cancel})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (l *Launcher) serveResult(w http.ResponseWriter, r *http.Request) {
	var res Result
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&res); err != nil {
		httpError(w, http.StatusBadRequest, `want {"exitCode":n} or {"exitCode":-1,"error":"…"}`)
		return
	}
	ls := l.leaseOf(w, r)
	if ls == nil {
		return
	}
	select {
	case ls.ended <- res:
	default: // a retried report: the first stands
	}
	w.WriteHeader(http.StatusNoContent)
}
