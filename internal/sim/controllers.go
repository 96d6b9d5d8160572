package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/itemq/itemq/internal/manager"
)

// epoch is the virtual clock's time 0 for the real scaler (a whole second:
// the scaler counts arrivals per Unix second).
var epoch = time.Unix(1_000_000_000, 0)

func at(t float64) time.Time { return epoch.Add(time.Duration(t * float64(time.Second))) }

// Itemq is the manager's own controller: the real manager.Scaler, consulted
// every second with the backlog (items known and not yet dispatched), as
// the manager's scale loop does. In the execution model JobPerItem (a Job
// per item) c is the most Jobs at once; in Pool (MANAGER_EXECUTION=pool,
// docs/pool.md) c is the number of long-running workers.
type Itemq struct {
	S     *manager.Scaler
	name  string
	model Model
	// netOfStarting: the backlog the scaler is given leaves out the items
	// that workers being started will take (a pool's backlog).
	netOfStarting bool
}

// NewItemq returns itemq's controller with the manager's defaults
// (MANAGER_MIN_ACTIVE=1, MANAGER_TARGET_UTILIZATION=0.9,
// MANAGER_DRAIN_TIME=5s, MANAGER_SCALE_DOWN_DELAY=30s) and max as
// MANAGER_MAX_ACTIVE: a Job per item.
func NewItemq(max int) *Itemq {
	return &Itemq{name: "itemq", model: JobPerItem, S: jobScaler(max)}
}

func jobScaler(max int) *manager.Scaler {
	return &manager.Scaler{Min: 1, Max: max, Rho: 0.9, DrainTime: 5 * time.Second, ScaleDownDelay: 30 * time.Second}
}

// NewItemqPool returns itemq's controller in the pool execution model: the
// same scaler sets c, and c long-running workers lease item after item; a
// scale-down removes pending workers first, then idle ones, and lets busy
// ones finish their item. S is what a pool worker reports, an attempt's
// run time from its taking the item to the end (no pod start in it:
// finish feeds a Pool controller the run alone). The scaler runs with the
// pool settings (manager.PoolWindow, PoolAlpha, PoolScaleDownDelay, as the manager's Config.Pool; min, ρ and
// the drain time as for a Job per item) and GrowByBacklog, and is given
// the backlog net of the workers being started.
func NewItemqPool(max int) *Itemq {
	s := jobScaler(max)
	s.Window, s.Alpha, s.ScaleDownDelay, s.GrowByBacklog = manager.PoolWindow, manager.PoolAlpha, manager.PoolScaleDownDelay, true
	return &Itemq{name: "itemq-pool", model: Pool, S: s, netOfStarting: true}
}

// TargetWait is the MANAGER_TARGET_WAIT the simulator runs itemq-pool-tw
// with: an eighth of the workloads' S (1.25 s), short enough that its p95
// wait is below the HPA's (0.5–0.9 s at make sim's size).
const TargetWait = 1250 * time.Millisecond

// NewItemqPoolTargetWait is itemq in the pool execution model with
// MANAGER_TARGET_WAIT=tw: c sized by Erlang C for P(wait > tw) ≤ 5 %
// rather than for ρ, a worker fewer per scaleDown (0: the manager's
// default with a target wait, manager.TargetWaitScaleDownDelay) — as the
// manager's Config.Pool with Config.TargetWait.
func NewItemqPoolTargetWait(max int, tw, scaleDown time.Duration) *Itemq {
	c := NewItemqPool(max)
	if scaleDown == 0 {
		scaleDown = manager.TargetWaitScaleDownDelay
	}
	c.S.TargetWait, c.S.ScaleDownDelay = tw, scaleDown
	c.name = "itemq-pool-tw"
	return c
}

// NewItemqPoolLean is itemq in the pool execution model set for the least
// cost within a wait of about S: MANAGER_TARGET_UTILIZATION=1 (workers as
// many as the load, λ·S) and MANAGER_DRAIN_TIME=60s (a backlog drains
// within a minute rather than 5 s, so short queues are left to the
// workers there are) — the manager's settings, nothing new.
func NewItemqPoolLean(max int) *Itemq {
	c := NewItemqPool(max)
	c.S.Rho, c.S.DrainTime = 1, LeanDrainTime
	c.name = "itemq-pool-lean"
	return c
}

// LeanDrainTime is itemq-pool-lean's MANAGER_DRAIN_TIME.
const LeanDrainTime = 60 * time.Second

// ScaleDownDelay is what docs/scaling.md tells a user of the pool with a
// target wait to set MANAGER_SCALE_DOWN_DELAY to for pods that start in
// meanStart seconds on average: the default (4 s) or half the mean start,
// whichever is longer — a worker shrunk too early costs a pod's start,
// and items wait for it meanwhile.
func ScaleDownDelay(meanStart float64) time.Duration {
	return max(manager.TargetWaitScaleDownDelay, time.Duration(meanStart/2*float64(time.Second)))
}

// NewItemqPoolJobDefaults is the pool with a Job per item's settings and
// backlog as they are (what MANAGER_EXECUTION=pool would do with nothing
// else changed): for comparison.
func NewItemqPoolJobDefaults(max int) *Itemq {
	return &Itemq{name: "itemq-pool-jobdefaults", model: Pool, S: jobScaler(max)}
}

func (c *Itemq) Name() string      { return c.name }
func (c *Itemq) Model() Model      { return c.model }
func (c *Itemq) Interval() float64 { return 1 }
func (c *Itemq) Arrived(t float64) { c.S.Arrival(at(t)) }
func (c *Itemq) Served(d float64)  { c.S.Served(time.Duration(d * float64(time.Second))) }
func (c *Itemq) Decide(o Observed) int {
	backlog := o.Waiting
	if c.netOfStarting {
		backlog = max(0, o.Waiting-o.Pending)
	}
	return c.S.Update(at(o.Now), backlog).C
}

// KEDA is a ScaledJob (a Job per message) with one of its scaling
// strategies, as KEDA's documentation and code define them: every poll,
// maxScale = min(ceil(queueLength / targetAverageValue), maxReplicaCount)
// with a target of 1 message per Job, runningJobCount = Jobs not finished
// (pending ones included), pendingJobCount = Jobs whose pod has not
// started, and
//
//	default:  maxScale − runningJobCount
//	accurate: maxReplicaCount − runningJobCount if maxScale + runningJobCount > maxReplicaCount,
//	          else maxScale − pendingJobCount
//	eager:    min(maxReplicaCount − runningJobCount − pendingJobCount, maxScale)
//
// new Jobs are created. Each strategy sees the queue length it is meant
// for: default and eager a length that includes the messages being
// processed (RabbitMQ's messages, ready and unacknowledged); accurate one
// that does not (Azure Storage Queue, SQS's visible messages).
type KEDA struct {
	Strategy string // default, accurate, eager
	Max      int    // maxReplicaCount
	Poll     float64
}

func (c *KEDA) Name() string      { return "keda-" + c.Strategy }
func (c *KEDA) Model() Model      { return JobPerMessage }
func (c *KEDA) Interval() float64 { return c.Poll }
func (c *KEDA) Arrived(float64)   {}
func (c *KEDA) Served(float64)    {}
func (c *KEDA) Decide(o Observed) int {
	queue := o.Waiting + o.InFlight
	if c.Strategy == "accurate" {
		queue = o.Waiting
	}
	maxScale := min(queue, c.Max)
	running, pending := o.Pods, o.Pending
	var n int
	switch c.Strategy {
	case "accurate":
		if maxScale+running > c.Max {
			n = c.Max - running
		} else {
			n = maxScale - pending
		}
	case "eager":
		n = min(c.Max-running-pending, maxScale)
	default:
		n = maxScale - running
	}
	return max(n, 0)
}

// HPA is a HorizontalPodAutoscaler on a Deployment of workers with an
// external metric, the queue's length (messages waiting and being
// processed), and a target average value of Target per pod: every Sync
// seconds desired = ceil(length / Target), kept at the current count
// within the 10 % tolerance, scaled up by at most max(100 %, 4 pods) per
// sync, and scaled down only to the highest desired count of the last
// Window seconds (the default 300 s stabilisation), within [Min, Max].
type HPA struct {
	Min, Max int
	Target   float64
	Sync     float64
	Window   float64
	hist     []hpaRec
}

type hpaRec struct {
	t       float64
	desired int
}

func (c *HPA) Name() string      { return "hpa" }
func (c *HPA) Model() Model      { return Pool }
func (c *HPA) Interval() float64 { return c.Sync }
func (c *HPA) Arrived(float64)   {}
func (c *HPA) Served(float64)    {}
func (c *HPA) Decide(o Observed) int {
	cur := o.Pods
	metric := float64(o.Waiting + o.InFlight)
	desired := int(math.Ceil(metric / c.Target))
	if cur > 0 && math.Abs(metric/(float64(cur)*c.Target)-1) <= 0.1 {
		desired = cur
	}
	desired = min(max(desired, c.Min), c.Max)
	if desired > cur {
		desired = min(desired, max(2*cur, cur+4))
	}
	c.hist = append(c.hist, hpaRec{o.Now, desired})
	for len(c.hist) > 0 && c.hist[0].t < o.Now-c.Window {
		c.hist = c.hist[1:]
	}
	if desired < cur {
		high := desired
		for _, h := range c.hist {
			high = max(high, h.desired)
		}
		desired = min(cur, high)
	}
	return desired
}

// RQ is the autoscaler people write by hand for RQ workers: every Every
// seconds, one worker more while messages wait, one fewer while none
// waits and a worker idles; never fewer than one.
type RQ struct {
	Max   int
	Every float64
	n     int
}

func (c *RQ) Name() string      { return "rq-autoscaler" }
func (c *RQ) Model() Model      { return Pool }
func (c *RQ) Interval() float64 { return c.Every }
func (c *RQ) Arrived(float64)   {}
func (c *RQ) Served(float64)    {}
func (c *RQ) Decide(o Observed) int {
	switch {
	case c.n == 0:
		c.n = 1
	case o.Waiting > 0 && c.n < c.Max:
		c.n++
	case o.Waiting == 0 && o.Idle > 0 && c.n > 1:
		c.n--
	}
	return c.n
}

// Fixed is a pool of C workers that are always up (a Deployment without an
// autoscaler).
type Fixed struct{ C int }

func (c *Fixed) Name() string        { return fmt.Sprintf("fixed-%d", c.C) }
func (c *Fixed) Model() Model        { return Pool }
func (c *Fixed) Interval() float64   { return 60 }
func (c *Fixed) Arrived(float64)     {}
func (c *Fixed) Served(float64)      {}
func (c *Fixed) Decide(Observed) int { return c.C }
func (c *Fixed) WarmWorkers() int    { return c.C }

// Retried is a failed attempt's item back in the queue: an arrival, as
// the manager counts it.
func (c *Itemq) Retried(t float64) {
	c.S.Arrival(at(t))
}
