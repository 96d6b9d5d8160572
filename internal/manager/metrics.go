package manager

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	reg             *prometheus.Registry
	started         prometheus.Counter
	startErrors     prometheus.Counter
	succeeded       prometheus.Counter
	failed          prometheus.Counter
	dead            prometheus.Counter
	retries         prometheus.Counter
	cancelled       prometheus.Counter
	retried         prometheus.Counter
	dispatchLatency prometheus.Histogram
	reconcile       prometheus.Histogram
	resync          prometheus.Histogram
	lambda          prometheus.Gauge
	service         prometheus.Gauge
	parallelism     prometheus.Gauge
	predictedWait   prometheus.Gauge
}

func newMetrics(m *Manager) *metrics {
	x := &metrics{
		reg: prometheus.NewRegistry(),
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_jobs_started_total", Help: "Jobs started."}),
		startErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_job_start_errors_total", Help: "Failed attempts to start a job (retried)."}),
		succeeded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_jobs_succeeded_total", Help: "Jobs that succeeded."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_jobs_failed_total", Help: "Jobs that failed for good (exit code 2 or out of attempts)."}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_jobs_dead_total", Help: "Failed jobs whose items were dead-lettered (acknowledged as failed)."}),
		cancelled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_jobs_cancelled_total", Help: "Jobs cancelled through the API (POST /v1/cancel)."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_jobs_retried_total", Help: "Finished jobs run again through the API (POST /v1/retry), redriven or not."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_manager_attempts_retried_total", Help: "Failed attempts that will be retried."}),
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "itemq_manager_dispatch_latency_seconds",
			Help:    "Time from the manager first seeing an item to its job being started.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "itemq_manager_reconcile_seconds",
			Help:    "Time of one reconcile pass: the diff of the items and jobs held in memory.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		resync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "itemq_manager_resync_seconds",
			Help:    "Time of one full resync: listing the source and the runner's jobs, then a reconcile pass.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		lambda: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "itemq_manager_arrival_rate", Help: "λ: arrival rate of new items, per second (moving average)."}),
		service: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "itemq_manager_service_time_seconds", Help: "S: mean run time of an attempt (moving average)."}),
		predictedWait: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "itemq_manager_predicted_wait_seconds", Help: "The wait of an item arriving now before its job starts: backlog·S/c."}),
		parallelism: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "itemq_manager_parallelism", Help: "c: the number of jobs allowed to be active now."}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	x.reg.MustRegister(x.started, x.startErrors, x.succeeded, x.failed, x.dead, x.retries, x.cancelled, x.retried,
		x.dispatchLatency, x.reconcile, x.resync, x.lambda, x.service, x.parallelism, x.predictedWait,
		gauge("itemq_manager_backlog", "Items waiting for a job.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.queued))
		}),
		gauge("itemq_manager_active", "Jobs that hold a slot of the parallelism: started, not finished, not waiting for a retry (plus starts in progress).", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(m.active + m.inflight)
		}),
		gauge("itemq_manager_retry_waiting", "Jobs waiting for their next attempt after a failed one (they hold no slot).", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			_, _, n := m.phasesLocked()
			return float64(n)
		}),
		gauge("itemq_manager_pending_jobs", "Jobs created and not running yet (a pod not started, a Job suspended by Kueue): they hold a slot but are not capacity at work.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			n, _, _ := m.phasesLocked()
			return float64(n)
		}),
		gauge("itemq_manager_running_jobs", "Jobs whose attempt runs.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			_, n, _ := m.phasesLocked()
			return float64(n)
		}),
		gauge("itemq_manager_oldest_waiting_seconds", "Age of the oldest item waiting for a job (0 when none waits).", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			now := time.Now()
			oldest := 0.0
			for name := range m.queued {
				if at, ok := m.present[name]; ok {
					oldest = max(oldest, now.Sub(at).Seconds())
				}
			}
			return oldest
		}),
		gauge("itemq_manager_leader", "1 when this replica dispatches and acknowledges (the elected leader, or the only replica), else 0.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.leader {
				return 1
			}
			return 0
		}),
		gauge("itemq_manager_source_ready", "1 while the source answers: it was listed in full once and the last full listing succeeded; else 0.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.synced && m.sourceErr == nil {
				return 1
			}
			return 0
		}),
		gauge("itemq_manager_items", "Items the source holds.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.present))
		}),
		gauge("itemq_manager_max_active", "MANAGER_MAX_ACTIVE: the upper bound of the parallelism.", func() float64 {
			return float64(m.cfg.MaxActive)
		}),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return x
}

func (x *metrics) observe(o Observation) {
	x.lambda.Set(o.Lambda)
	x.service.Set(o.S)
	x.parallelism.Set(float64(o.C))
	if o.C > 0 {
		x.predictedWait.Set(float64(o.Backlog) * o.S / float64(o.C))
	}
}

// Registry is the manager's Prometheus registry (the status API serves it).
func (m *Manager) Registry() *prometheus.Registry { return m.met.reg }
