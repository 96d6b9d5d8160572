package queue

import (
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
	dispatchLatency prometheus.Histogram
	reconcile       prometheus.Histogram
	resync          prometheus.Histogram
	lambda          prometheus.Gauge
	service         prometheus.Gauge
	parallelism     prometheus.Gauge
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
		parallelism: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "itemq_manager_parallelism", Help: "c: the number of jobs allowed to be active now."}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	x.reg.MustRegister(x.started, x.startErrors, x.succeeded, x.failed, x.dead, x.retries,
		x.dispatchLatency, x.reconcile, x.resync, x.lambda, x.service, x.parallelism,
		gauge("itemq_manager_backlog", "Items waiting for a job.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.queued))
		}),
		gauge("itemq_manager_active", "Jobs started and not finished (running, pending, or waiting to retry).", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(m.unfinished + len(m.inflight))
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
}

// Registry is the manager's Prometheus registry (the status API serves it).
func (m *Manager) Registry() *prometheus.Registry { return m.met.reg }
