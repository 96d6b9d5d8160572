package ambassador

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/itemq/itemq/internal/source"
	"github.com/itemq/itemq/internal/version"
)

// metrics are an ambassador's Prometheus metrics, on their own registry.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	watchClients prometheus.Gauge
	watchRefused prometheus.Counter
}

func newMetrics(binary string, src *source.Source) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "itemq_ambassador_requests_total",
			Help: "HTTP requests served, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "itemq_ambassador_request_duration_seconds",
			Help:    "Time to answer an HTTP request (watch streams excluded), by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		watchClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "itemq_ambassador_watch_clients",
			Help: "Open watch streams.",
		}),
		watchRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "itemq_ambassador_watch_refused_total",
			Help: "Watch streams refused (503) because ITEMQ_MAX_WATCHERS were open.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.watchClients, m.watchRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		BuildInfo(binary),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "itemq_ambassador_items",
			Help: "Items the source holds now (-1 when the source cannot count cheaply).",
		}, func() float64 {
			if n, ok := src.Len(); ok {
				return float64(n)
			}
			return -1
		}),
	)
	for _, c := range src.Collectors() {
		m.reg.MustRegister(c)
	}
	return m
}

// BuildInfo is the itemq_build_info gauge every itemq binary exports.
func BuildInfo(binary string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "itemq_build_info",
		Help: "Build information of this binary; always 1.",
	}, []string{"binary", "version", "revision", "goversion"})
	g.WithLabelValues(binary, version.Version, version.Revision, runtime.Version()).Set(1)
	return g
}
