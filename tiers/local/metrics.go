package local

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a Prometheus collector of c's gauges (entries, bytes
// and the configured bound), to register with the registry the caller
// serves.
func (c *Cache) Collector() prometheus.Collector {
	return collector{c}
}

var (
	descEntries = prometheus.NewDesc("cacheproxy_l1_entries",
		"Items held in the in-process cache (L1): responses, and varying URLs (a URL's marker and variants are one).", nil, nil)
	descBytes = prometheus.NewDesc("cacheproxy_l1_bytes",
		"Encoded bytes held in the in-process cache (L1).", nil, nil)
	descMaxBytes = prometheus.NewDesc("cacheproxy_l1_max_bytes",
		"Memory bound of the in-process cache (L1), -l1-max-bytes.", nil, nil)
)

type collector struct{ c *Cache }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEntries
	ch <- descBytes
	ch <- descMaxBytes
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(c.c.Len()))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(c.c.Bytes()))
	ch <- prometheus.MustNewConstMetric(descMaxBytes, prometheus.GaugeValue, float64(c.c.MaxBytes()))
}
