package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The cluster fault's analysis: the load's requests split by the master
// that held their key before the kill (the dead master's slots, the
// surviving masters' slots) and by phase (before the kill, from the kill
// to the replica's promotion, after it), every request placed by the
// time it was handed to the HTTP client.

// clusterRecoveryGoal is how soon after the promotion the dead master's
// slots must be L2 hits again, every read of them (issue 19).
const clusterRecoveryGoal = 10 * time.Second

// slotPhase is one phase of the requests for one group of slots.
type slotPhase struct {
	Requests int            `json:"requests"`
	HitL2    int            `json:"hit_l2"`
	Other    int            `json:"other"`  // answered 2xx, not from L2
	Failed   int            `json:"failed"` // no response or not 2xx
	XCache   map[string]int `json:"x_cache,omitempty"`
	P99      float64        `json:"p99_ms"`
}

// slotGroup is one group of slots through the run.
type slotGroup struct {
	Before   slotPhase `json:"before"`   // before the kill
	Failover slotPhase `json:"failover"` // from the kill to the promotion (to the end if none)
	After    slotPhase `json:"after"`    // from the promotion
	// MaxGapMS is the longest time without an L2 hit (between the ends
	// of consecutive HIT-L2 answers) before the kill and from it on.
	MaxGapBeforeMS float64 `json:"max_gap_before_ms"`
	MaxGapSinceMS  float64 `json:"max_gap_since_kill_ms"`
}

// clusterSec is one second of the cluster fault from the kill.
type clusterSec struct {
	T            int `json:"t"` // seconds from the kill
	SurvivorHits int `json:"survivor_hit_l2"`
	SurvivorNot  int `json:"survivor_not_hit_l2"`
	VictimHits   int `json:"victim_hit_l2"`
	VictimNot    int `json:"victim_not_hit_l2"`
}

// clusterStats is the cluster fault's result, as results.json holds it.
type clusterStats struct {
	VictimKeys   int `json:"victim_keys"`   // load keys on the dead master
	SurvivorKeys int `json:"survivor_keys"` // on the others
	// KillS and PromotionS are offsets from the run's start; PromotionS
	// is -1 if no promotion was seen.
	KillS      float64   `json:"kill_s"`
	PromotionS float64   `json:"promotion_s"`
	Survivors  slotGroup `json:"survivors"`
	Victim     slotGroup `json:"victim"`
	// FirstHitS is the time from the promotion to the start of the first
	// read of the dead master's slots after the kill answered HIT-L2;
	// SteadyS to the start of the first such hit after which every read
	// of them was one. Negative: before the promotion; nil when not seen
	// (or no promotion).
	FirstHitS *float64     `json:"first_hit_l2_s"`
	SteadyS   *float64     `json:"steady_s"`
	Timeline  []clusterSec `json:"timeline"`
}

// survivorsMet: from the kill on, every read of a surviving master's
// slots was an L2 hit.
func (c *clusterStats) survivorsMet() bool {
	s := c.Survivors
	return s.Failover.Requests+s.After.Requests > 0 &&
		s.Failover.HitL2 == s.Failover.Requests && s.After.HitL2 == s.After.Requests
}

// victimMet: the dead master's slots were all L2 hits again within
// clusterRecoveryGoal of the promotion.
func (c *clusterStats) victimMet() bool {
	return c.PromotionS >= 0 && c.SteadyS != nil && *c.SteadyS <= clusterRecoveryGoal.Seconds()
}

// analyzeCluster computes the cluster fault's figures over [start, end):
// victim says which keys the dead master held, kill and promoted are
// offsets from the run's start (promoted -1 if not seen).
func analyzeCluster(reqs []reqRecord, victim map[int]bool, start, kill, promoted, end time.Duration) clusterStats {
	cs := clusterStats{KillS: kill.Seconds(), PromotionS: -1}
	failoverEnd := end
	if promoted >= 0 {
		cs.PromotionS, failoverEnd = promoted.Seconds(), promoted
	}
	group := func(isVictim bool) slotGroup {
		var g slotGroup
		phases := []struct {
			p        *slotPhase
			from, to time.Duration
		}{{&g.Before, start, kill}, {&g.Failover, kill, failoverEnd}, {&g.After, failoverEnd, end}}
		lat := make([][]time.Duration, len(phases))
		var lastHit time.Duration = -1
		for _, r := range reqs {
			if victim[r.key] != isVictim || r.start < start || r.start >= end {
				continue
			}
			for i, ph := range phases {
				if r.start < ph.from || r.start >= ph.to {
					continue
				}
				ph.p.Requests++
				switch {
				case r.failed():
					ph.p.Failed++
				case r.xcache == "HIT-L2":
					ph.p.HitL2++
				default:
					ph.p.Other++
				}
				if r.xcache != "HIT-L2" {
					if ph.p.XCache == nil {
						ph.p.XCache = map[string]int{}
					}
					ph.p.XCache[xcacheName(r)]++
				}
				lat[i] = append(lat[i], r.end-r.due)
			}
		}
		for i, ph := range phases {
			ph.p.P99 = percentileMS(lat[i], 99)
		}
		// Gaps between L2 hits, by the time each answer came back.
		var hits []time.Duration
		for _, r := range reqs {
			if victim[r.key] == isVictim && !r.failed() && r.xcache == "HIT-L2" && r.end >= start && r.end < end {
				hits = append(hits, r.end)
			}
		}
		slices.Sort(hits)
		for _, h := range hits {
			if lastHit >= 0 {
				gap := float64(h-lastHit) / float64(time.Millisecond)
				if h < kill {
					g.MaxGapBeforeMS = math.Max(g.MaxGapBeforeMS, gap)
				} else {
					g.MaxGapSinceMS = math.Max(g.MaxGapSinceMS, gap)
				}
			}
			lastHit = h
		}
		// No hit from the kill to the end: the gap runs to the end.
		if lastHit < kill || len(hits) == 0 {
			from := kill
			if lastHit >= 0 {
				from = lastHit
			}
			g.MaxGapSinceMS = math.Max(g.MaxGapSinceMS, float64(end-from)/float64(time.Millisecond))
		}
		return g
	}
	cs.Survivors, cs.Victim = group(false), group(true)

	// The dead master's slots: the first hit after the kill, and the first
	// hit after the last read that was not one.
	var first, lastBad, steady time.Duration = -1, -1, -1
	for _, r := range reqs {
		if !victim[r.key] || r.start < kill || r.start >= end {
			continue
		}
		if r.failed() || r.xcache != "HIT-L2" {
			lastBad = max(lastBad, r.start)
		} else if first < 0 || r.start < first {
			first = r.start
		}
	}
	for _, r := range reqs {
		if victim[r.key] && r.start >= kill && r.start < end && r.start > lastBad && !r.failed() && r.xcache == "HIT-L2" &&
			(steady < 0 || r.start < steady) {
			steady = r.start
		}
	}
	if promoted >= 0 {
		if first >= 0 {
			v := (first - promoted).Seconds()
			cs.FirstHitS = &v
		}
		if steady >= 0 {
			v := (steady - promoted).Seconds()
			cs.SteadyS = &v
		}
	}

	// A timeline by second from the kill.
	n := int(math.Ceil((end - kill).Seconds()))
	cs.Timeline = make([]clusterSec, max(n, 0))
	for i := range cs.Timeline {
		cs.Timeline[i].T = i
	}
	for _, r := range reqs {
		if r.start < kill || r.start >= end {
			continue
		}
		sec := &cs.Timeline[int((r.start-kill)/time.Second)]
		hit := !r.failed() && r.xcache == "HIT-L2"
		switch {
		case victim[r.key] && hit:
			sec.VictimHits++
		case victim[r.key]:
			sec.VictimNot++
		case hit:
			sec.SurvivorHits++
		default:
			sec.SurvivorNot++
		}
	}
	return cs
}

// xcacheName names what a request got that was not an L2 hit: its
// X-Cache, its status if it failed, "no answer" without a response.
func xcacheName(r reqRecord) string {
	switch {
	case r.status == 0:
		return "no answer"
	case r.failed():
		return fmt.Sprintf("status %d", r.status)
	case r.xcache == "":
		return "no X-Cache"
	}
	return r.xcache
}

// clusterFaultCommand is the command that runs the cluster fault alone.
const clusterFaultCommand = "bash bench/run.sh --scenarios faults --faults cluster-master-kill"

// clusterSection writes the cluster fault's table, if it ran.
func (h *harness) clusterSection(b *strings.Builder) {
	for _, fs := range h.faultRows() {
		c := fs.Cluster
		if c == nil {
			continue
		}
		fmt.Fprintf(b, "### %s\n\n", fs.Title)
		fmt.Fprintf(b, "Command: `%s`. A Redis Cluster of 3 masters with a replica each (`--cluster-node-timeout 2000 --cluster-require-full-coverage no`) "+
			"under the 3 instances, which run **with L1 off** (`-l1-max-bytes 0 -drain 0`), so that every request is a read of L2 and its X-Cache says whether L2 answered; "+
			"the same %d keys (`max-age=300`), each read until an instance answered it `HIT-L2` first, the same open-loop load, no purges. "+
			"The master killed (SIGKILL) is the first that holds load keys and not the fleet's metadata slot (the slot of `%s`); "+
			"the promotion is when its replica's `ROLE` first says master (polled every 100 ms). "+
			"Requests are split by the master that held their key before the kill and placed by the time each started: "+
			"before the kill / from the kill to the promotion / after the promotion.\n\n",
			clusterFaultCommand, faultKeys, benchMetaKey)
		promo := "not seen"
		if c.PromotionS >= 0 {
			promo = fmt.Sprintf("%.1f s after the kill", c.PromotionS-c.KillS)
		}
		group := func(name string, keys int, g slotGroup, goal string) []string {
			ph := []slotPhase{g.Before, g.Failover, g.After}
			var reqs, hits, not, p99 []string
			for _, p := range ph {
				reqs = append(reqs, fmt.Sprint(p.Requests))
				hits = append(hits, fmt.Sprint(p.HitL2))
				not = append(not, fmt.Sprint(p.Requests-p.HitL2))
				p99 = append(p99, ms(p.P99))
			}
			return []string{name, fmt.Sprint(keys), strings.Join(reqs, " / "), strings.Join(hits, " / "), strings.Join(not, " / "),
				fmt.Sprintf("%d / %d / %d", g.Before.Failed, g.Failover.Failed, g.After.Failed),
				strings.Join(p99, " / "), fmt.Sprintf("%s / %s", ms(g.MaxGapBeforeMS), ms(g.MaxGapSinceMS)), goal}
		}
		verdict := func(ok bool, what string) string {
			if ok {
				return "met: " + what
			}
			return "**missed**: " + what
		}
		table(b, []string{"slots", "keys", "requests", "HIT-L2", "not HIT-L2", "failed", "p99 ms", "longest without HIT-L2, ms: before / since the kill", "goal"}, [][]string{
			group("surviving masters'", c.SurvivorKeys, c.Survivors, verdict(c.survivorsMet(), "every read HIT-L2 from the kill on")),
			group("dead master's (its replica's after the promotion)", c.VictimKeys, c.Victim,
				verdict(c.victimMet(), fmt.Sprintf("every read HIT-L2 within %s of the promotion", clusterRecoveryGoal))),
		})
		fmt.Fprintf(b, "\nPromotion %s. The dead master's slots: first HIT-L2 %s after the promotion, every read HIT-L2 (steady) from %s after it.",
			promo, signedSeconds(c.FirstHitS), signedSeconds(c.SteadyS))
		for _, g := range []struct {
			name string
			g    slotGroup
		}{{"surviving masters' slots", c.Survivors}, {"dead master's slots", c.Victim}} {
			var parts []string
			for i, p := range []slotPhase{g.g.Before, g.g.Failover, g.g.After} {
				if len(p.XCache) > 0 {
					parts = append(parts, fmt.Sprintf("%s %s", []string{"before", "failover", "after"}[i], statusCounts(p.XCache)))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(b, " Not HIT-L2 on the %s: %s.", g.name, strings.Join(parts, "; "))
			}
		}
		b.WriteString(" results.json holds a per-second timeline from the kill.\n\n")
	}
}

// signedSeconds formats a time relative to the promotion; nil is "not
// seen".
func signedSeconds(v *float64) string {
	if v == nil {
		return "not seen"
	}
	return fmt.Sprintf("%+.1f s", *v)
}
