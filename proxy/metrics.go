package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Handler's counters. Counters are plain atomics, so the
// hot path pays one atomic add; Collector exports them to Prometheus.
type metrics struct {
	requests                     []atomic.Int64 // by outcome label (outcome.idx)
	originRequests, originErrors atomic.Int64
	collapsed, stored            atomic.Int64
	fleetCollapsed               atomic.Int64
	originHeld                   atomic.Int64
	sharedErrors                 atomic.Int64
	originLatency                prometheus.Histogram

	mu        sync.Mutex
	originUp  bool
	originErr string
}

func newMetrics() *metrics {
	return &metrics{
		requests: make([]atomic.Int64, len(labels)),
		originUp: true,
		originLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cacheproxy_origin_request_duration_seconds",
			Help:    "Time to the origin's response headers (fills: whole body).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
}

// request counts one client request by its outcome.
func (m *metrics) request(o *outcome) { m.requests[o.idx].Add(1) }

func (m *metrics) originFailed(err error) {
	m.originErrors.Add(1)
	m.mu.Lock()
	m.originUp, m.originErr = false, err.Error()
	m.mu.Unlock()
}

func (m *metrics) originOK() {
	m.mu.Lock()
	m.originUp = true
	m.mu.Unlock()
}

// Stats returns a snapshot of h's counters.
func (h *Handler) Stats() Stats {
	m := h.m
	m.mu.Lock()
	up, lastErr := m.originUp, m.originErr
	m.mu.Unlock()
	requests := make(map[string]int64, len(labels))
	for i, l := range labels {
		requests[l] = m.requests[i].Load()
	}
	cacheable, all, _ := HitRatios(requests)
	return Stats{
		Requests:          requests,
		HitRatio:          cacheable,
		HitRatioAll:       all,
		OriginRequests:    m.originRequests.Load(),
		OriginErrors:      m.originErrors.Load(),
		Collapsed:         m.collapsed.Load(),
		FleetCollapsed:    m.fleetCollapsed.Load(),
		OriginHeld:        m.originHeld.Load(),
		OriginBackoffKeys: h.backoffs.failing(h.o.Now()),
		Stored:            m.stored.Load(),
		SharedErrors:      m.sharedErrors.Load(),
		OriginUp:          up,
		OriginLastError:   lastErr,
	}
}

// Collector returns a Prometheus collector of h's metrics, to register
// with the registry the caller serves.
func (h *Handler) Collector() prometheus.Collector {
	return &collector{h: h}
}

var (
	descRequests = prometheus.NewDesc("cacheproxy_requests_total",
		"Client requests by X-Cache result.", []string{"result"}, nil)
	descOrigin = prometheus.NewDesc("cacheproxy_origin_requests_total",
		"Requests sent to the origin.", nil, nil)
	descOriginErrors = prometheus.NewDesc("cacheproxy_origin_errors_total",
		"Origin requests that got no response.", nil, nil)
	descCollapsed = prometheus.NewDesc("cacheproxy_collapsed_requests_total",
		"Requests answered by another request's fill.", nil, nil)
	descFleetCollapsed = prometheus.NewDesc("cacheproxy_fleet_collapsed_fills_total",
		"Fills answered by another instance's fill (fleet-wide lease).", nil, nil)
	descOriginHeld = prometheus.NewDesc("cacheproxy_origin_backoff_held_total",
		"Fills not sent to the origin because their key's fetches were failing (served stale, Cache-Status detail origin-backoff).", nil, nil)
	descBackoffKeys = prometheus.NewDesc("cacheproxy_origin_backoff_keys",
		"Keys this instance holds back from the origin now (their fetches are failing).", nil, nil)
	descStored = prometheus.NewDesc("cacheproxy_stored_total",
		"Responses stored in the cache tiers.", nil, nil)
	descSharedErrors = prometheus.NewDesc("cacheproxy_redis_errors_total",
		"Failed calls to the shared tier (Redis), each treated as a miss.", nil, nil)
)

type collector struct{ h *Handler }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descOrigin, descOriginErrors, descCollapsed, descFleetCollapsed, descOriginHeld, descBackoffKeys, descStored, descSharedErrors} {
		ch <- d
	}
	c.h.m.originLatency.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Stats()
	for result, n := range s.Requests {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), result)
	}
	ch <- prometheus.MustNewConstMetric(descOrigin, prometheus.CounterValue, float64(s.OriginRequests))
	ch <- prometheus.MustNewConstMetric(descOriginErrors, prometheus.CounterValue, float64(s.OriginErrors))
	ch <- prometheus.MustNewConstMetric(descCollapsed, prometheus.CounterValue, float64(s.Collapsed))
	ch <- prometheus.MustNewConstMetric(descFleetCollapsed, prometheus.CounterValue, float64(s.FleetCollapsed))
	ch <- prometheus.MustNewConstMetric(descOriginHeld, prometheus.CounterValue, float64(s.OriginHeld))
	ch <- prometheus.MustNewConstMetric(descBackoffKeys, prometheus.GaugeValue, float64(s.OriginBackoffKeys))
	ch <- prometheus.MustNewConstMetric(descStored, prometheus.CounterValue, float64(s.Stored))
	ch <- prometheus.MustNewConstMetric(descSharedErrors, prometheus.CounterValue, float64(s.SharedErrors))
	c.h.m.originLatency.Collect(ch)
}
