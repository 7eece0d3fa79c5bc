package proxy

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// invalidation is what invalidating one URL takes.
type invalidation int

const (
	// invalidateNone: nothing is stored or being filled for the URL.
	invalidateNone invalidation = iota
	// invalidateBan: a purge of the URL (a ban), fleet-wide.
	invalidateBan
	// invalidateDrop: over the client's budget of ban bytes, the URL's
	// keys are deleted from L2 and this instance's L1.
	invalidateDrop
	numInvalidations
)

// label is the invalidation's metrics label.
func (i invalidation) label() string {
	return [...]string{"none", "ban", "dropped"}[i]
}

// metrics are a Handler's counters. Counters are plain atomics, so the
// hot path pays one atomic add; Collector exports them to Prometheus.
type metrics struct {
	requests                     []atomic.Int64 // by outcome label (outcome.idx)
	originRequests, originErrors atomic.Int64
	collapsed, stored            atomic.Int64
	fleetCollapsed               atomic.Int64
	originHeld                   atomic.Int64
	sharedErrors                 atomic.Int64
	originBusy                   atomic.Int64 // errOriginBusy
	originWaiting                atomic.Int64 // waiting for an origin request slot now
	originLatency                prometheus.Histogram
	// invalidations after unsafe requests, by what they took
	invalidations [numInvalidations]atomic.Int64
	// duration is the client-facing time of a request, by outcome label
	// (indexed like labels); servedBytes the body bytes sent, by tier
	// (indexed like Tiers()). Both are filled by Observe.
	duration    *prometheus.HistogramVec
	byLabel     []prometheus.Observer
	labelTier   []int // index in Tiers() of each label's tier
	servedBytes []atomic.Int64

	mu        sync.Mutex
	originUp  bool
	originErr string
}

// durationBuckets are the buckets of both duration histograms, in
// seconds: from a 100µs L1 hit to a 30s origin.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newMetrics() *metrics {
	m := &metrics{
		requests: make([]atomic.Int64, len(labels)),
		originUp: true,
		originLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cacheproxy_origin_request_duration_seconds",
			Help:    "Time to the origin's response headers (fills: whole body).",
			Buckets: durationBuckets,
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cacheproxy_request_duration_seconds",
			Help:    "Time to answer a client request, from its header read to its last body byte written, by X-Cache result.",
			Buckets: durationBuckets,
		}, []string{"result"}),
		servedBytes: make([]atomic.Int64, len(Tiers())),
	}
	for _, l := range labels {
		// Every result has its series from the start, at zero.
		m.byLabel = append(m.byLabel, m.duration.WithLabelValues(l))
	}
	for _, o := range infos {
		m.labelTier = append(m.labelTier, slices.Index(Tiers(), o.Tier))
	}
	return m
}

// Observe records one answered client request: its X-Cache result, the
// body bytes sent and the time it took, in the request duration
// histogram and the bytes served by tier. The server calls it once per
// response, after the last byte; a response without a known X-Cache
// result (one the proxy did not make) is not recorded.
func (h *Handler) Observe(xcache string, bytes int64, took time.Duration) {
	i := slices.Index(labels, xcache)
	if i < 0 {
		return
	}
	h.m.byLabel[i].Observe(took.Seconds())
	if bytes > 0 {
		h.m.servedBytes[h.m.labelTier[i]].Add(bytes)
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
	counts := make([]int64, len(labels))
	requests := make(map[string]int64, len(labels))
	for i, l := range labels {
		counts[i] = m.requests[i].Load()
		requests[l] = counts[i]
	}
	cacheable, all, _ := hitRatiosOf(counts)
	return Stats{
		Requests:          requests,
		HitRatio:          cacheable,
		HitRatioAll:       all,
		OriginRequests:    m.originRequests.Load(),
		OriginErrors:      m.originErrors.Load(),
		Collapsed:         m.collapsed.Load(),
		FleetCollapsed:    m.fleetCollapsed.Load(),
		Stored:            m.stored.Load(),
		SharedErrors:      m.sharedErrors.Load(),
		OriginHeld:        m.originHeld.Load(),
		OriginBackoffKeys: h.backoffs.failing(h.o.Now()),
		OriginBusy:        m.originBusy.Load(),
		OriginWaiting:     m.originWaiting.Load(),
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
		"Client requests by X-Cache result, with the result's class (hit, miss, pass, error).", []string{"result", "class"}, nil)
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
	descOriginWaiting = prometheus.NewDesc("cacheproxy_origin_waiting_requests",
		"Origin requests waiting now for an origin request slot (-max-origin-conns).", nil, nil)
	descOriginBusy = prometheus.NewDesc("cacheproxy_origin_busy_total",
		"Origin requests not sent because every origin request slot (-max-origin-conns) stayed in use for the queue wait; each answered 503 (or stale).", nil, nil)
	descInvalidations = prometheus.NewDesc("cacheproxy_invalidations_total",
		"URLs invalidated after unsafe requests, by what it took: none (nothing held them), ban, or dropped (the client was over its budget of ban bytes: keys deleted, no ban).",
		[]string{"action"}, nil)
	descServedBytes = prometheus.NewDesc("cacheproxy_served_bytes_total",
		"Response body bytes sent to clients, by where the body came from: l1, l2, cache (a stale or revalidated entry), origin, proxy (its own errors).",
		[]string{"tier"}, nil)
	descOriginUp = prometheus.NewDesc("cacheproxy_origin_up",
		"1 while the origin's last request got a response, 0 after one got none.", nil, nil)
)

type collector struct{ h *Handler }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descOrigin, descOriginErrors, descCollapsed, descFleetCollapsed,
		descStored, descSharedErrors, descServedBytes, descOriginUp, descInvalidations,
		descOriginBusy, descOriginWaiting, descOriginHeld, descBackoffKeys} {
		ch <- d
	}
	c.h.m.originLatency.Describe(ch)
	c.h.m.duration.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Stats()
	for _, o := range infos {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(s.Requests[o.Label]), o.Label, string(o.Class))
	}
	ch <- prometheus.MustNewConstMetric(descOrigin, prometheus.CounterValue, float64(s.OriginRequests))
	ch <- prometheus.MustNewConstMetric(descOriginErrors, prometheus.CounterValue, float64(s.OriginErrors))
	ch <- prometheus.MustNewConstMetric(descCollapsed, prometheus.CounterValue, float64(s.Collapsed))
	ch <- prometheus.MustNewConstMetric(descFleetCollapsed, prometheus.CounterValue, float64(s.FleetCollapsed))
	ch <- prometheus.MustNewConstMetric(descOriginHeld, prometheus.CounterValue, float64(s.OriginHeld))
	ch <- prometheus.MustNewConstMetric(descBackoffKeys, prometheus.GaugeValue, float64(s.OriginBackoffKeys))
	ch <- prometheus.MustNewConstMetric(descStored, prometheus.CounterValue, float64(s.Stored))
	ch <- prometheus.MustNewConstMetric(descSharedErrors, prometheus.CounterValue, float64(s.SharedErrors))
	ch <- prometheus.MustNewConstMetric(descOriginBusy, prometheus.CounterValue, float64(s.OriginBusy))
	ch <- prometheus.MustNewConstMetric(descOriginWaiting, prometheus.GaugeValue, float64(s.OriginWaiting))
	for i := range c.h.m.invalidations {
		ch <- prometheus.MustNewConstMetric(descInvalidations, prometheus.CounterValue,
			float64(c.h.m.invalidations[i].Load()), invalidation(i).label())
	}
	for i, t := range Tiers() {
		ch <- prometheus.MustNewConstMetric(descServedBytes, prometheus.CounterValue, float64(c.h.m.servedBytes[i].Load()), t)
	}
	up := 0.0
	if s.OriginUp {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descOriginUp, prometheus.GaugeValue, up)
	c.h.m.originLatency.Collect(ch)
	c.h.m.duration.Collect(ch)
}
