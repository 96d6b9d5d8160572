// Package queue is itemq's manager: a level-triggered reconciler that keeps
// one job per item of a source, through a Runner (local processes,
// containers, or Kubernetes Jobs), within a concurrency limit that follows
// the load, and tells the source when each item is done.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

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
	// ScaleDownDelay: the parallelism shrinks by one step at most this often (default 30s).
	ScaleDownDelay time.Duration
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
	Log       *slog.Logger
}

// Manager reconciles a source's items with a runner's jobs.
type Manager struct {
	cfg     Config
	src     Source
	runner  Runner
	log     *slog.Logger
	scaler  *Scaler
	limiter *rate.Limiter
	met     *metrics

	mu         sync.Mutex
	present    map[string]time.Time // items the source has → when first seen
	jobs       map[string]*Job      // the runner's records (and placeholders just started)
	gone       map[string]time.Time // finished jobs whose item left the source → since when
	ackedAt    map[string]time.Time // when this process acknowledged an item (absent: before it started)
	backs      map[string]int       // times an item was still listed after its acknowledgement
	fifo       []string             // items waiting for a job, oldest first (may hold stale names)
	head       int
	queued     map[string]struct{} // the live entries of fifo
	inflight   map[string]struct{} // being started now
	unfinished int                 // jobs not finished
	limit      int                 // parallelism c
	synced     bool
	noAck      bool // the source cannot archive: the runner's records are the only record
	acking     map[string]struct{}
	ackq       []string
	ackWake    chan struct{}
	wake       chan struct{}
	// active: this manager dispatches, acknowledges and forgets (the
	// default). A passive one (a standby replica) only tracks the source
	// and the runner and serves the status API; see SetActive.
	active   bool
	deferred []string // forgets put off while passive
}

// New returns a manager. Run starts it.
func New(cfg Config, src Source, runner Runner) *Manager {
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
	if cfg.ScaleDownDelay == 0 {
		cfg.ScaleDownDelay = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if cfg.CreateRate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.CreateRate), max(cfg.CreateBurst, 1))
	}
	m := &Manager{
		cfg: cfg, src: src, runner: runner, log: cfg.Log, limiter: lim,
		scaler: &Scaler{Min: cfg.MinActive, Max: cfg.MaxActive, Rho: cfg.TargetUtilization,
			DrainTime: cfg.DrainTime, ScaleDownDelay: cfg.ScaleDownDelay},
		present:  map[string]time.Time{},
		jobs:     map[string]*Job{},
		gone:     map[string]time.Time{},
		ackedAt:  map[string]time.Time{},
		backs:    map[string]int{},
		queued:   map[string]struct{}{},
		inflight: map[string]struct{}{},
		acking:   map[string]struct{}{},
		ackWake:  make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		active:   true,
	}
	m.limit = max(cfg.MinActive, 1)
	m.met = newMetrics(m)
	return m
}

// Run runs the manager until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	jobs, err := m.runner.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("list the runner's jobs: %w", err)
	}
	m.mu.Lock()
	for i := range jobs {
		m.setJobLocked(jobs[i])
		if j := jobs[i]; j.Phase.Finished() && j.Acked == "" {
			m.queueAckLocked(j.Item)
		}
	}
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
	for i := 0; i < ackWorkers; i++ {
		spawn("acks", m.ackLoop)
	}
	for i := 0; i < m.cfg.DispatchWorkers; i++ {
		spawn("dispatch", m.dispatchLoop)
	}
	<-ctx.Done()
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
	delay := time.Second
	for {
		err := m.src.Watch(ctx, m.onEvent)
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("watching the source failed; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (m *Manager) onEvent(ev itemapi.WatchEvent) error {
	now := time.Now()
	switch ev.Type {
	case itemapi.Added:
		m.mu.Lock()
		forget := m.itemAddedLocked(ev.Name, now)
		m.mu.Unlock()
		m.forget(forget)
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
			m.forget(name)
		}
		m.reconcile(now)
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
	if _, ok := m.present[name]; ok {
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
		if _, left := m.gone[name]; left {
			// It was archived and is back (e.g. the same file dropped again):
			// new work.
			delete(m.gone, name)
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
	delete(m.queued, name)
	if j := m.jobs[name]; j != nil && j.Phase.Finished() {
		m.gone[name] = now
	}
}

// SetActive switches the manager between active (the default: it starts
// jobs, acknowledges finished items and drops old records) and passive (it
// only follows the source and the runner and serves the status API, e.g. a
// replica that is not the elected leader). It may be called before Run.
// Becoming active reconciles at once.
func (m *Manager) SetActive(active bool) {
	m.mu.Lock()
	was := m.active
	m.active = active
	var deferred []string
	if active {
		deferred, m.deferred = m.deferred, nil
	}
	m.mu.Unlock()
	if active && !was {
		m.log.Info("manager active: dispatching and acknowledging")
		for _, item := range deferred {
			m.forget(item)
		}
		m.reconcile(time.Now())
	} else if !active && was {
		m.log.Info("manager passive: following the source and the runner only")
	}
	m.signal()
	m.ackSignal()
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

// maxBacks bounds how often an item listed after its acknowledgement runs again.
const maxBacks = 3

// forget drops a finished job whose item came back, then queues the item.
func (m *Manager) forget(item string) {
	if item == "" {
		return
	}
	m.mu.Lock()
	if !m.active {
		m.deferred = append(m.deferred, item)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	if err := m.runner.Forget(context.Background(), item); err != nil {
		m.log.Warn("cannot drop the old job of an item that came back; it will not run again", "item", item, "err", err)
		return
	}
	m.mu.Lock()
	if j := m.jobs[item]; j != nil && j.Phase.Finished() {
		delete(m.jobs, item)
	}
	if _, ok := m.present[item]; ok && m.jobs[item] == nil {
		m.log.Info("item is back after it was archived; running it again", "item", item)
		m.enqueueLocked(item)
	}
	m.mu.Unlock()
	m.signal()
}

// reconcile is the level-triggered pass, O(items + jobs): every item without
// a job waits for one; every finished job is acknowledged; records of items
// long gone are dropped.
func (m *Manager) reconcile(now time.Time) {
	start := time.Now()
	var expired []string
	m.mu.Lock()
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
	if m.cfg.Retention > 0 && m.active {
		for name, since := range m.gone {
			if now.Sub(since) > m.cfg.Retention {
				expired = append(expired, name)
			}
		}
	}
	m.mu.Unlock()
	m.met.reconcile.Observe(time.Since(start).Seconds())
	for _, name := range expired {
		if err := m.runner.Forget(context.Background(), name); err != nil {
			m.log.Warn("cannot drop an expired job record", "item", name, "err", err)
			continue
		}
		m.mu.Lock()
		if _, back := m.present[name]; !back {
			delete(m.jobs, name)
			delete(m.gone, name)
		}
		m.mu.Unlock()
	}
	m.signal()
	m.ackSignal()
}

// Reconcile runs one reconcile pass now (for tests and benchmarks) and
// returns its duration.
func (m *Manager) Reconcile() time.Duration {
	start := time.Now()
	m.reconcile(start)
	return time.Since(start)
}

func (m *Manager) resyncLoop(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.resync(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("full resync failed", "err", err)
		}
	}
}

// resync lists the source and the runner in full and reconciles.
func (m *Manager) resync(ctx context.Context) error {
	start := time.Now()
	names, err := m.src.List(ctx)
	if err != nil {
		return fmt.Errorf("list the source: %w", err)
	}
	jobs, err := m.runner.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("list the runner's jobs: %w", err)
	}
	now := time.Now()
	listed := make(map[string]struct{}, len(names))
	var forgets []string
	m.mu.Lock()
	// Jobs: the runner's list is the truth, except placeholders just made
	// (their record may not have reached the runner's list yet).
	seen := make(map[string]struct{}, len(jobs))
	for i := range jobs {
		seen[jobs[i].Item] = struct{}{}
		m.setJobLocked(jobs[i])
	}
	for name, j := range m.jobs {
		if _, ok := seen[name]; !ok && now.Sub(j.CreatedAt) > time.Minute {
			m.deleteJobLocked(name)
		}
	}
	for _, n := range names {
		listed[n] = struct{}{}
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
		m.forget(f)
	}
	m.reconcile(now)
	m.met.resync.Observe(time.Since(start).Seconds())
	return nil
}

// ---- dispatch ----

func (m *Manager) enqueueLocked(name string) {
	if _, ok := m.queued[name]; ok {
		return
	}
	if _, ok := m.inflight[name]; ok {
		return
	}
	m.queued[name] = struct{}{}
	m.fifo = append(m.fifo, name)
}

// popLocked takes the oldest waiting item, if the parallelism allows.
func (m *Manager) popLocked() (string, bool) {
	if !m.active || m.unfinished+len(m.inflight) >= m.limit {
		return "", false
	}
	for m.head < len(m.fifo) {
		name := m.fifo[m.head]
		m.fifo[m.head] = ""
		m.head++
		if _, ok := m.queued[name]; !ok {
			continue // stale: the item left, or was queued again later
		}
		delete(m.queued, name)
		if _, ok := m.present[name]; !ok || m.jobs[name] != nil {
			continue
		}
		m.compactLocked()
		return name, true
	}
	m.compactLocked()
	return "", false
}

func (m *Manager) compactLocked() {
	if m.head > 1024 && m.head > len(m.fifo)/2 {
		m.fifo = append([]string(nil), m.fifo[m.head:]...)
		m.head = 0
	}
}

func (m *Manager) dispatchLoop(ctx context.Context) error {
	for {
		m.mu.Lock()
		name, ok := m.popLocked()
		if ok {
			m.inflight[name] = struct{}{}
		}
		m.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-m.wake:
				continue
			}
		}
		m.signal() // let another worker look for more
		m.dispatch(ctx, name)
	}
}

// dispatch starts the job of one item.
func (m *Manager) dispatch(ctx context.Context, name string) {
	retry := false
	defer func() {
		m.mu.Lock()
		delete(m.inflight, name)
		if retry && ctx.Err() == nil {
			time.AfterFunc(time.Second, func() {
				m.mu.Lock()
				if _, ok := m.present[name]; ok && m.jobs[name] == nil {
					m.enqueueLocked(name)
				}
				m.mu.Unlock()
				m.signal()
			})
		}
		m.mu.Unlock()
		m.signal()
	}()
	if err := m.limiter.Wait(ctx); err != nil {
		return
	}
	gctx, cancel := context.WithTimeout(ctx, time.Minute)
	it, err := m.src.Get(gctx, name)
	cancel()
	if err != nil {
		if itemapi.IsNotFound(err) {
			m.log.Debug("item vanished before its job started", "item", name)
			m.mu.Lock()
			m.itemDeletedLocked(name, time.Now())
			m.mu.Unlock()
			return
		}
		if ctx.Err() == nil {
			m.log.Warn("cannot read the item; will retry", "item", name, "err", err)
			retry = true
		}
		return
	}
	err = m.runner.Start(ctx, it)
	now := time.Now()
	switch {
	case err == nil:
	case errors.Is(err, ErrAlreadyExists):
		m.log.Debug("job already exists", "item", name)
	default:
		if ctx.Err() == nil {
			m.log.Warn("cannot start the job; will retry", "item", name, "err", err)
			m.met.startErrors.Inc()
			retry = true
		}
		return
	}
	m.mu.Lock()
	if m.jobs[name] == nil {
		m.setJobLocked(Job{Item: name, Name: JobName(m.cfg.Queue, name), Phase: PhasePending, CreatedAt: now})
	}
	seen := m.present[name]
	m.mu.Unlock()
	if err == nil {
		m.met.started.Inc()
		if !seen.IsZero() {
			m.met.dispatchLatency.Observe(now.Sub(seen).Seconds())
		}
		m.log.Debug("job started", "item", name)
	}
}

// ---- runner side ----

// setJobLocked records a job, keeping the count of unfinished ones.
func (m *Manager) setJobLocked(j Job) {
	old := m.jobs[j.Item]
	if old != nil && !old.Phase.Finished() {
		m.unfinished--
	}
	if !j.Phase.Finished() {
		m.unfinished++
	}
	jc := j
	m.jobs[j.Item] = &jc
}

func (m *Manager) deleteJobLocked(item string) {
	if old := m.jobs[item]; old != nil {
		if !old.Phase.Finished() {
			m.unfinished--
		}
		delete(m.jobs, item)
	}
}

// onJob receives the runner's updates.
func (m *Manager) onJob(j Job) {
	m.mu.Lock()
	old := m.jobs[j.Item]
	if old != nil && old.Acked != "" && j.Acked == "" {
		j.Acked = old.Acked
	}
	m.setJobLocked(j)
	wasRunning := old != nil && old.Phase == PhaseRunning
	switch {
	case j.Phase.Finished() && (old == nil || !old.Phase.Finished()):
		if j.LastDuration > 0 {
			m.scaler.Served(j.LastDuration)
		}
		if j.Phase == PhaseSucceeded {
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
	case j.Phase == PhasePending && wasRunning:
		// An attempt failed; the runner retries after a backoff.
		if j.LastDuration > 0 {
			m.scaler.Served(j.LastDuration)
		}
		m.met.retries.Inc()
		m.log.Info("attempt failed; the job will retry", "item", j.Item, "attempts", j.Attempts, "err", j.Error)
	}
	m.mu.Unlock()
	m.signal()
	m.ackSignal()
}

// ---- acknowledgements ----

func (m *Manager) queueAckLocked(item string) {
	if m.noAck {
		return
	}
	if _, ok := m.acking[item]; ok {
		return
	}
	m.acking[item] = struct{}{}
	m.ackq = append(m.ackq, item)
}

func (m *Manager) ackSignal() {
	select {
	case m.ackWake <- struct{}{}:
	default:
	}
}

// ackWorkers acknowledge finished items concurrently.
const ackWorkers = 4

func (m *Manager) ackLoop(ctx context.Context) error {
	for {
		m.mu.Lock()
		var item string
		if len(m.ackq) > 0 && m.active {
			item = m.ackq[0]
			m.ackq = m.ackq[1:]
		}
		more := len(m.ackq) > 0 && m.active
		m.mu.Unlock()
		if more {
			m.ackSignal() // another worker takes the next one
		}
		if item == "" {
			select {
			case <-ctx.Done():
				return nil
			case <-m.ackWake:
				continue
			}
		}
		m.ack(ctx, item)
	}
}

// ack tells the source a finished job's outcome, then records that it did.
func (m *Manager) ack(ctx context.Context, item string) {
	m.mu.Lock()
	j := m.jobs[item]
	if j == nil || !j.Phase.Finished() || j.Acked != "" || m.noAck {
		delete(m.acking, item)
		m.mu.Unlock()
		return
	}
	outcome := itemapi.Succeeded
	if j.Phase == PhaseFailed {
		outcome = itemapi.Failed
	}
	m.mu.Unlock()

	if s, ok := m.runner.(Syncer); ok {
		if err := s.Sync(ctx); err != nil {
			if ctx.Err() == nil {
				m.log.Error("cannot record a finished job durably; will retry before acknowledging it", "item", item, "err", err)
				m.retryAck(item)
			}
			return
		}
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	err := m.src.Ack(actx, item, outcome)
	cancel()
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
		m.acking = map[string]struct{}{}
		m.ackq = nil
		m.mu.Unlock()
		return
	default:
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("cannot acknowledge the item; will retry", "item", item, "outcome", outcome, "err", err)
		m.retryAck(item)
		return
	}
	if err := m.runner.MarkAcked(ctx, item, outcome); err != nil && ctx.Err() == nil {
		m.log.Warn("cannot record the acknowledgement", "item", item, "err", err)
	}
	m.mu.Lock()
	delete(m.acking, item)
	if j := m.jobs[item]; j != nil {
		j.Acked = outcome
	}
	m.ackedAt[item] = time.Now()
	m.mu.Unlock()
	if outcome == itemapi.Failed {
		m.met.dead.Inc()
	}
	m.log.Debug("item acknowledged", "item", item, "outcome", outcome)
}

func (m *Manager) retryAck(item string) {
	time.AfterFunc(5*time.Second, func() {
		m.mu.Lock()
		m.ackq = append(m.ackq, item)
		m.mu.Unlock()
		m.ackSignal()
	})
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
	m.mu.Unlock()
	m.met.observe(obs)
	if obs.Changed {
		m.log.Info("parallelism changed", "c", obs.C, "lambda", obs.Lambda, "S", obs.S, "backlog", backlog, "reason", obs.Reason)
		m.signal()
	}
}
