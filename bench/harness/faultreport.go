package main

import (
	"fmt"
	"sort"
	"strings"
)

// faultRows returns the faults scenario's measurements, in order.
func (h *harness) faultRows() []*faultStats {
	var out []*faultStats
	for _, r := range h.rows("faults") {
		if r.Fault != nil {
			out = append(out, r.Fault)
		}
	}
	return out
}

// originGoal reports whether a Redis fault kept the origin rate during it
// within 1.5× before's, and a failing origin with hot keys within 2× (its
// own count, and the instances' attempts, refused connections included).
// Other faults have no such goal.
func (fs *faultStats) originGoal() (applies, met bool) {
	switch {
	case fs.RedisFault:
		return true, fs.During.OriginRPS <= 1.5*fs.Before.OriginRPS
	case fs.HotOriginFault:
		return true, max(fs.During.OriginRPS, fs.AttemptRPS) <= 2*fs.Before.OriginRPS
	}
	return false, true
}

func (h *harness) faultsSection(b *strings.Builder) {
	before, after := h.faultPhases()
	fmt.Fprintf(b, "3 cacheproxy instances sharing one Redis (`-l1-max-bytes 64MiB -l1-ttl %s -drain 0`: an entry stays in an instance's L1 at most %s, and so may an instance cut off from Redis keep using its L1), "+
		"%d hot keys (`/blob/{key}?size=1024`, `max-age=300`, warmed into every instance first), "+
		"%s req/s in an open loop from the harness process (pinned where loadgen runs), keys uniform, rotating over the instances; "+
		"one URL purge a second (the key's version bumped at the origin, then `DELETE /cache?url=` on the instances' admin listeners in turn). "+
		"For each fault a fresh stack, its purge log aged an hour (as for a fleet in its steady state: a purge log younger than the fleet's window, %s + fill timeout + heartbeats, makes every purge answer 202, as after Redis restarted empty or was flushed), runs %s before, the fault, and %s after the during phase; "+
		"a process killed or stopped stays so for %s, and the during phase lasts at least %s from the fault's start, so that the instant faults (restart, flush) have a window as long.\n\n",
		faultL1TTL, faultL1TTL, faultKeys, num(h.faultRate()), faultL1TTL, before, after, faultHold, faultHold)
	b.WriteString("- **failed**: requests without a response or with a status other than 2xx, by scheduled time, before / during / after; goal 0.\n" +
		"- **stale**: 200 answers to a read that *started* after a purge of its URL was answered 200, whose body (`v<version> …`) is older than the version the origin served once that purge's bump was done; goal 0. Purges answered 202 or 503 make no read stale.\n" +
		"- **origin req/s**: from the origin's `/__count`, read every 200 ms (summed over a restart of the origin); goal for a Redis fault: during ≤ 1.5× before; for a failing origin with hot keys (`origin-*-hot`): during ≤ 2× before, counting the instances' own origin attempts too (a refused connection reaches no count of the origin's).\n" +
		"- **p99**: latency from each request's scheduled time, failures included.\n" +
		fmt.Sprintf("- **recovered**: from the fault's end to the start of the first %s window with no failed request and an origin rate within 10 %% of before's (plus one request per window). "+
			"**first 200 purge**: from the fault's end to the first purge answered 200 (purges are a second apart). "+
			"**other load**: CPU used by unrelated work during the fault's run (see Machine).\n\n", recoveryWindow))
	var rows [][]string
	for _, r := range h.rows("faults") {
		fs := r.Fault
		if fs == nil {
			continue
		}
		var missed []string
		if fs.Failed > 0 {
			missed = append(missed, "failed")
		}
		if fs.Stale > 0 {
			missed = append(missed, "stale")
		}
		if applies, ok := fs.originGoal(); applies && !ok {
			missed = append(missed, "origin rate")
		}
		if c := fs.Cluster; c != nil && !c.survivorsMet() {
			missed = append(missed, "surviving slots not all HIT-L2")
		}
		if c := fs.Cluster; c != nil && !c.victimMet() {
			missed = append(missed, "dead master's slots not back in time")
		}
		goals := "met"
		if len(missed) > 0 {
			goals = "**missed**: " + strings.Join(missed, ", ")
		}
		rows = append(rows, []string{fs.Title,
			fmt.Sprintf("%d / %d / %d", fs.Before.Failed, fs.During.Failed, fs.After.Failed),
			fmt.Sprintf("%d / %d / %d", fs.Before.Stale, fs.During.Stale, fs.After.Stale),
			statusCounts(fs.Purges),
			fmt.Sprintf("%s / %s / %s", rate1(fs.Before.OriginRPS), rate1(fs.During.OriginRPS), rate1(fs.After.OriginRPS)),
			fmt.Sprintf("%s / %s", ms(fs.Before.P99), ms(fs.During.P99)),
			seconds(fs.RecoveryS), seconds(fs.FirstPurgeS), goals, load(r)})
	}
	if len(rows) > 0 {
		table(b, []string{"fault", "failed", "stale", "purges", "origin req/s", "p99 ms before / during", "recovered", "first 200 purge", "goals", "other load (CPUs)"}, rows)
	}
	for _, fs := range h.faultRows() {
		var parts []string
		if len(fs.FailSamples) > 0 {
			parts = append(parts, "failures: "+strings.Join(fs.FailSamples, "; "))
		}
		if len(fs.StaleSamples) > 0 {
			parts = append(parts, "stale reads: "+strings.Join(fs.StaleSamples, "; "))
		}
		if fs.NoVersion > 0 {
			parts = append(parts, fmt.Sprintf("**%d 2xx answers carried no version** (the stale count is incomplete)", fs.NoVersion))
		}
		if len(parts) > 0 {
			fmt.Fprintf(b, "- %s (times from the fault's start): %s\n", fs.Fault, strings.Join(parts, "; "))
		}
	}
	if c := faultCluster(h.faultRows()); c != nil {
		b.WriteString("\nThe Cluster master kill (`cluster-master-kill`) runs on another stack, described with its own table below; its purges column is empty (no purges) and its origin rate has no goal (with L1 off, the dead master's keys go to the origin until the promotion).\n")
	}
	b.WriteString("\nresults.json holds each fault's phases (requests, statuses, X-Cache, purges, origin requests, p50/p99/max) and a per-second timeline.\n\n")
	h.clusterSection(b)
}

// faultCluster returns the cluster fault's figures among fss, or nil.
func faultCluster(fss []*faultStats) *clusterStats {
	for _, fs := range fss {
		if fs.Cluster != nil {
			return fs.Cluster
		}
	}
	return nil
}

// faultTargets checks the faults scenario's goals over every fault.
func (h *harness) faultTargets() []target {
	fss := h.faultRows()
	if len(fss) == 0 {
		return nil
	}
	var failed, stale, origin []string
	okF, okS, okO, anyO := true, true, true, false
	for _, fs := range fss {
		failed = append(failed, fmt.Sprintf("%s %d", fs.Fault, fs.Failed))
		stale = append(stale, fmt.Sprintf("%s %d", fs.Fault, fs.Stale))
		okF, okS = okF && fs.Failed == 0, okS && fs.Stale == 0
		if applies, ok := fs.originGoal(); applies {
			anyO, okO = true, okO && ok
			origin = append(origin, fmt.Sprintf("%s %s→%s", fs.Fault, rate1(fs.Before.OriginRPS), rate1(max(fs.During.OriginRPS, fs.AttemptRPS))))
		}
	}
	ts := []target{
		{goal: "faults: no failed request", measured: strings.Join(failed, ", "), met: okF, known: true},
		{goal: "faults: no stale read after a 200 purge", measured: strings.Join(stale, ", "), met: okS, known: true},
	}
	if c := faultCluster(fss); c != nil {
		ts = append(ts, target{goal: fmt.Sprintf("faults: Cluster master kill: the surviving masters' slots every read HIT-L2, the dead master's again within %s of the promotion", clusterRecoveryGoal),
			measured: fmt.Sprintf("surviving: %d of %d reads from the kill HIT-L2; dead master's: first HIT-L2 %s, steady %s after the promotion",
				c.Survivors.Failover.HitL2+c.Survivors.After.HitL2, c.Survivors.Failover.Requests+c.Survivors.After.Requests,
				signedSeconds(c.FirstHitS), signedSeconds(c.SteadyS)),
			met: c.survivorsMet() && c.victimMet(), known: true})
	}
	if anyO {
		ts = append(ts, target{goal: "faults: origin req/s during a Redis fault ≤ 1.5× before, a failing origin with hot keys ≤ 2×", measured: strings.Join(origin, ", ") + " req/s", met: okO, known: true})
	}
	return ts
}

// statusCounts renders counts by status as "12×200, 3×503" ("0" is no
// response).
func statusCounts(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		name := k
		if k == "0" {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%d×%s", m[k], name))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

// rate1 formats a small rate with one decimal.
func rate1(v float64) string {
	if v >= 100 {
		return num(v)
	}
	return fmt.Sprintf("%.1f", v)
}

// seconds formats a recovery time; negative means none was seen.
func seconds(v float64) string {
	if v < 0 {
		return "not seen"
	}
	return fmt.Sprintf("%.1f s", v)
}
