// Package sim is a discrete-event simulator of one queue (issue 15): items
// arrive, wait, and are run by workers that a controller scales, on a
// virtual clock (no sleeps: a simulated day takes seconds of CPU). It runs
// the same workload, with the same random numbers, through itemq's real
// scaler (internal/manager.Scaler) and through the controllers people use
// instead (KEDA ScaledJob's strategies, an HPA on queue length, the
// hand-written RQ autoscaler, a fixed pool), and reports what a user
// feels (queueing delay, makespan) and pays (worker-seconds, pods that
// only wait).
//
// Three execution models, as the controllers run:
//   - JobPerItem (itemq, by default): a Job per item, created with its
//     item when the controller's limit c allows; its pod starts after a
//     start delay, runs the item and ends.
//   - JobPerMessage (KEDA ScaledJob): every poll the controller creates
//     Jobs; a Job's pod, when it starts, takes one waiting message (or
//     ends at once when there is none), runs it and ends.
//   - Pool (a Deployment scaled by an HPA, the RQ autoscaler, a fixed
//     pool): long-running workers take message after message; scaling
//     down removes pending workers first, then idle ones, then lets busy
//     ones finish their item and go.
//
// The queueing delay of an item is the time from its arrival to the start
// of its first attempt (a pod's start delay included). Worker-seconds are
// the seconds pods exist (pending, idle or busy), until the run's end.
package sim

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/itemq/itemq/internal/fairq"
)

// Model is how a controller's workers take items.
type Model int

// The execution models (see the package documentation).
const (
	JobPerItem Model = iota
	JobPerMessage
	Pool
)

// Workload is what arrives and how long it takes.
type Workload struct {
	Name string
	// Horizon is how long items arrive, in seconds.
	Horizon float64
	// Arrivals returns the arrival times, sorted, in [0, Horizon).
	Arrivals func(r *rand.Rand) []float64
	// MeanService is S (seconds) for an attempt that starts at t: a step
	// change of S is a function of t.
	MeanService func(t float64) float64
	// Shape draws a service time of mean 1 (exponential, lognormal,
	// Pareto...); an attempt runs MeanService(start)·Shape.
	Shape func(r *rand.Rand) float64
	// StartDelay draws a pod's time from creation to running (seconds).
	StartDelay func(r *rand.Rand) float64
	// MeanStartDelay is StartDelay's mean (for the bounds).
	MeanStartDelay float64
	// FailRate is the chance that an attempt fails; a failed attempt is
	// retried after RetryBackoff until MaxAttempts (then dead).
	FailRate     float64
	MaxAttempts  int
	RetryBackoff float64
	// Capacity is the most pods the cluster runs at once.
	Capacity int
	// Burst marks a workload whose makespan is the measure (the goal's
	// burst clause).
	Burst bool
	// Streams, when set, are the arrivals instead of Arrivals: several
	// streams of items, each of its own class (a tenant, a priority),
	// waiting in the order of Fair (the manager's fair dispatch, package
	// fairq). Result.Streams reports each.
	Streams []Stream
	Fair    fairq.Config
}

// Stream is one class of arrivals.
type Stream struct {
	Name     string
	Class    fairq.Class
	Arrivals func(r *rand.Rand) []float64
}

// StreamResult is one stream's share of a Result.
type StreamResult struct {
	Items                     int
	WaitP50, WaitP95, WaitMax float64
}

// Observed is what a controller sees when it is consulted.
type Observed struct {
	Now      float64
	Waiting  int // items waiting to start (not those in a retry backoff)
	InFlight int // items being run
	Pending  int // pods not started yet
	Pods     int // pods that exist (pending, idle or busy; not those draining)
	Idle     int // started pods without an item (Pool)
	Capacity int
}

// Controller decides the workers.
type Controller interface {
	Name() string
	Model() Model
	// Interval is how often Decide is called (seconds).
	Interval() float64
	// Decide returns, by model: JobPerItem, the most Jobs at once (c);
	// JobPerMessage, how many Jobs to create now; Pool, the workers
	// wanted.
	Decide(o Observed) int
	// Arrived and Served tell the controller what happened (itemq's
	// scaler measures λ and S from them; others ignore them).
	Arrived(t float64)
	Served(d float64)
}

// Warm is implemented by a Pool controller whose workers exist before the
// run starts (a fixed pool): they are started at time 0 with no delay.
type Warm interface{ WarmWorkers() int }

// Retrier is implemented by a controller told of each failed attempt's
// item back in the queue after its backoff (itemq's scaler counts it as
// an arrival).
type Retrier interface{ Retried(t float64) }

// Result is one run of one workload through one controller.
type Result struct {
	Workload, Controller   string
	Items, Succeeded, Dead int
	// Queueing delay, seconds (arrival → first start).
	WaitMean, WaitP50, WaitP95, WaitP99, WaitMax float64
	// HandedP95: the 95th percentile of arrival → the item handed to a
	// worker for its first attempt (a Job created with it, a started pod
	// or a pool worker taking it): the wait the controller causes, without
	// a pod's start that follows for a Job per item.
	HandedP95 float64
	// Makespan: from the first arrival to the last item's end.
	Makespan float64
	// WorkerSeconds: pods' lifetimes; PendingSeconds: the part before they
	// ran; BusySeconds: attempts' run times (the least any controller
	// can pay); BoundSeconds: BusySeconds plus one mean start delay per
	// attempt, the least a Job per attempt can pay.
	WorkerSeconds, PendingSeconds, BusySeconds, BoundSeconds float64
	// PoolBound: for a pool that an autoscaler sizes (Table fills it in),
	// the fewest worker-seconds of a pool planned with the trace known
	// that waits no longer at p95 (PoolBound).
	PoolBound float64
	// WarmMakespan: for a burst (Table fills it in), the shortest
	// makespan any controller reaches (WarmMakespan).
	WarmMakespan float64
	// Attempts run (retries included); LongestRun, the longest of them.
	Attempts   int
	LongestRun float64
	// IdleExits: Jobs that started, found no message and ended (KEDA).
	IdleExits int
	// Changes: how often the controller's decision (c or workers) changed.
	Changes int
	// MaxPods: the most pods at once.
	MaxPods int
	// C samples the decision over time (for plots): every SampleEvery s.
	C []Sample
	// Streams: each stream's queueing delay (Workload.Streams).
	Streams map[string]StreamResult
}

// Sample is the state at one time, for plots.
type Sample struct {
	T        float64
	Decision int
	Pods     int
	Waiting  int
}

// SampleEvery is the interval of Result.C.
const SampleEvery = 10.0

type item struct {
	stream   int
	arrival  float64
	handed   bool
	attempts int
	started  bool
	shapes   []float64 // one draw per attempt
	fails    []bool
}

type pod struct {
	created, started float64
	running          bool
	item             *item
	draining         bool
	gone             bool
	service          float64
}

type evKind int

const (
	evArrival evKind = iota
	evPodStart
	evFinish
	evRetry
	evTick
	evSample
)

type event struct {
	t    float64
	seq  int
	kind evKind
	it   *item
	p    *pod
}

type events []*event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].t != e[j].t {
		return e[i].t < e[j].t
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int) { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)   { *e = append(*e, x.(*event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

type run struct {
	w     Workload
	c     Controller
	model Model
	delay *rand.Rand // start delays, in pod creation order

	ev  events
	seq int
	now float64

	queue    *fairq.Queue[*item] // FIFO, or the order of Workload.Fair
	pods     []*pod              // alive (not gone)
	limit    int                 // JobPerItem: c
	decision int
	decided  bool
	inFlight int
	left     int // items not finished for good

	res         Result
	waits       []float64
	handed      []float64
	streamWaits [][]float64
	first       float64
	last        float64
}

// Run simulates the workload through the controller. The same seed gives
// the same arrivals, service times and failures whatever the controller
// (common random numbers), and the same result for the same controller.
func Run(w Workload, c Controller, seed uint64) Result {
	r := &run{w: w, c: c, model: c.Model(),
		delay: rand.New(rand.NewPCG(seed, 0xde1a7)),
		res:   Result{Workload: w.Name, Controller: c.Name()}}
	r.queue = fairq.New[*item](w.Fair)
	arr := rand.New(rand.NewPCG(seed, 0xa221))
	work := rand.New(rand.NewPCG(seed, 0x5e2f))
	type arrival struct {
		t      float64
		stream int
	}
	var all []arrival
	if len(w.Streams) == 0 {
		for _, t := range w.Arrivals(arr) {
			all = append(all, arrival{t: t})
		}
	} else {
		for i, st := range w.Streams {
			for _, t := range st.Arrivals(arr) {
				all = append(all, arrival{t: t, stream: i})
			}
		}
		slices.SortStableFunc(all, func(a, b arrival) int { return cmpFloat(a.t, b.t) })
		r.streamWaits = make([][]float64, len(w.Streams))
	}
	times := make([]float64, len(all))
	maxAttempts := max(w.MaxAttempts, 1)
	for i, a := range all {
		times[i] = a.t
		it := &item{stream: a.stream, arrival: a.t, shapes: make([]float64, maxAttempts), fails: make([]bool, maxAttempts)}
		for k := range maxAttempts {
			it.shapes[k] = w.Shape(work)
			it.fails[k] = work.Float64() < w.FailRate
		}
		r.push(&event{t: a.t, kind: evArrival, it: it})
	}
	r.res.Items, r.left = len(times), len(times)
	if len(times) > 0 {
		r.first = times[0]
	}
	if wc, ok := c.(Warm); ok && r.model == Pool {
		for range min(wc.WarmWorkers(), w.Capacity) {
			p := &pod{created: 0, started: 0, running: true}
			r.pods = append(r.pods, p)
		}
		r.res.MaxPods = len(r.pods)
	}
	r.push(&event{t: 0, kind: evTick})
	r.push(&event{t: 0, kind: evSample})
	for r.ev.Len() > 0 {
		e := heap.Pop(&r.ev).(*event)
		r.now = e.t
		switch e.kind {
		case evArrival:
			r.c.Arrived(r.now)
			r.enqueue(e.it)
			r.dispatch()
		case evRetry:
			if rc, ok := r.c.(Retrier); ok {
				rc.Retried(r.now)
			}
			r.enqueue(e.it)
			r.dispatch()
		case evPodStart:
			r.podStart(e.p)
		case evFinish:
			r.finish(e.p)
		case evTick:
			r.tick()
			if !r.done() {
				r.push(&event{t: r.now + c.Interval(), kind: evTick})
			}
		case evSample:
			r.res.C = append(r.res.C, Sample{T: r.now, Decision: r.decision, Pods: len(r.pods), Waiting: r.queue.Waiting()})
			if !r.done() {
				r.push(&event{t: r.now + SampleEvery, kind: evSample})
			}
		}
	}
	end := max(r.last, w.Horizon)
	for _, p := range slices.Clone(r.pods) {
		r.retire(p, end)
	}
	r.res.Makespan = r.last - r.first
	r.res.BoundSeconds = r.res.BusySeconds + float64(r.res.Attempts)*w.MeanStartDelay
	r.summarise()
	return r.res
}

func (r *run) done() bool { return r.left == 0 && r.now >= r.w.Horizon }

func (r *run) push(e *event) {
	r.seq++
	e.seq = r.seq
	heap.Push(&r.ev, e)
}

func (r *run) observed() Observed {
	o := Observed{Now: r.now, Waiting: r.queue.Waiting(), InFlight: r.inFlight, Capacity: r.w.Capacity}
	for _, p := range r.pods {
		if p.draining {
			continue
		}
		o.Pods++
		switch {
		case !p.running:
			o.Pending++
		case p.item == nil:
			o.Idle++
		}
	}
	return o
}

func (r *run) tick() {
	d := r.c.Decide(r.observed())
	if r.decided && d != r.decision {
		r.res.Changes++
	}
	r.decision, r.decided = d, true
	switch r.model {
	case JobPerItem:
		r.limit = d
		r.dispatch()
	case JobPerMessage:
		for range max(0, min(d, r.w.Capacity-len(r.pods))) {
			r.newPod()
		}
	case Pool:
		r.resize(max(0, min(d, r.w.Capacity)))
	}
}

func (r *run) newPod() *pod {
	p := &pod{created: r.now}
	r.pods = append(r.pods, p)
	r.res.MaxPods = max(r.res.MaxPods, len(r.pods))
	r.push(&event{t: r.now + r.w.StartDelay(r.delay), kind: evPodStart, p: p})
	return p
}

// dispatch gives waiting items to workers: new Jobs within the limit
// (JobPerItem) or idle workers (Pool). KEDA's Jobs take their message when
// they start.
func (r *run) dispatch() {
	switch r.model {
	case JobPerItem:
		for r.queue.Len() > 0 && len(r.pods) < min(r.limit, r.w.Capacity) {
			p := r.newPod()
			p.item = r.pop()
			r.inFlight++
		}
	case Pool:
		for _, p := range r.pods {
			if r.queue.Len() == 0 {
				return
			}
			if p.running && p.item == nil && !p.draining {
				p.item = r.pop()
				r.inFlight++
				r.begin(p)
			}
		}
	}
}

func (r *run) enqueue(it *item) {
	if len(r.w.Streams) > 0 {
		r.queue.SetClass(it, r.w.Streams[it.stream].Class)
	}
	r.queue.Push(it)
}

func (r *run) pop() *item {
	it := r.queue.Pop()
	if !it.handed {
		it.handed = true
		r.handed = append(r.handed, r.now-it.arrival)
	}
	return it
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *run) podStart(p *pod) {
	if p.gone {
		return
	}
	p.running, p.started = true, r.now
	r.res.PendingSeconds += r.now - p.created
	switch r.model {
	case JobPerItem:
		r.begin(p)
	case JobPerMessage:
		if r.queue.Len() == 0 {
			r.res.IdleExits++
			r.retire(p, r.now)
			return
		}
		p.item = r.pop()
		r.inFlight++
		r.begin(p)
	case Pool:
		r.dispatch()
	}
}

// begin starts the attempt of p's item.
func (r *run) begin(p *pod) {
	it := p.item
	if !it.started {
		it.started = true
		r.waits = append(r.waits, r.now-it.arrival)
		if r.streamWaits != nil {
			r.streamWaits[it.stream] = append(r.streamWaits[it.stream], r.now-it.arrival)
		}
	}
	p.service = r.w.MeanService(r.now) * it.shapes[it.attempts]
	r.res.BusySeconds += p.service
	r.res.Attempts++
	r.res.LongestRun = max(r.res.LongestRun, p.service)
	r.push(&event{t: r.now + p.service, kind: evFinish, p: p})
}

func (r *run) finish(p *pod) {
	it := p.item
	p.item = nil
	r.inFlight--
	r.queue.Release(it) // its key's cap (Workload.Fair)
	// What the manager measures as S: on Kubernetes a Job's run time, from
	// the Job's start (its creation) to its end, the pod's start included
	// (runner/kube: status.startTime → completion); a pool worker's run
	// time otherwise.
	served := p.service
	if r.model == JobPerItem {
		served = r.now - p.created
	}
	r.c.Served(served)
	failed := it.fails[it.attempts]
	it.attempts++
	switch {
	case failed && it.attempts < len(it.fails):
		r.push(&event{t: r.now + r.w.RetryBackoff, kind: evRetry, it: it})
	default:
		if failed {
			r.res.Dead++
		} else {
			r.res.Succeeded++
		}
		r.left--
		r.last = r.now
	}
	if r.model != Pool || p.draining {
		r.retire(p, r.now)
	}
	r.dispatch()
}

// retire ends a pod's life at t.
func (r *run) retire(p *pod, t float64) {
	if p.gone {
		return
	}
	p.gone = true
	r.res.WorkerSeconds += t - p.created
	if !p.running {
		r.res.PendingSeconds += t - p.created
	}
	r.pods = slices.DeleteFunc(r.pods, func(q *pod) bool { return q == p })
}

// resize brings a Pool to n workers: new ones are created pending; fewer
// removes pending ones first, then idle ones, then lets busy ones drain.
func (r *run) resize(n int) {
	alive := 0
	for _, p := range r.pods {
		if !p.draining {
			alive++
		}
	}
	// New pods only within the cluster's capacity, which pods draining
	// their last item still hold: the rest at a later decision.
	for ; alive < n && len(r.pods) < r.w.Capacity; alive++ {
		r.newPod()
	}
	for _, phase := range []func(*pod) bool{
		func(p *pod) bool { return !p.running },
		func(p *pod) bool { return p.running && p.item == nil },
		func(p *pod) bool { return p.item != nil },
	} {
		for _, p := range slices.Clone(r.pods) {
			if alive <= n {
				return
			}
			if p.draining || !phase(p) {
				continue
			}
			alive--
			if p.item != nil {
				p.draining = true
			} else {
				r.retire(p, r.now)
			}
		}
	}
}

func (r *run) summarise() {
	if r.streamWaits != nil {
		r.res.Streams = map[string]StreamResult{}
		for i, ws := range r.streamWaits {
			sr := StreamResult{Items: len(ws)}
			if len(ws) > 0 {
				slices.Sort(ws)
				sr.WaitP50, sr.WaitP95, sr.WaitMax = quantile(ws, 0.5), quantile(ws, 0.95), ws[len(ws)-1]
			}
			r.res.Streams[r.w.Streams[i].Name] = sr
		}
	}
	if len(r.handed) > 0 {
		slices.Sort(r.handed)
		r.res.HandedP95 = quantile(r.handed, 0.95)
	}
	w := r.waits
	if len(w) == 0 {
		return
	}
	slices.Sort(w)
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	r.res.WaitMean = sum / float64(len(w))
	r.res.WaitP50 = quantile(w, 0.50)
	r.res.WaitP95 = quantile(w, 0.95)
	r.res.WaitP99 = quantile(w, 0.99)
	r.res.WaitMax = w[len(w)-1]
}

// quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}
