package shared

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a Prometheus collector of t's health and errors (failed
// calls, Redis up, error replies by purpose and kind, purposes failing), to
// register with the registry the caller serves.
func (t *Tier) Collector() prometheus.Collector {
	return tierCollector{t}
}

// Collector returns a Prometheus collector of f's counters (purges,
// invalidations received, resubscriptions, L1 flushes) and whether L1 is
// usable, to register with the registry the caller serves.
func (f *Fleet) Collector() prometheus.Collector {
	return fleetCollector{f}
}

var (
	descClientErrors = prometheus.NewDesc("cacheproxy_redis_client_errors_total",
		"Failed Redis calls counted by the shared tier (L2).", nil, nil)
	descUp = prometheus.NewDesc("cacheproxy_redis_up",
		"1 when the shared tier (L2) considers Redis healthy, else 0.", nil, nil)
	// The proxy's own cacheproxy_redis_errors_total counts failed calls
	// without labels; these say what Redis answered.
	descReplyErrors = prometheus.NewDesc("cacheproxy_redis_reply_errors_total",
		"Error replies from Redis (CROSSSLOT, MOVED, READONLY, NOPERM, WRONGPASS...), by what the call was for (read, write, fleet, subscribe) and the reply's code.",
		[]string{"purpose", "kind"}, nil)
	descFailing = prometheus.NewDesc("cacheproxy_redis_failing",
		"1 while Redis answers errors to every call of a purpose (read, write, fleet, subscribe), else 0.", []string{"purpose"}, nil)
)

type tierCollector struct{ t *Tier }

func (c tierCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClientErrors, descUp, descReplyErrors, descFailing} {
		ch <- d
	}
}

func (c tierCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descClientErrors, prometheus.CounterValue, float64(c.t.Errors()))
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, bool01(c.t.Healthy()))
	// Every purpose and kind, zero included, so that a dashboard or an
	// alert finds its series before the first error.
	for p := range nPurposes {
		for i, k := range replyKinds {
			n := c.t.health.counts[p][i].Load()
			ch <- prometheus.MustNewConstMetric(descReplyErrors, prometheus.CounterValue, float64(n), p.String(), k)
		}
	}
	failing := map[string]bool{}
	for _, p := range c.t.Problems() {
		failing[p.Purpose] = true
	}
	for _, p := range purposeNames {
		ch <- prometheus.MustNewConstMetric(descFailing, prometheus.GaugeValue, bool01(failing[p]), p)
	}
}

var (
	descPurges = prometheus.NewDesc("cacheproxy_purges_total",
		"Purges this instance recorded for the fleet, by kind.", []string{"kind"}, nil)
	descInvalidations = prometheus.NewDesc("cacheproxy_invalidations_received_total",
		"Purge messages received from the fleet (this instance's own included).", nil, nil)
	descResyncs = prometheus.NewDesc("cacheproxy_subscription_reconnects_total",
		"Times the purge subscription was re-established after a loss.", nil, nil)
	descFlushes = prometheus.NewDesc("cacheproxy_l1_flushes_total",
		"Times L1 was flushed because a purge may have been missed.", nil, nil)
	descL1Usable = prometheus.NewDesc("cacheproxy_l1_usable",
		"1 while L1 may be used (purge subscription healthy and complete), else 0.", nil, nil)
)

type fleetCollector struct{ f *Fleet }

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPurges, descInvalidations, descResyncs, descFlushes, descL1Usable} {
		ch <- d
	}
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Stats()
	for kind, n := range st.Purges {
		ch <- prometheus.MustNewConstMetric(descPurges, prometheus.CounterValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(descInvalidations, prometheus.CounterValue, float64(st.InvalidationsRecvd))
	ch <- prometheus.MustNewConstMetric(descResyncs, prometheus.CounterValue, float64(st.SubscriptionResyncs))
	ch <- prometheus.MustNewConstMetric(descFlushes, prometheus.CounterValue, float64(st.L1Flushes))
	ch <- prometheus.MustNewConstMetric(descL1Usable, prometheus.GaugeValue, bool01(st.LocalUsable))
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
