package main

import (
	"fmt"
	"strings"
)

// Systems as named in the results.
const (
	sysOrigin = "origin alone"
	sysL1     = "cacheproxy (L1)"
	sysNginx  = "nginx"
	sysVarn   = "varnish"
	sysPlain  = "plainproxy (no cache)"
	sysShared = "cacheproxy (L2 only, one Redis)"
	// sysSharedCluster is the shared scenario on a Redis Cluster (-redis
	// cluster or both).
	sysSharedCluster = "cacheproxy (L2 only, Cluster of 3)"
)

// redisText names the Redis that shared and stampede ran cacheproxy
// against.
func (h *harness) redisText() string {
	switch h.opt.redis {
	case redisCluster:
		return "Redis Cluster of 3 masters (`-redis cluster`)"
	case redisBoth:
		return "Redis, one redis-server for one system and a Redis Cluster of 3 masters for the other (`-redis both`)"
	}
	return "Redis (one redis-server)"
}

func (h *harness) hotSection(b *strings.Builder) {
	b.WriteString("100 keys, every request a hit after warm-up (L1 for cacheproxy); wrk -t1, closed loop. " +
		"cacheproxy runs with `-l1-max-bytes 256MiB -l1-ttl 5m` (no Redis); nginx caches on tmpfs; Varnish `-s malloc,256M`. " +
		h.roundsText(true) +
		"\"origin reqs\" counts requests that reached the origin during the measured runs (0 means all hits).\n\n")
	h.throughputTable(b, h.rows("hot"))
	b.WriteString("Ratios of cacheproxy (L1) to each system (throughput: higher is better for cacheproxy; CPU per request: lower is better):\n\n")
	var rows [][]string
	for _, r := range h.rows("hot") {
		if r.System == sysL1 {
			continue
		}
		us := h.find("hot", sysL1, r.Variant)
		if us == nil {
			continue
		}
		rows = append(rows, []string{r.System, r.Variant, ratio(us.RPS, r.RPS), ratio(us.CPUPerReq, r.CPUPerReq), ratio(us.P99, r.P99)})
	}
	table(b, []string{"vs", "load", "throughput", "CPU/req", "p99"}, rows)
}

// roundsText says how the closed-loop figures were measured, for a
// table of several systems or of one.
func (h *harness) roundsText(several bool) string {
	if h.opt.rounds == 1 {
		return fmt.Sprintf("One measured run of %v per load. ", h.opt.duration)
	}
	how := fmt.Sprintf("Each load is measured in %d rounds of %v", h.opt.rounds, h.opt.duration)
	if several {
		how += " that take the systems in turn (all of them up at once, each with its own origin), " +
			"so that a drift in the machine's speed weighs on all alike"
	}
	return how + "; rates, latencies and CPU are the medians over the rounds, counts their sums, " +
		"and \"req/s by round\" shows the spread. "
}

// throughputTable is the table of the closed-loop scenarios.
func (h *harness) throughputTable(b *strings.Builder, rs []row) {
	var rows [][]string
	for _, r := range rs {
		origin := "—"
		if r.OriginReqs >= 0 {
			origin = num(float64(r.OriginReqs))
		}
		var byRound []string
		for _, v := range r.RPSRuns {
			byRound = append(byRound, num(v))
		}
		rows = append(rows, []string{r.System, r.Variant, num(r.RPS), strings.Join(byRound, " / "), ms(r.P50), ms(r.P99), ms(r.P999),
			num(float64(r.Errors)), us(r.CPUPerReq), mib(r.PeakRSS), origin, tiers(r.Tiers), load(r)})
	}
	table(b, []string{"system", "load", "req/s", "req/s by round", "p50 ms", "p99 ms", "p99.9 ms", "errors", "CPU µs/req", "peak RSS", "origin reqs", "cacheproxy X-Cache", "other load (CPUs)"}, rows)
}

func (h *harness) sharedSection(b *strings.Builder) {
	b.WriteString("The hot load against cacheproxy with `-l1-max-bytes 0` and a private " + h.redisText() + ": every hit is a Redis GET. ")
	if h.opt.redis != redisSingle {
		fmt.Fprintf(b, "The Cluster is %d redis-servers with `--cluster-enabled yes` and no replicas, joined with `redis-cli --cluster create`, "+
			"named to cacheproxy as `-redis redis://NODE1?addr=NODE2&addr=NODE3`; all its nodes run on the server CPUs. ", clusterNodes)
	}
	if h.opt.redis == redisBoth {
		b.WriteString("Both are up at once, each behind its own cacheproxy and origin. ")
	}
	b.WriteString(h.roundsText(h.opt.redis == redisBoth) +
		"CPU and RSS are cacheproxy's plus Redis's (every Redis process).\n\n")
	h.throughputTable(b, h.rows("shared"))
	var rows [][]string
	for _, r := range h.rows("shared") {
		if r.System != sysShared {
			continue
		}
		if c := h.find("shared", sysSharedCluster, r.Variant); c != nil {
			rows = append(rows, []string{r.Variant, num(r.RPS), num(c.RPS), ratio(c.RPS, r.RPS), ms(r.P99), ms(c.P99), us(r.CPUPerReq), us(c.CPUPerReq)})
		}
	}
	if len(rows) > 0 {
		b.WriteString("Shared-tier hits on a Cluster of 3 against one Redis (ratio: Cluster / one Redis):\n\n")
		table(b, []string{"load", "one Redis req/s", "Cluster of 3 req/s", "ratio", "one Redis p99 ms", "Cluster p99 ms", "one Redis CPU µs/req", "Cluster CPU µs/req"}, rows)
	}
	rows = nil
	for _, r := range h.rows("shared") {
		if l1 := h.find("hot", sysL1, r.Variant); l1 != nil {
			rows = append(rows, []string{r.System, r.Variant, num(r.RPS), num(l1.RPS), ratio(r.RPS, l1.RPS)})
		}
	}
	if len(rows) > 0 {
		table(b, []string{"system", "load", "L2 only req/s", "L1 req/s", "ratio"}, rows)
	}
}

// target is one goal of the issue and how this run did against it.
type target struct {
	goal, measured string
	met            bool
	known          bool   // false: not measured in this run
	inconclusive   string // why this run cannot tell
}

// writeTargets checks the targets against the results.
func writeTargets(b *strings.Builder, h *harness) {
	var ts []target
	add := func(goal string, ok bool, measured string) {
		ts = append(ts, target{goal: goal, measured: measured, met: ok, known: measured != ""})
	}

	// worst returns the smallest ratio of system a to b over the hot
	// variants (filtered by conns when > 0), and the list of all.
	worst := func(scA, a, scB, bSys string, conns int, inverse bool) (bool, float64, string) {
		var parts []string
		min, any := 0.0, false
		for _, r := range h.rows(scA) {
			if r.System != a || (conns > 0 && r.Conns != conns) {
				continue
			}
			o := h.find(scB, bSys, r.Variant)
			if o == nil || o.RPS == 0 || o.CPUPerReq == 0 {
				continue
			}
			v := r.RPS / o.RPS
			if inverse {
				v = r.CPUPerReq / o.CPUPerReq
			}
			parts = append(parts, fmt.Sprintf("%.2f (%s)", v, r.Variant))
			if !any || (!inverse && v < min) || (inverse && v > min) {
				min, any = v, true
			}
		}
		return any, min, strings.Join(parts, "; ")
	}
	if ok, v, s := worst("hot", sysL1, "hot", sysOrigin, 0, false); ok {
		add("hot L1 throughput ≥ 0.95× origin alone", v >= 0.95, s)
	}
	if ok, v, s := worst("hot", sysL1, "hot", sysNginx, 0, false); ok {
		add("hot L1 throughput ≥ 0.9× nginx", v >= 0.9, s)
	}
	if ok, v, s := worst("hot", sysL1, "hot", sysVarn, 256, false); ok {
		add("hot L1 throughput above Varnish at 256 connections", v > 1, s)
	}
	if ok, v, s := worst("hot", sysL1, "hot", sysOrigin, 0, true); ok {
		add("hot server CPU/request ≤ 1.1× origin alone", v <= 1.1, s)
	}
	if ok, v, s := worst("shared", sysShared, "hot", sysL1, 0, false); ok {
		add("shared tier throughput ≥ 0.5× hot L1", v >= 0.5, s)
	}
	if ok, v, s := worst("shared", sysSharedCluster, "hot", sysL1, 0, false); ok {
		add("shared tier throughput ≥ 0.5× hot L1, on a Cluster of 3", v >= 0.5, s)
	}
	ts = append(ts, h.zipfTargets()...)
	ts = append(ts, h.stampedeTargets()...)
	ts = append(ts, h.faultTargets()...)

	b.WriteString("## Targets\n\n")
	var rows [][]string
	var met, missed, unsure int
	for _, t := range ts {
		res := "met"
		switch {
		case !t.known:
			res = "not measured"
		case t.inconclusive != "":
			res, unsure = "inconclusive: "+t.inconclusive, unsure+1
		case !t.met:
			res, missed = "**MISSED**", missed+1
		default:
			met++
		}
		rows = append(rows, []string{t.goal, t.measured, res})
	}
	if len(rows) == 0 {
		b.WriteString("No target was measured in this run.\n\n")
		return
	}
	fmt.Fprintf(b, "Of %d targets checked in this run: %d met, %d **missed**, %d inconclusive.", len(rows), met, missed, unsure)
	if missed > 0 {
		b.WriteString(" The misses are the rows marked MISSED.")
	}
	b.WriteString("\n\n")
	table(b, []string{"target", "measured", "result"}, rows)
}
