package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers/shared"
)

// stats is the JSON of GET /stats.
type stats struct {
	// Proxy counts requests by X-Cache result; GET /vocabulary
	// (proxy.Vocab) describes each result.
	Proxy proxy.Stats `json:"proxy"`
	// Outcomes is the outcomes of GET /vocabulary, kept here for the
	// readers of /stats that took it from here before /vocabulary was.
	Outcomes []proxy.OutcomeInfo `json:"outcomes"`
	L1       *l1Stats            `json:"l1,omitempty"`
	Redis    *redisStats         `json:"redis,omitempty"`
	Fleet    *fleetStats         `json:"fleet,omitempty"`
}

type fleetStats struct {
	Self    shared.FleetStats `json:"self"`
	Members []shared.Member   `json:"members"`
	Error   string            `json:"error,omitempty"`
}

type l1Stats struct {
	Entries  int64 `json:"entries"`
	Bytes    int64 `json:"bytes"`
	MaxBytes int64 `json:"max_bytes"`
}

type redisStats struct {
	Healthy bool  `json:"healthy"`
	Errors  int64 `json:"errors"`
	// Problems lists the kinds of calls Redis answers errors to (see
	// shared.Tier.Problems); ReplyErrors counts the error replies, by
	// purpose then kind.
	Problems    []shared.Problem            `json:"problems,omitempty"`
	ReplyErrors map[string]map[string]int64 `json:"reply_errors,omitempty"`
	// Undecodable counts entries found in Redis that did not decode
	// (written by another encoding version), served as misses.
	Undecodable int64 `json:"undecodable"`
}

// readiness is the JSON of GET /readyz.
type readiness struct {
	// Status is "ok", "degraded" (Redis or the origin down: still ready,
	// serving what can be served), "starting" (not ready: the purges are
	// not loaded yet) or "draining" (not ready).
	Status string `json:"status"`
	// Reason says why the status is not "ok".
	Reason string       `json:"reason,omitempty"`
	Origin originStatus `json:"origin"`
	// Redis is "up", "down" (unreachable), "failing" (reachable, but it
	// answers errors to some kind of call: RedisProblems) or "disabled".
	Redis         string           `json:"redis"`
	RedisProblems []shared.Problem `json:"redis_problems,omitempty"`
	// L1 is "enabled" or "disabled".
	L1 string `json:"l1"`
}

type originStatus struct {
	Up        bool   `json:"up"`
	LastError string `json:"last_error,omitempty"`
}

// newAdmin returns the admin handler reporting on s. draining is set once
// the graceful shutdown has started.
func newAdmin(cfg config, s *stack, draining *atomic.Bool) (*admin.Handler, error) {
	reg, err := newRegistry(s)
	if err != nil {
		return nil, err
	}
	return admin.New(admin.Options{
		Token:   cfg.AdminToken,
		Stats:   func() any { return s.stats(cfg) },
		Ready:   func() (bool, any) { return s.ready(draining.Load()) },
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
	})
}

func (s *stack) stats(cfg config) stats {
	st := stats{Proxy: s.proxy.Stats(), Outcomes: proxy.Outcomes()}
	if s.local != nil {
		st.L1 = &l1Stats{Entries: s.local.Len(), Bytes: s.local.Bytes(), MaxBytes: cfg.L1MaxBytes}
	}
	if s.shared != nil {
		st.Redis = &redisStats{Healthy: s.shared.Healthy(), Errors: s.shared.Errors(), Undecodable: s.shared.Undecodable(),
			Problems: s.shared.Problems(), ReplyErrors: s.shared.ReplyErrors()}
	}
	if s.fleet != nil {
		st.Fleet = &fleetStats{Self: s.fleet.Stats(), Members: []shared.Member{}}
		if ms, err := s.fleet.Members(context.Background()); err != nil {
			st.Fleet.Error = "fleet unknown: " + err.Error()
		} else {
			st.Fleet.Members = ms
		}
	}
	return st
}

// memberInfo is what this instance announces to the fleet with each
// heartbeat, shown by GET /stats and cacheproxy stats on every instance.
type memberInfo struct {
	ID             string           `json:"id"`
	Listen         string           `json:"listen"`
	Admin          string           `json:"admin"`
	Started        time.Time        `json:"started"`
	Requests       map[string]int64 `json:"requests"`
	OriginRequests int64            `json:"origin_requests"`
	HitRatio       float64          `json:"hit_ratio"`
}

func (s *stack) memberInfo() any {
	ps := s.proxy.Stats()
	return memberInfo{ID: s.id, Listen: s.proxyAddr, Admin: s.adminAddr, Started: s.started,
		Requests: ps.Requests, OriginRequests: ps.OriginRequests, HitRatio: ps.HitRatio}
}

// startGrace is how long a new instance in a fleet waits to load the
// purges and subscribe before it gives up waiting for Redis and becomes
// ready without the shared tier (serving from the origin, its L1 unused
// until the purges are loaded).
const startGrace = 5 * time.Second

// ready reports readiness: not ready while starting (in a fleet, until the
// instance may use its L1: subscribed, purges loaded; or until it has
// decided to run without Redis, after startGrace) and while draining.
// Redis or the origin being down only degrades: the proxy still serves
// what it holds (and answers 502/504 for the rest), and an unready proxy
// would get no traffic to notice the origin is back.
func (s *stack) ready(draining bool) (bool, any) {
	ps := s.proxy.Stats()
	r := readiness{
		Status: "ok",
		Origin: originStatus{Up: ps.OriginUp, LastError: ps.OriginLastError},
		Redis:  "disabled",
		L1:     "disabled",
	}
	if s.local != nil {
		r.L1 = "enabled"
	}
	if s.shared != nil {
		r.Redis = "up"
		if !s.shared.Reachable() {
			r.Redis, r.Status, r.Reason = "down", "degraded", "redis unreachable"
		} else if ps := s.shared.Problems(); len(ps) > 0 {
			r.Redis, r.Status, r.RedisProblems = "failing", "degraded", ps
			r.Reason = "redis answers errors to " + ps[0].Purpose + " calls: " + ps[0].Err
		}
	}
	if s.fleet != nil && !s.started.IsZero() && !s.warm.Load() {
		if s.fleet.LocalUsable() {
			s.warm.Store(true)
		} else if time.Since(s.started) > startGrace {
			s.warm.Store(true)
		}
	}
	switch {
	case draining:
		r.Status, r.Reason = "draining", "shutting down"
	case s.fleet != nil && !s.warm.Load():
		r.Status, r.Reason = "starting", "loading purges and subscribing"
	case !ps.OriginUp:
		r.Status, r.Reason = "degraded", "origin unreachable"
	}
	if s.fleet != nil && s.warm.Load() && !s.fleet.LocalUsable() && r.Status == "ok" {
		r.Status, r.Reason = "degraded", "L1 unused: purges not in sync with the fleet"
	}
	return r.Status == "ok" || r.Status == "degraded", r
}

// newRegistry returns the registry served on /metrics: the proxy's and
// the tiers' collectors, and Go and process metrics.
func newRegistry(s *stack) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{
		s.proxy.Collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	cs = append(cs, s.connCollectors()...)
	if s.local != nil {
		cs = append(cs, s.local.Collector())
	}
	if s.shared != nil {
		cs = append(cs, s.shared.Collector())
	}
	if s.fleet != nil {
		cs = append(cs, s.fleet.Collector())
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}
