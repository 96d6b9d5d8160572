// Package manager is itemq's control loop: a level-triggered reconciler that
// keeps one job per item of a source, through a runner.Runner (local
// processes, containers, or Kubernetes Jobs), within a concurrency limit
// that follows the load, and tells the source when each item is done.
//
// Work flows through two keyed, rate-limited work queues (client-go's
// workqueue): dispatch (items waiting for a job, FIFO, deduplicated; a
// failed start is retried with backoff) and acks (finished jobs whose
// outcome the source has not been told yet, retried with backoff). Run
// owns every goroutine and every timer; nothing outlives it.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"

	"github.com/itemq/itemq/internal/fairq"
	"github.com/itemq/itemq/internal/runner"
	"github.com/itemq/itemq/itemapi"
)

// Config of a Manager.
type Config struct {
	Queue string
	// MinActive and MaxActive bound the parallelism.
	MinActive, MaxActive int
	// TargetUtilization is ρ of the scaling formula (default 0.9).
	TargetUtilization float64
	// DrainTime is T, the time within which a backlog should drain (default 5s).
	DrainTime time.Duration
	// ScaleDownDelay: the parallelism shrinks by one step at most this often
	// (default 30s; PoolScaleDownDelay with Pool).
	ScaleDownDelay time.Duration
	// Pool: the runner keeps c workers, busy or idle (MANAGER_EXECUTION=pool):
	// the scaler averages λ over PoolWindow and S with PoolAlpha, grows by
	// the backlog before S is known (Scaler.GrowByBacklog), and shrinks a
	// step every PoolScaleDownDelay unless ScaleDownDelay is set
	// (docs/scaling.md).
	Pool bool
	// TargetWait, when set, sizes the parallelism for a wait rather than a
	// utilisation (Scaler.TargetWait: Erlang C, P(wait > TargetWait) ≤
	// 5 %); with Pool, the parallelism then shrinks a step every
	// TargetWaitScaleDownDelay unless ScaleDownDelay is set
	// (MANAGER_TARGET_WAIT, docs/scaling.md).
	TargetWait time.Duration
	// CreateRate bounds job creations per second (0: unbounded); CreateBurst is the bucket size.
	CreateRate  float64
	CreateBurst int
	// Resync is the period of the full listing of the source (default 30s).
	Resync time.Duration
	// Retention: the record of a finished job whose item left the source is
	// dropped after this long (default 7 days; 0 keeps records forever).
	Retention time.Duration
	// DispatchWorkers start jobs concurrently (default 8).
	DispatchWorkers int
	// OutputURL is where executors put results (for the status API).
	OutputURL string
	// RetryBase and RetryMax bound the backoff of a failed start or
	// acknowledgement (defaults 1s and 30s).
	RetryBase, RetryMax time.Duration
	// OnFinish, when set, is told of every completion event: a job
	// succeeded, failed, was dead-lettered or cancelled (event is one of
	// the Event* constants; id is the same for the same event of the same
	// job, also after a restart). It must not block. Only an active
	// manager calls it; when it starts or becomes active it replays the
	// events of jobs that finished within EventReplay (the receiver of
	// OnFinish drops the ones it delivered).
	OnFinish    func(event string, st itemapi.JobStatus, id string)
	EventReplay time.Duration
	// Fair orders the waiting items (priorities, fair share by key);
	// the zero Fair is FIFO.
	Fair Fair
	Log  *slog.Logger
}

// Completion events (Config.OnFinish).
const (
	EventSucceeded = "succeeded"
	EventFailed    = "failed"
	EventDead      = "dead"
	EventCancelled = "cancelled"
)

// Manager reconciles a source's items with a runner's jobs.
type Manager struct {
	cfg     Config
	src     Source
	runner  runner.Runner
	log     *slog.Logger
	scaler  *Scaler
	limiter *rate.Limiter
	met     *metrics

	mu      sync.Mutex
	present map[string]time.Time     // items the source has → when first seen
	docs    map[string]*itemapi.Item // item documents a watch event carried, until the job starts
	jobs    map[string]*runner.Job   // the runner's records, as it reported them (and starts not yet reported)
	gone    map[string]time.Time     // finished jobs whose item left the source → since when
	ackedAt map[string]time.Time     // when this process acknowledged an item (absent: before it started)
	backs   map[string]int           // times an item was still listed after its acknowledgement
	queued  map[string]struct{}      // items waiting for a job (the backlog)
	// starting: items a dispatch worker took from the backlog and is
	// starting; a listing meanwhile does not put them back in it.
	starting map[string]struct{}
	// resetting: items whose finished job a retry or a forget is dropping
	// so that they run again; only that one caller queues them.
	resetting map[string]struct{}
	// resetAt: when a retry or a forget dropped an item's job; a listing
	// of the runner that began before then is stale for that item.
	resetAt map[string]time.Time
	// expected: new names of redriven items, which the source answered
	// but has not listed yet → since when; a start that finds such an item
	// missing waits for it rather than drop it.
	expected map[string]time.Time
	// acking: items whose acknowledgement is being made → closed when it
	// is done (a retry waits for it: it decides on the outcome recorded).
	acking map[string]chan struct{}
	// unclassified: waiting items the classify workers are reading
	// (fair.go), since when the set was last empty.
	unclassified      map[string]struct{}
	unclassifiedSince time.Time
	// cancelled: items cancelled before their job started (lifecycle.go).
	cancelled map[string]*cancelMark
	lastObs   Observation // the scaler's last
	// lastChange and lastChangeReason: when and why c last changed.
	lastChange       time.Time
	lastChangeReason string
	// changed is closed (and replaced) whenever a job's state changes.
	changed  chan struct{}
	inflight int // slots reserved by dispatch workers
	active   int // jobs that hold a slot (runner.Job.Active)
	limit    int // parallelism c
	synced   bool
	// sourceErr is the error of the last full listing (nil: it succeeded).
	sourceErr error
	noAck     bool // the source cannot archive: the runner's records are the only record
	// leader: this manager dispatches, acknowledges and forgets (the
	// default). A passive one (a standby replica) only tracks the source
	// and the runner and serves the status API; see SetActive.
	leader   bool
	deferred []string // forgets put off while passive

	// Made by Run, shut down when it returns.
	dispatchQ workqueue.TypedRateLimitingInterface[string]
	fq        *fairq.Queue[string] // the dispatch queue's order
	// classifyQ: waiting items whose class (Config.Fair) needs their data
	// read first (fair.go); nil when Fair is off.
	classifyQ workqueue.TypedInterface[string]
	ackQ      workqueue.TypedRateLimitingInterface[string]

	wake    chan struct{} // a slot may be free, or the manager became active
	ackWake chan struct{} // the manager became active
	kick    chan struct{} // reconcile soon (after SetActive)
}

// New returns a manager. Run starts it.
func New(cfg Config, src Source, r runner.Runner) *Manager {
	if cfg.MaxActive <= 0 {
		cfg.MaxActive = 1
	}
	if cfg.MinActive < 0 {
		cfg.MinActive = 0
	}
	if cfg.MinActive > cfg.MaxActive {
		cfg.MinActive = cfg.MaxActive
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.DispatchWorkers <= 0 {
		cfg.DispatchWorkers = 8
	}
	if cfg.DrainTime == 0 {
		cfg.DrainTime = 5 * time.Second
	}
	if cfg.ScaleDownDelay == 0 && cfg.Pool && cfg.TargetWait > 0 {
		cfg.ScaleDownDelay = TargetWaitScaleDownDelay
	}
	if cfg.ScaleDownDelay == 0 && cfg.Pool {
		cfg.ScaleDownDelay = PoolScaleDownDelay
	}
	if cfg.ScaleDownDelay == 0 {
		cfg.ScaleDownDelay = 30 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if cfg.CreateRate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.CreateRate), max(cfg.CreateBurst, 1))
	}
	m := &Manager{
		cfg: cfg, src: src, runner: r, log: cfg.Log, limiter: lim,
		scaler:    newScaler(cfg),
		present:   map[string]time.Time{},
		docs:      map[string]*itemapi.Item{},
		jobs:      map[string]*runner.Job{},
		gone:      map[string]time.Time{},
		ackedAt:   map[string]time.Time{},
		backs:     map[string]int{},
		queued:    map[string]struct{}{},
		starting:  map[string]struct{}{},
		resetting: map[string]struct{}{},
		resetAt:   map[string]time.Time{},
		expected:  map[string]time.Time{},
		acking:    map[string]chan struct{}{},

		unclassified: map[string]struct{}{},
		cancelled:    map[string]*cancelMark{},
		changed:      make(chan struct{}),
		wake:         make(chan struct{}, 1),
		ackWake:      make(chan struct{}, 1),
		kick:         make(chan struct{}, 1),
		leader:       true,
		fq:           fairq.New[string](cfg.Fair.queueConfig()),
	}
	m.limit = max(cfg.MinActive, 1)
	m.met = newMetrics(m)
	return m
}

// rateLimiter is the backoff of retried starts and acknowledgements:
// exponential from RetryBase to RetryMax, per item.
func (m *Manager) rateLimiter() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[string](m.cfg.RetryBase, m.cfg.RetryMax)
}

// Run runs the manager until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	jobs, err := m.runner.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("list the runner's jobs: %w", err)
	}
	// The dispatch queue is client-go's, in the order of m.fq.
	dq := workqueue.NewTypedRateLimitingQueueWithConfig(m.rateLimiter(), workqueue.TypedRateLimitingQueueConfig[string]{
		Name: "dispatch",
		DelayingQueue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{
			Name:  "dispatch",
			Queue: workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "dispatch", Queue: m.fq}),
		}),
	})
	aq := workqueue.NewTypedRateLimitingQueueWithConfig(m.rateLimiter(), workqueue.TypedRateLimitingQueueConfig[string]{Name: "acks"})
	if m.cfg.Fair.enabled() {
		m.classifyQ = workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "classify"})
	}
	m.mu.Lock()
	m.dispatchQ, m.ackQ = dq, aq
	var running []string
	for i := range jobs {
		m.setJobLocked(jobs[i])
		if jobs[i].Active() {
			running = append(running, jobs[i].Item)
		}
		if j := jobs[i]; j.Phase.Finished() && j.Acked == "" {
			m.queueAckLocked(j.Item)
		}
	}
	for name := range m.queued { // submitted before Run
		m.pushLocked(name)
	}
	m.replayEventsLocked()
	m.mu.Unlock()
	m.log.Info("manager starting", "queue", m.cfg.Queue, "jobs", len(jobs), "maxActive", m.cfg.MaxActive)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	spawn := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				select {
				case errc <- fmt.Errorf("%s: %w", name, err):
				default:
				}
				cancel()
			}
		}()
	}
	spawn("runner", func(ctx context.Context) error { return m.runner.Run(ctx, m.onJob) })
	spawn("watch", m.watchLoop)
	spawn("resync", m.resyncLoop)
	spawn("scaler", m.scaleLoop)
	for range ackWorkers {
		spawn("acks", m.ackLoop)
	}
	if m.classifyQ != nil {
		// The jobs found running count against their keys' caps before
		// anything new starts.
		m.classifyRunning(ctx, running)
	}
	for range m.cfg.DispatchWorkers {
		spawn("dispatch", m.dispatchLoop)
	}
	if m.classifyQ != nil {
		for range classifyWorkers {
			spawn("classify", m.classifyLoop)
		}
	}
	<-ctx.Done()
	if m.classifyQ != nil {
		m.classifyQ.ShutDown()
	}
	dq.ShutDown()
	aq.ShutDown()
	wg.Wait()
	m.log.Info("manager stopped")
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (m *Manager) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// ---- source side ----

func (m *Manager) watchLoop(ctx context.Context) error {
	b := itemapi.Backoff{Min: time.Second, Max: 30 * time.Second}
	for n := 0; ; n++ {
		err := m.src.Watch(ctx, func(ev itemapi.WatchEvent) error { return m.onEvent(ctx, ev) })
		if ctx.Err() != nil {
			return nil
		}
		delay := b.Delay(n)
		m.log.Warn("watching the source failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

func (m *Manager) onEvent(ctx context.Context, ev itemapi.WatchEvent) error {
	now := time.Now()
	switch ev.Type {
	case itemapi.Added:
		m.mu.Lock()
		if _, known := m.present[ev.Name]; !known && ev.Item != nil && m.jobs[ev.Name] == nil {
			m.docs[ev.Name] = ev.Item // before it waits: its class is read from it
		}
		forget := m.itemAddedLocked(ev.Name, now)
		m.mu.Unlock()
		m.forget(ctx, forget)
		m.scale(now)
		m.signal()
	case itemapi.Deleted:
		m.mu.Lock()
		m.itemDeletedLocked(ev.Name, now)
		m.mu.Unlock()
	case itemapi.Synced:
		m.mu.Lock()
		first := !m.synced
		m.synced = true
		var back []string
		if first {
			// Records acknowledged before this process started, of items the
			// source lists now: the acknowledgement did not stick.
			for name := range m.present {
				if m.stillListedLocked(name, time.Time{}.Add(1)) {
					back = append(back, name)
				}
			}
		}
		m.mu.Unlock()
		for _, name := range back {
			m.forget(ctx, name)
		}
		m.reconcileAndExpire(ctx, now)
		m.scale(now)
		if first {
			m.mu.Lock()
			m.log.Info("source synced", "items", len(m.present), "jobs", len(m.jobs), "waiting", len(m.queued))
			m.mu.Unlock()
		}
		m.signal()
	}
	return nil
}

// itemAddedLocked records an item the source has. It returns an item whose
// old finished job must be forgotten (the item came back after it left).
func (m *Manager) itemAddedLocked(name string, now time.Time) (forget string) {
	_, expected := m.expected[name]
	delete(m.expected, name)
	if _, ok := m.present[name]; ok {
		if expected {
			m.present[name] = now // listed from now on (a listing older than this is stale for it)
		}
		return ""
	}
	m.present[name] = now
	j := m.jobs[name]
	switch {
	case j == nil:
		if m.synced {
			m.scaler.Arrival(now)
		}
		m.enqueueLocked(name)
	case j.Phase.Finished():
		if _, busy := m.resetting[name]; busy {
			delete(m.gone, name)
			return "" // a retry drops the old job and queues it
		}
		if _, left := m.gone[name]; left {
			delete(m.gone, name)
			if j.Acked == "" && !m.noAck {
				// Its acknowledgement is still pending: the source was never
				// told, so it did not archive it; it listed it again (an
				// ambassador that restarted reads its unacknowledged messages
				// again). The same item: the acknowledgement goes on.
				return ""
			}
			// It was archived and is back (e.g. the same file dropped again):
			// new work.
			return name
		}
	}
	return ""
}

func (m *Manager) itemDeletedLocked(name string, now time.Time) {
	if _, ok := m.present[name]; !ok {
		return
	}
	delete(m.present, name)
	delete(m.expected, name)
	delete(m.queued, name)
	delete(m.docs, name)
	if m.jobs[name] == nil {
		m.fq.Forget(name) // a job's record keeps its class (the status API shows it)
	}
	if j := m.jobs[name]; j != nil && j.Phase.Finished() {
		m.gone[name] = now
	}
}

// SetActive switches the manager between active (the default: it starts
// jobs, acknowledges finished items and drops old records) and passive (it
// only follows the source and the runner and serves the status API, e.g. a
// replica that is not the elected leader). It may be called before Run and
// from any goroutine. Becoming active reconciles at once (in Run).
func (m *Manager) SetActive(active bool) {
	m.mu.Lock()
	was := m.leader
	m.leader = active
	m.mu.Unlock()
	if active && !was {
		m.mu.Lock()
		m.replayEventsLocked()
		m.mu.Unlock()
		m.log.Info("manager active: dispatching and acknowledging")
		select {
		case m.kick <- struct{}{}:
		default:
		}
	} else if !active && was {
		m.log.Info("manager passive: following the source and the runner only")
	}
	m.signal()
	select {
	case m.ackWake <- struct{}{}:
	default:
	}
}

// stillListedLocked reports whether a listing that began at since, and
// holds the item, shows that an acknowledgement of it did not stick: the
// source answered it, then lost it (an ambassador that died before it
// committed, e.g. a Kafka offset). Such an item runs again as new work
// (its executor finds _SUCCESS.json and skips) and is acknowledged again.
// After maxBacks returns the source is taken to keep items it says it
// archived, and the item is left alone.
func (m *Manager) stillListedLocked(name string, since time.Time) bool {
	j := m.jobs[name]
	if j == nil || !j.Phase.Finished() || j.Acked == "" {
		return false
	}
	if at, ok := m.ackedAt[name]; ok && !at.Before(since) {
		return false // acknowledged after the listing began: it may be stale
	}
	m.backs[name]++
	if m.backs[name] > maxBacks {
		if m.backs[name] == maxBacks+1 {
			m.log.Warn("the source still lists an item it acknowledged several times; leaving it alone", "item", name, "times", maxBacks)
		}
		return false
	}
	m.log.Info("the source lists an item again after it was acknowledged; running and acknowledging it again", "item", name, "outcome", j.Acked)
	delete(m.ackedAt, name)
	return true
}

// maxExpectedWait bounds the wait for a redriven item's new name to be
// listed (another member of a consumer group may have taken it).
const maxExpectedWait = 5 * time.Minute

// maxBacks bounds how often an item listed after its acknowledgement runs again.
const maxBacks = 3

// forget drops a finished job whose item came back, then queues the item.
func (m *Manager) forget(ctx context.Context, item string) {
	if item == "" {
		return
	}
	m.mu.Lock()
	if !m.leader {
		m.deferred = append(m.deferred, item)
		m.mu.Unlock()
		return
	}
	if _, busy := m.resetting[item]; busy {
		m.mu.Unlock()
		return // a retry is dropping it already
	}
	m.resetting[item] = struct{}{}
	m.mu.Unlock()
	if err := m.runner.Forget(ctx, item); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("cannot drop the old job of an item that came back; it will not run again", "item", item, "err", err)
		}
		m.mu.Lock()
		delete(m.resetting, item)
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	delete(m.resetting, item)
	m.dropFinishedLocked(item, time.Now())
	if _, ok := m.present[item]; ok && m.jobs[item] == nil {
		m.log.Info("item is back after it was archived; running it again", "item", item)
		m.enqueueLocked(item)
	}
	m.mu.Unlock()
	m.signal()
}

// reconcileLocked is the level-triggered pass, O(items + jobs): every item
// without a job waits for one; every finished job is acknowledged. It
// returns the records of items long gone, to be dropped.
func (m *Manager) reconcileLocked(now time.Time) (expired []string) {
	for name := range m.present {
		if m.jobs[name] == nil {
			m.enqueueLocked(name)
		}
	}
	for name, j := range m.jobs {
		if !j.Phase.Finished() {
			continue
		}
		if _, ok := m.present[name]; !ok {
			if _, ok := m.gone[name]; !ok {
				m.gone[name] = now
			}
		}
		if j.Acked == "" {
			m.queueAckLocked(name)
		}
	}
	for name, c := range m.cancelled {
		if !c.acked {
			m.queueAckLocked(name)
		} else if _, ok := m.present[name]; !ok && m.cfg.Retention > 0 && now.Sub(c.at) > m.cfg.Retention {
			delete(m.cancelled, name)
		}
	}
	if m.cfg.Retention > 0 && m.leader {
		for name, since := range m.gone {
			if now.Sub(since) > m.cfg.Retention {
				expired = append(expired, name)
			}
		}
	}
	return expired
}

// reconcileAndExpire reconciles, then drops expired records.
func (m *Manager) reconcileAndExpire(ctx context.Context, now time.Time) {
	start := time.Now()
	m.mu.Lock()
	expired := m.reconcileLocked(now)
	m.mu.Unlock()
	m.met.reconcile.Observe(time.Since(start).Seconds())
	for _, name := range expired {
		if err := m.runner.Forget(ctx, name); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("cannot drop an expired job record", "item", name, "err", err)
			}
			continue
		}
		m.mu.Lock()
		if _, back := m.present[name]; !back {
			m.deleteJobLocked(name)
			delete(m.gone, name)
		}
		m.mu.Unlock()
	}
	m.signal()
}

// Reconcile runs the in-memory reconcile pass now (for tests and
// benchmarks) and returns its duration. Expired records are dropped by
// the next pass in Run.
func (m *Manager) Reconcile() time.Duration {
	start := time.Now()
	m.mu.Lock()
	m.reconcileLocked(start)
	m.mu.Unlock()
	m.signal()
	return time.Since(start)
}

func (m *Manager) resyncLoop(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
			// Became active: what was put off while passive, then a pass.
			m.mu.Lock()
			deferred := m.deferred
			m.deferred = nil
			m.mu.Unlock()
			for _, item := range deferred {
				m.forget(ctx, item)
			}
			m.reconcileAndExpire(ctx, time.Now())
		case <-t.C:
			if err := m.resync(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("full resync failed", "err", err)
			}
		}
	}
}

// resync lists the source and the runner in full and reconciles. What
// changed after a listing began is not judged by that listing: an item
// acknowledged or deleted meanwhile may still be in it, and a job started
// meanwhile may be missing from the runner's.
func (m *Manager) resync(ctx context.Context) error {
	start := time.Now()
	names, err := m.src.List(ctx)
	m.mu.Lock()
	m.sourceErr = err
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("list the source: %w", err)
	}
	jobsAt := time.Now()
	jobs, err := m.runner.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("list the runner's jobs: %w", err)
	}
	now := time.Now()
	listed := make(map[string]struct{}, len(names))
	var forgets []string
	m.mu.Lock()
	seen := make(map[string]struct{}, len(jobs))
	for i := range jobs {
		seen[jobs[i].Item] = struct{}{}
		if at, ok := m.resetAt[jobs[i].Item]; ok && !at.Before(jobsAt) {
			// Its job was dropped after the listing began (a retry): the
			// listing's job is the old one (its unacknowledged failure
			// would be told to the source, dead-lettering the item again).
			continue
		}
		m.updateJobLocked(jobs[i], true)
	}
	for name, at := range m.resetAt {
		if at.Before(jobsAt) {
			delete(m.resetAt, name) // no later listing can be older than it
		}
	}
	for name, j := range m.jobs {
		// A start recorded here before the runner was listed, yet missing
		// from its list, is gone (e.g. a Job deleted by hand).
		if _, ok := seen[name]; !ok && j.CreatedAt.Before(jobsAt) {
			m.deleteJobLocked(name)
		}
	}
	for _, n := range names {
		listed[n] = struct{}{}
		if at, ok := m.ackedAt[n]; ok && !at.Before(start) {
			continue // acknowledged while the listing ran: the listing is stale
		}
		if at, ok := m.gone[n]; ok && !at.Before(start) {
			continue // left the source while the listing ran
		}
		if f := m.itemAddedLocked(n, now); f != "" {
			forgets = append(forgets, f)
		} else if m.stillListedLocked(n, start) {
			forgets = append(forgets, n)
		}
	}
	for n, seenAt := range m.present {
		// Only what was there before the listing began can be missing from it.
		if _, ok := listed[n]; !ok && seenAt.Before(start) {
			m.itemDeletedLocked(n, now)
		}
	}
	m.mu.Unlock()
	for _, f := range forgets {
		m.forget(ctx, f)
	}
	m.reconcileAndExpire(ctx, now)
	m.met.resync.Observe(time.Since(start).Seconds())
	return nil
}

// ---- dispatch ----

func (m *Manager) enqueueLocked(name string) {
	if _, ok := m.queued[name]; ok {
		return
	}
	if _, ok := m.starting[name]; ok {
		return // a worker is starting its job
	}
	if _, ok := m.cancelled[name]; ok {
		return // cancelled before it started: it never does
	}
	m.queued[name] = struct{}{}
	m.classifyLocked(name, nil)
	if m.dispatchQ != nil {
		m.pushLocked(name)
	}
}

// reserve waits for a free slot of the parallelism and takes it. It
// returns false when ctx ends.
func (m *Manager) reserve(ctx context.Context) bool {
	for {
		m.mu.Lock()
		hold := m.classifyHoldLocked(time.Now())
		if m.leader && m.active+m.inflight < m.limit && len(m.queued) > 0 && hold == 0 {
			m.inflight++
			m.mu.Unlock()
			return true
		}
		m.mu.Unlock()
		var until <-chan time.Time
		if hold > 0 {
			until = time.After(hold)
		}
		select {
		case <-ctx.Done():
			return false
		case <-m.wake:
		case <-until:
		}
	}
}

func (m *Manager) release() {
	m.mu.Lock()
	m.inflight--
	m.mu.Unlock()
	m.signal()
}

func (m *Manager) dispatchLoop(ctx context.Context) error {
	for {
		if !m.reserve(ctx) {
			return nil
		}
		m.signal() // another worker may find another slot
		name, shutdown := m.dispatchQ.Get()
		if shutdown {
			m.release()
			return nil
		}
		if name == wakeItem {
			m.dispatchQ.Done(name)
			m.release()
			continue
		}
		m.mu.Lock()
		_, waiting := m.queued[name]
		_, cancelled := m.cancelled[name]
		ok := waiting && m.jobs[name] == nil && !cancelled
		if _, present := m.present[name]; !present {
			ok = false
		}
		delete(m.queued, name)
		if ok {
			m.starting[name] = struct{}{}
		}
		m.mu.Unlock()
		if ok {
			m.dispatch(ctx, name)
			m.mu.Lock()
			delete(m.starting, name)
			if mark := m.cancelled[name]; mark != nil && !mark.acked && m.jobs[name] == nil {
				m.queueAckLocked(name) // cancelled while it started, and not started
			}
			if j := m.jobs[name]; j == nil || !j.Active() {
				m.releaseLocked(name) // not started: no hold on its key's cap
			}
			m.mu.Unlock()
		} else {
			m.dispatchQ.Forget(name) // stale: it left, or already has a job
			m.mu.Lock()
			if j := m.jobs[name]; j == nil || !j.Active() {
				m.releaseLocked(name)
			}
			m.mu.Unlock()
		}
		m.dispatchQ.Done(name)
		m.release()
	}
}

// dispatch starts the job of one item; a failure puts it back in the queue
// with backoff.
func (m *Manager) dispatch(ctx context.Context, name string) {
	retry := func() {
		m.mu.Lock()
		_, present := m.present[name]
		if present && m.jobs[name] == nil && ctx.Err() == nil {
			m.queued[name] = struct{}{}
			m.dispatchQ.AddRateLimited(name)
		}
		m.mu.Unlock()
	}
	if err := m.limiter.Wait(ctx); err != nil {
		retry()
		return
	}
	m.mu.Lock()
	it := m.docs[name]
	m.mu.Unlock()
	if it == nil {
		gctx, cancel := context.WithTimeout(ctx, time.Minute)
		getAt := time.Now()
		var err error
		it, err = m.src.Get(gctx, name)
		cancel()
		if err != nil {
			if itemapi.IsNotFound(err) {
				m.mu.Lock()
				since, waiting := m.expected[name]
				listedAt, present := m.present[name]
				if (waiting && time.Since(since) < maxExpectedWait) || (present && listedAt.After(getAt)) {
					// Not listed yet, or listed while it was read: read again.
					m.mu.Unlock()
					m.log.Debug("redriven item not listed by the source yet; waiting for it", "item", name)
					retry()
					return
				}
				m.log.Debug("item vanished before its job started", "item", name)
				m.itemDeletedLocked(name, time.Now())
				m.mu.Unlock()
				m.dispatchQ.Forget(name)
				return
			}
			if ctx.Err() == nil {
				m.log.Warn("cannot read the item; will retry", "item", name, "err", err)
			}
			retry()
			return
		}
	}
	err := m.runner.Start(ctx, it)
	now := time.Now()
	switch {
	case err == nil:
	case errors.Is(err, runner.ErrAlreadyExists):
		m.log.Debug("job already exists", "item", name)
	default:
		if ctx.Err() == nil {
			m.log.Warn("cannot start the job; will retry", "item", name, "err", err)
			m.met.startErrors.Inc()
		}
		retry()
		return
	}
	m.dispatchQ.Forget(name)
	m.mu.Lock()
	delete(m.docs, name)
	if m.jobs[name] == nil {
		m.setJobLocked(runner.Job{Item: name, Name: runner.JobName(m.cfg.Queue, name), Phase: runner.PhasePending, CreatedAt: now})
	}
	seen := m.present[name]
	_, cancelled := m.cancelled[name]
	m.mu.Unlock()
	if cancelled && err == nil {
		// Cancelled while it was being started: the job exists now, so
		// its runner stops it and keeps the record.
		m.mu.Lock()
		delete(m.cancelled, name)
		m.mu.Unlock()
		if cerr := m.runner.Cancel(ctx, name); cerr != nil && ctx.Err() == nil {
			m.log.Warn("cannot cancel a job cancelled while it started", "item", name, "err", cerr)
		}
	}
	if err == nil {
		m.met.started.Inc()
		if !seen.IsZero() {
			m.met.dispatchLatency.Observe(now.Sub(seen).Seconds())
		}
		m.log.Debug("job started", "item", name)
	}
}

// ---- runner side ----

// setJobLocked records a job as the runner reports it, keeping the count
// of jobs that hold a slot.
func (m *Manager) setJobLocked(j runner.Job) {
	if old := m.jobs[j.Item]; old != nil && old.Active() {
		m.active--
	}
	switch {
	case j.Active():
		m.active++
		m.fq.Hold(j.Item) // against its key's cap (once; a popped item is held already)
	case !j.Phase.Finished():
		// Waiting for its next attempt: no slot of c, but still a job of
		// its key, whose retry the runner starts on its own — the key's
		// next item must not start beside it (MANAGER_FAIR_KEY_CAP).
		m.fq.Hold(j.Item)
	default:
		m.releaseLocked(j.Item)
	}
	jc := j
	m.jobs[j.Item] = &jc
	m.changedLocked()
}

// dropFinishedLocked drops an item's finished job so that it runs again
// (a retry, an item back after it was archived), noting when: a runner
// listing older than that must not bring the old job back (resync).
func (m *Manager) dropFinishedLocked(item string, now time.Time) {
	if j := m.jobs[item]; j != nil && j.Phase.Finished() {
		m.deleteJobLocked(item)
		m.resetAt[item] = now
	}
}

func (m *Manager) deleteJobLocked(item string) {
	if old := m.jobs[item]; old != nil {
		if old.Active() {
			m.active--
		}
		m.releaseLocked(item)
		m.fq.Forget(item) // if it comes back, its data is read again
		delete(m.jobs, item)
		m.changedLocked()
	}
}

// onJob receives the runner's updates.
func (m *Manager) onJob(j runner.Job) {
	m.mu.Lock()
	m.updateJobLocked(j, false)
	m.mu.Unlock()
	m.signal()
}

// updateJobLocked takes a job's state from the runner: an update, or a
// job of a listing (a resync). A listing may be older than updates already
// taken, so it never takes a job back from finished; and a finish seen
// first in a listing is a finish like any other (its event emitted, its
// ack queued), whenever the update itself comes. A finished job that a
// listing brings and the manager did not know is only recorded.
func (m *Manager) updateJobLocked(j runner.Job, listed bool) {
	old := m.jobs[j.Item]
	if old != nil && old.Phase.Finished() && !j.Phase.Finished() && old.Name == j.Name && old.CreatedAt.Equal(j.CreatedAt) {
		return // stale: this job has finished since
	}
	if listed && old == nil {
		m.setJobLocked(j)
		return
	}
	if old != nil && old.Acked != "" && j.Acked == "" {
		j.Acked = old.Acked
	}
	m.setJobLocked(j)
	wasRunning := old != nil && old.Phase == runner.PhaseRunning
	switch {
	case j.Phase.Finished() && (old == nil || !old.Phase.Finished()):
		if j.LastDuration > 0 {
			m.scaler.Served(j.LastDuration)
		}
		m.emitFinishedLocked(&j)
		if j.Phase == runner.PhaseSucceeded {
			m.met.succeeded.Inc()
		} else {
			m.met.failed.Inc()
			m.log.Warn("job failed", "item", j.Item, "job", j.Name, "attempts", j.Attempts, "err", j.Error)
		}
		if _, ok := m.present[j.Item]; !ok {
			m.gone[j.Item] = time.Now()
		}
		if j.Acked == "" {
			m.queueAckLocked(j.Item)
		}
	case j.Phase == runner.PhasePending && wasRunning:
		// An attempt failed; the runner retries after a backoff.
		if j.LastDuration > 0 {
			m.scaler.Served(j.LastDuration)
		}
		// The retry is work arriving again: the scaler counts it in λ, as
		// S counts every attempt (λ·S is the work offered).
		m.scaler.Arrival(time.Now())
		m.met.retries.Inc()
		m.log.Info("attempt failed; the job will retry", "item", j.Item, "attempts", j.Attempts, "err", j.Error)
	}
}

// ---- acknowledgements ----

func (m *Manager) queueAckLocked(item string) {
	if m.noAck || m.ackQ == nil {
		return
	}
	m.ackQ.Add(item)
}

// ackWorkers acknowledge finished items concurrently.
const ackWorkers = 4

func (m *Manager) ackLoop(ctx context.Context) error {
	for {
		// A passive manager takes nothing from the queue.
		for {
			m.mu.Lock()
			leader := m.leader
			m.mu.Unlock()
			if leader {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-m.ackWake:
			}
		}
		item, shutdown := m.ackQ.Get()
		if shutdown {
			return nil
		}
		m.mu.Lock()
		leader := m.leader
		m.mu.Unlock()
		if !leader {
			m.ackQ.Done(item)
			m.ackQ.Add(item) // for when it leads again
			continue
		}
		if m.ack(ctx, item) {
			m.ackQ.Forget(item)
		} else if ctx.Err() == nil {
			m.ackQ.AddRateLimited(item)
		}
		m.ackQ.Done(item)
	}
}

// ack tells the source a finished job's outcome, then records that it did.
// It returns false when it must be tried again.
func (m *Manager) ack(ctx context.Context, item string) bool {
	m.mu.Lock()
	if _, busy := m.resetting[item]; busy {
		// A retry is running it again: its old outcome is not to be told
		// (the retry queues the acknowledgement again if it fails).
		m.mu.Unlock()
		return true
	}
	j := m.jobs[item]
	mark := m.cancelled[item]
	if _, starting := m.starting[item]; starting && j == nil {
		// Its job is being created: the dispatch worker acknowledges it if
		// it ends up without one (a cancel meanwhile).
		m.mu.Unlock()
		return true
	}
	cancelledBeforeStart := j == nil && mark != nil && !mark.acked && !m.noAck
	finished := j != nil && j.Phase.Finished() && j.Acked == "" && !m.noAck
	if !cancelledBeforeStart && !finished {
		m.mu.Unlock()
		return true // nothing to tell
	}
	done := make(chan struct{})
	m.acking[item] = done
	defer func() {
		m.mu.Lock()
		delete(m.acking, item)
		m.mu.Unlock()
		close(done)
	}()
	if cancelledBeforeStart {
		m.mu.Unlock()
		return m.ackCancelled(ctx, item)
	}
	name, created := j.Name, j.CreatedAt
	outcome := itemapi.Succeeded
	switch {
	case j.Cancelled:
		outcome = itemapi.Cancelled
	case j.Phase == runner.PhaseFailed:
		outcome = itemapi.Failed
	}
	m.mu.Unlock()

	if s, ok := m.runner.(runner.Syncer); ok {
		if err := s.Sync(ctx); err != nil {
			if ctx.Err() == nil {
				m.log.Error("cannot record a finished job durably; will retry before acknowledging it", "item", item, "err", err)
			}
			return false
		}
	}
	outcome, err := m.ackSource(ctx, item, outcome)
	switch {
	case err == nil, itemapi.IsNotFound(err):
		// NotFound: it already left the source (acked before a crash, or
		// removed by someone); either way nothing is left to archive.
	case itemapi.IsMethodNotAllowed(err):
		m.mu.Lock()
		if !m.noAck {
			m.noAck = true
			m.log.Info("the source does not archive items; the manager's job records keep finished items from running again")
		}
		m.mu.Unlock()
		return true
	default:
		if ctx.Err() == nil {
			m.log.Warn("cannot acknowledge the item; will retry", "item", item, "outcome", outcome, "err", err)
		}
		return false
	}
	if err := m.runner.MarkAcked(ctx, item, outcome); err != nil && ctx.Err() == nil {
		m.log.Warn("cannot record the acknowledgement", "item", item, "err", err)
	}
	m.mu.Lock()
	if j := m.jobs[item]; j != nil && j.Name == name && j.CreatedAt.Equal(created) {
		j.Acked = outcome
		if outcome == itemapi.Failed {
			m.emitLocked(EventDead, j)
		}
	}
	m.ackedAt[item] = time.Now()
	m.changedLocked()
	m.mu.Unlock()
	if outcome == itemapi.Failed {
		m.met.dead.Inc()
	}
	m.log.Debug("item acknowledged", "item", item, "outcome", outcome)
	return true
}

// ackSource tells the source an outcome. An ambassador older than the
// cancelled outcome refuses it (400); the item is then acknowledged as
// failed, which every source dead-letters alike.
func (m *Manager) ackSource(ctx context.Context, item string, outcome itemapi.Outcome) (itemapi.Outcome, error) {
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := m.src.Ack(actx, item, outcome)
	if outcome == itemapi.Cancelled && itemapi.ReasonOf(err) == itemapi.ReasonBadRequest {
		m.log.Info("the source does not know the cancelled outcome; acknowledging the cancelled item as failed", "item", item)
		outcome = itemapi.Failed
		err = m.src.Ack(actx, item, outcome)
	}
	return outcome, err
}

// ackCancelled acknowledges an item cancelled before its job started.
func (m *Manager) ackCancelled(ctx context.Context, item string) bool {
	_, err := m.ackSource(ctx, item, itemapi.Cancelled)
	switch {
	case err == nil, itemapi.IsNotFound(err):
	case itemapi.IsMethodNotAllowed(err):
		m.mu.Lock()
		m.noAck = true
		m.mu.Unlock()
		return true
	default:
		if ctx.Err() == nil {
			m.log.Warn("cannot acknowledge the cancelled item; will retry", "item", item, "err", err)
		}
		return false
	}
	m.mu.Lock()
	if c := m.cancelled[item]; c != nil {
		c.acked = true
	}
	m.ackedAt[item] = time.Now()
	m.changedLocked()
	m.mu.Unlock()
	return true
}

// ---- scaling ----

func (m *Manager) scaleLoop(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	m.scale(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			m.scale(now)
		}
	}
}

func (m *Manager) scale(now time.Time) {
	m.mu.Lock()
	backlog := len(m.queued)
	m.mu.Unlock()
	obs := m.scaler.Update(now, backlog)
	m.mu.Lock()
	m.limit = obs.C
	m.lastObs = obs
	if obs.Changed {
		m.lastChange, m.lastChangeReason = now, obs.Reason
	}
	m.mu.Unlock()
	m.met.observe(obs)
	if s, ok := m.runner.(runner.Sizer); ok {
		s.SetParallelism(obs.C)
	}
	if obs.Changed {
		m.log.Info("parallelism changed", "c", obs.C, "lambda", obs.Lambda, "S", obs.S, "backlog", backlog, "reason", obs.Reason)
		m.signal()
	}
}
