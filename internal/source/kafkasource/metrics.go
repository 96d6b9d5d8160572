package kafkasource

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/itemq/itemq/internal/source"
)

var _ source.MetricsProvider = (*Driver)(nil)

var (
	descLag = prometheus.NewDesc("itemq_kafka_partition_lag",
		"Messages of an assigned partition not yet acknowledged: the high watermark minus the first message not yet done (what a restart would deliver again, plus what is not consumed yet).",
		[]string{"topic", "partition"}, nil)
	descWindow = prometheus.NewDesc("itemq_kafka_window_messages",
		"Messages in an assigned partition's window (listed and not yet acknowledged, or acknowledged above one that is not).",
		[]string{"topic", "partition"}, nil)
	descFill = prometheus.NewDesc("itemq_kafka_window_fill_ratio",
		"An assigned partition's window messages over KAFKA_MAX_PENDING; at 1 the partition's fetching is paused.",
		[]string{"topic", "partition"}, nil)
)

// Collectors are the driver's per-partition metrics.
func (d *Driver) Collectors() []prometheus.Collector {
	return []prometheus.Collector{driverCollector{d}}
}

type driverCollector struct{ d *Driver }

func (c driverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLag
	ch <- descWindow
	ch <- descFill
}

func (c driverCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, w := range d.parts {
		p := strconv.Itoa(int(k.partition))
		n := float64(len(w.msgs))
		ch <- prometheus.MustNewConstMetric(descWindow, prometheus.GaugeValue, n, k.topic, p)
		ch <- prometheus.MustNewConstMetric(descFill, prometheus.GaugeValue, n/float64(w.max), k.topic, p)
		if lag, ok := w.lag(); ok {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(lag), k.topic, p)
		}
	}
}
