package main

import (
	"fmt"
	"time"
)

// row is one measurement: one system under one load. Fields that do not
// apply to a scenario are left zero (or -1 where zero is a real value).
type row struct {
	Scenario string `json:"scenario"`
	System   string `json:"system"`
	Variant  string `json:"variant"`
	Size     int    `json:"size,omitempty"`  // body bytes
	Conns    int    `json:"conns,omitempty"` // closed loop connections
	Tool     string `json:"tool"`

	RPS float64 `json:"rps"`
	// RPSRuns is the throughput of each round when RPS is their median.
	RPSRuns  []float64 `json:"rps_runs,omitempty"`
	P50      float64   `json:"p50_ms"`
	P99      float64   `json:"p99_ms"`
	P999     float64   `json:"p999_ms"`
	MaxMS    float64   `json:"max_ms,omitempty"`
	Requests uint64    `json:"requests"`
	Errors   uint64    `json:"errors"`
	Seconds  float64   `json:"seconds"`

	// CPUPerReq is the server processes' CPU time per request, in µs.
	CPUPerReq float64 `json:"cpu_us_per_req"`
	// PeakRSS is the sum of the server processes' VmHWM, in bytes.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// OtherLoad is the CPU used by unrelated work during the run, in
	// CPUs; -1 if unknown. See otherLoad.
	OtherLoad float64 `json:"other_load_cpus"`
	// Retried: the first measurement was noisy (see noisyLoad); this is
	// the quieter of two.
	Retried bool `json:"retried,omitempty"`

	OriginReqs int64   `json:"origin_requests"`
	OriginRPS  float64 `json:"origin_rps"`
	// HitRatio is 1 - origin requests / requests; -1 when meaningless.
	HitRatio float64          `json:"hit_ratio"`
	Tiers    map[string]int64 `json:"tiers,omitempty"` // cacheproxy: X-Cache counts
	// Objects and ObjectBytes are what the cache held at the end, -1 if
	// unknown.
	Objects     int64   `json:"objects"`
	ObjectBytes int64   `json:"object_bytes"`
	Trials      []int64 `json:"trials,omitempty"` // stampede: origin requests per trial

	// Zipf: the closed-loop warm-up before the measured phase, and the
	// references on the same trace: unbounded, ideal LFU and LRU at this
	// system's capacity (SimCapacity objects), ideal LFU at cacheproxy's
	// and at the budget's (as many bodies as the budget holds).
	WarmRequests uint64  `json:"warm_requests,omitempty"`
	SimUnbounded float64 `json:"sim_unbounded,omitempty"`
	SimCapacity  int     `json:"sim_capacity,omitempty"`
	SimLFU       float64 `json:"sim_lfu,omitempty"`
	SimLRU       float64 `json:"sim_lru,omitempty"`
	SimLFUOurs   float64 `json:"sim_lfu_ours_capacity,omitempty"`
	SimLFUBudget float64 `json:"sim_lfu_budget,omitempty"`
	Note         string  `json:"note,omitempty"`
	// Fault is the faults scenario's measurement of one fault.
	Fault *faultStats `json:"fault,omitempty"`
	// FleetSize is the scale scenario's measurement of one fleet size.
	FleetSize *fleetSizeStats `json:"fleet_size,omitempty"`
}

// summary is the row as a progress line.
func (r row) summary() string {
	s := fmt.Sprintf("p50 %6.2f ms  p99 %7.2f ms  err %d  other load %.2f", r.P50, r.P99, r.Errors, r.OtherLoad)
	if r.RPS > 0 {
		s = fmt.Sprintf("%8.0f req/s  ", r.RPS) + s
	}
	if r.OriginReqs > 0 || r.HitRatio > 0 {
		s += fmt.Sprintf("  origin %d", r.OriginReqs)
	}
	if r.HitRatio >= 0 && r.Scenario != "hot" && r.Scenario != "shared" {
		s += fmt.Sprintf("  hit %.1f%%", 100*r.HitRatio)
	}
	return s
}

// simOut is loadgen -simulate's output.
type simOut struct {
	Requests  uint64   `json:"requests"`
	Distinct  uint64   `json:"distinct"`
	Unbounded float64  `json:"unbounded_hit_ratio"`
	LFU       []simHit `json:"lfu"`
	LRU       []simHit `json:"lru"`
}

type simHit struct {
	Capacity int     `json:"capacity_objects"`
	HitRatio float64 `json:"hit_ratio"`
}

// usageDelta turns two readings of the servers' usage into per-request CPU
// and peak RSS.
func usageDelta(before, after usage, requests uint64) (cpuPerReq float64, peak int64) {
	if requests > 0 {
		cpuPerReq = float64(after.CPU-before.CPU) / float64(time.Microsecond) / float64(requests)
	}
	return cpuPerReq, after.PeakRSS
}
