package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
)

// What the fault scenario records, and the pure analysis of it. Every
// time is an offset from the run's start (t0), read from one monotonic
// clock in the harness process, so that a read and a purge compare
// exactly.

// reqRecord is one request of the fault load.
type reqRecord struct {
	due    time.Duration // when the open loop scheduled it; latency runs from here
	start  time.Duration // when it was handed to the HTTP client
	end    time.Duration // when its body was read, or it failed
	key    int
	target int   // index of the instance it went to
	status int   // 0: no response (transport error, timeout)
	ver    int64 // the body's version; -1 when the body carried none
	xcache string
	err    string
}

// failed reports whether r counts as a failed request: no response, or a
// status other than 2xx.
func (r reqRecord) failed() bool { return r.status/100 != 2 }

// purgeRecord is one purge of the purge loop: a bump of the key's
// version at the origin, then DELETE /cache?url= on one instance.
type purgeRecord struct {
	key      int
	target   int
	sent     time.Duration // the DELETE was sent
	answered time.Duration // its response (or error) came back
	status   int           // 0: no response
	// ver is the version the origin serves for key once this purge's bump
	// answered: every body fetched from the origin after the bump has at
	// least this version. When the bump failed (origin down), the last
	// version known for key.
	ver    int64
	bumped bool
}

// countSample is one reading of the origin's request counter, summed over
// the origin's restarts.
type countSample struct {
	at    time.Duration
	count int64
}

// faultWindows are the phase boundaries of one fault run: before is
// [start, faultStart), during [faultStart, duringEnd), after [duringEnd,
// end). The fault itself lasts from faultStart to faultEnd (the process
// is back, or the flush returned); during extends it to at least
// faultHold, so that an instant fault has a window of the same length as
// the others.
type faultWindows struct {
	start, faultStart, faultEnd, duringEnd, end time.Duration
}

// phaseStats are the figures of one phase.
type phaseStats struct {
	Seconds    float64        `json:"seconds"`
	Requests   int            `json:"requests"`
	Failed     int            `json:"failed"`      // no response or not 2xx, by due time
	Stale      int            `json:"stale_reads"` // by start time
	OriginReqs float64        `json:"origin_requests"`
	OriginRPS  float64        `json:"origin_rps"`
	HitRatio   float64        `json:"hit_ratio"` // 1 - origin requests / requests; -1 without requests
	P50        float64        `json:"p50_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Status     map[string]int `json:"status"` // "0" is no response
	XCache     map[string]int `json:"x_cache,omitempty"`
	Purges     map[string]int `json:"purges"` // by status, purges sent in the phase
}

// timelineSec is one second of a fault run, counted from the fault's start.
type timelineSec struct {
	T          int     `json:"t"` // seconds from the fault's start; negative before it
	Requests   int     `json:"requests"`
	Failed     int     `json:"failed"`
	Stale      int     `json:"stale_reads"`
	OriginReqs float64 `json:"origin_requests"`
	P99        float64 `json:"p99_ms"`
}

// faultStats is the result of one fault run, as results.json holds it.
type faultStats struct {
	Fault      string `json:"fault"`
	Title      string `json:"title"`
	RedisFault bool   `json:"redis_fault"`
	// HotOriginFault: a failing origin with hot keys (faults.go); its
	// goal is origin req/s during ≤ 2× before. AttemptRPS is the
	// instances' own count of origin requests during the fault, refused
	// connections included.
	HotOriginFault bool    `json:"hot_origin_fault,omitempty"`
	AttemptRPS     float64 `json:"attempt_rps,omitempty"`
	// Cluster is the cluster fault's split by slots (faultclusterstats.go).
	Cluster *clusterStats `json:"cluster,omitempty"`
	FaultS  float64       `json:"fault_s"`  // from the fault's start to its end
	DuringS float64       `json:"during_s"` // the during phase
	// Offsets from the run's start, in seconds.
	FaultStartS float64 `json:"fault_start_s"`
	FaultEndS   float64 `json:"fault_end_s"`

	Before phaseStats `json:"before"`
	During phaseStats `json:"during"`
	After  phaseStats `json:"after"`

	Failed int `json:"failed"`      // over the whole run
	Stale  int `json:"stale_reads"` // over the whole run
	// NoVersion counts 2xx answers whose body carried no version: a
	// broken run if not zero.
	NoVersion int `json:"no_version"`
	// RecoveryS is the time from the fault's end to the start of the first
	// recoveryWindow with no failed request and an origin rate within 10 %
	// of before (plus one request per window); -1 if the after phase has
	// none.
	RecoveryS float64 `json:"recovery_s"`
	// FirstPurgeS is the time from the fault's end to the first purge
	// answered 200 after it; -1 if none was.
	FirstPurgeS  float64        `json:"first_purge_200_s"`
	Timeline     []timelineSec  `json:"timeline"`
	FailSamples  []string       `json:"fail_samples,omitempty"`
	StaleSamples []string       `json:"stale_samples,omitempty"`
	Purges       map[string]int `json:"purges"` // by status, whole run
}

// recoveryWindow is the window over which recovery is judged, stepped by
// recoveryStep from the fault's end.
const (
	recoveryWindow = 2 * time.Second
	recoveryStep   = 100 * time.Millisecond
)

// staleReads returns, for each request, whether it is a stale read: it
// started after a purge of its key answered 200, it was answered 200, and
// its body's version is below the version that purge required. Reads
// without a version are never stale (they are counted apart).
func staleReads(reqs []reqRecord, purges []purgeRecord) []bool {
	type done struct {
		at  time.Duration
		ver int64 // the highest version required by this purge or an earlier one
	}
	byKey := map[int][]done{}
	ok := slices.Clone(purges)
	sort.Slice(ok, func(i, j int) bool { return ok[i].answered < ok[j].answered })
	for _, p := range ok {
		if p.status != 200 {
			continue
		}
		l := byKey[p.key]
		v := p.ver
		if n := len(l); n > 0 && l[n-1].ver > v {
			v = l[n-1].ver
		}
		byKey[p.key] = append(l, done{p.answered, v})
	}
	out := make([]bool, len(reqs))
	for i, r := range reqs {
		if r.status != 200 || r.ver < 0 {
			continue
		}
		l := byKey[r.key]
		// The last purge answered strictly before the read started.
		n := sort.Search(len(l), func(j int) bool { return l[j].at >= r.start })
		if n > 0 && r.ver < l[n-1].ver {
			out[i] = true
		}
	}
	return out
}

// countAt returns the origin's counter at t, interpolated linearly
// between the samples around it (flat beyond the first and last).
func countAt(samples []countSample, t time.Duration) float64 {
	if len(samples) == 0 {
		return 0
	}
	i := sort.Search(len(samples), func(i int) bool { return samples[i].at >= t })
	switch {
	case i == 0:
		return float64(samples[0].count)
	case i == len(samples):
		return float64(samples[len(samples)-1].count)
	}
	a, b := samples[i-1], samples[i]
	if b.at == a.at {
		return float64(b.count)
	}
	f := float64(t-a.at) / float64(b.at-a.at)
	return float64(a.count) + f*float64(b.count-a.count)
}

// percentileMS returns the p-th percentile (nearest rank) of ds, in ms.
func percentileMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

// phase computes the figures of [from, to).
func phase(reqs []reqRecord, stale []bool, purges []purgeRecord, samples []countSample, from, to time.Duration) phaseStats {
	ps := phaseStats{Seconds: (to - from).Seconds(), Status: map[string]int{}, XCache: map[string]int{}, Purges: map[string]int{}, HitRatio: -1}
	var lat []time.Duration
	for i, r := range reqs {
		if r.start >= from && r.start < to && stale[i] {
			ps.Stale++
		}
		if r.due < from || r.due >= to {
			continue
		}
		ps.Requests++
		if r.failed() {
			ps.Failed++
		}
		ps.Status[strconv.Itoa(r.status)]++
		if r.xcache != "" {
			ps.XCache[r.xcache]++
		}
		lat = append(lat, r.end-r.due)
	}
	for _, p := range purges {
		if p.sent >= from && p.sent < to {
			ps.Purges[strconv.Itoa(p.status)]++
		}
	}
	ps.P50, ps.P99 = percentileMS(lat, 50), percentileMS(lat, 99)
	ps.Max = percentileMS(lat, 100)
	ps.OriginReqs = countAt(samples, to) - countAt(samples, from)
	if to > from {
		ps.OriginRPS = ps.OriginReqs / (to - from).Seconds()
	}
	if ps.Requests > 0 {
		ps.HitRatio = math.Max(0, 1-ps.OriginReqs/float64(ps.Requests))
	}
	return ps
}

// analyzeFault turns one fault run's records into its figures.
func analyzeFault(reqs []reqRecord, purges []purgeRecord, samples []countSample, w faultWindows) faultStats {
	stale := staleReads(reqs, purges)
	fs := faultStats{
		FaultS: (w.faultEnd - w.faultStart).Seconds(), DuringS: (w.duringEnd - w.faultStart).Seconds(),
		FaultStartS: w.faultStart.Seconds(), FaultEndS: w.faultEnd.Seconds(),
		Before: phase(reqs, stale, purges, samples, w.start, w.faultStart),
		During: phase(reqs, stale, purges, samples, w.faultStart, w.duringEnd),
		After:  phase(reqs, stale, purges, samples, w.duringEnd, w.end),
		Purges: map[string]int{},
	}
	for i, r := range reqs {
		if r.failed() {
			fs.Failed++
			if len(fs.FailSamples) < 5 {
				what := r.err
				if r.status != 0 {
					what = "status " + strconv.Itoa(r.status)
				}
				fs.FailSamples = append(fs.FailSamples, fmt.Sprintf("key %d via instance %d at %+.2f s: %s", r.key, r.target+1, (r.start-w.faultStart).Seconds(), what))
			}
		}
		if r.status/100 == 2 && r.ver < 0 {
			fs.NoVersion++
		}
		if stale[i] {
			fs.Stale++
			if len(fs.StaleSamples) < 5 {
				p, _ := requiredBy(purges, r)
				fs.StaleSamples = append(fs.StaleSamples, fmt.Sprintf("key %d via instance %d started %+.2f s: v%d, after a purge via instance %d answered 200 at %+.2f s that required v%d",
					r.key, r.target+1, (r.start-w.faultStart).Seconds(), r.ver, p.target+1, (p.answered-w.faultStart).Seconds(), p.ver))
			}
		}
	}
	for _, p := range purges {
		fs.Purges[strconv.Itoa(p.status)]++
	}
	fs.RecoveryS = recovery(reqs, samples, w, fs.Before.OriginRPS)
	fs.FirstPurgeS = -1
	for _, p := range purges {
		if p.status == 200 && p.answered >= w.faultEnd && (fs.FirstPurgeS < 0 || (p.answered-w.faultEnd).Seconds() < fs.FirstPurgeS) {
			fs.FirstPurgeS = (p.answered - w.faultEnd).Seconds()
		}
	}
	fs.Timeline = timeline(reqs, stale, samples, w)
	return fs
}

// requiredBy returns the 200 purge, answered before r started, that
// requires the highest version of r (the latest such on a tie).
func requiredBy(purges []purgeRecord, r reqRecord) (purgeRecord, bool) {
	var best purgeRecord
	found := false
	for _, p := range purges {
		if p.key == r.key && p.status == 200 && p.answered < r.start && (!found || p.ver >= best.ver) {
			best, found = p, true
		}
	}
	return best, found
}

// recovery returns the time from the fault's end to the start of the
// first window of recoveryWindow, stepped by recoveryStep, in which no
// request due failed and the origin rate is at most 10 % above before's,
// plus one request per window for the counting's granularity; -1 if no
// such window fits before the end.
func recovery(reqs []reqRecord, samples []countSample, w faultWindows, beforeRPS float64) float64 {
	limit := 1.1*beforeRPS*recoveryWindow.Seconds() + 1
	for t := w.faultEnd; t+recoveryWindow <= w.end; t += recoveryStep {
		if countAt(samples, t+recoveryWindow)-countAt(samples, t) > limit {
			continue
		}
		bad := false
		for _, r := range reqs {
			if r.due >= t && r.due < t+recoveryWindow && r.failed() {
				bad = true
				break
			}
		}
		if !bad {
			return (t - w.faultEnd).Seconds()
		}
	}
	return -1
}

// timeline buckets the run by second from the fault's start.
func timeline(reqs []reqRecord, stale []bool, samples []countSample, w faultWindows) []timelineSec {
	first := int(math.Floor((w.start - w.faultStart).Seconds()))
	last := int(math.Ceil((w.end - w.faultStart).Seconds()))
	out := make([]timelineSec, 0, last-first)
	lats := make([][]time.Duration, last-first)
	for t := first; t < last; t++ {
		from := w.faultStart + time.Duration(t)*time.Second
		to := min(from+time.Second, w.end)
		from = max(from, w.start)
		out = append(out, timelineSec{T: t, OriginReqs: countAt(samples, to) - countAt(samples, from)})
	}
	bucket := func(at time.Duration) int {
		return int(math.Floor((at - w.faultStart).Seconds())) - first
	}
	for i, r := range reqs {
		if b := bucket(r.due); b >= 0 && b < len(out) {
			out[b].Requests++
			if r.failed() {
				out[b].Failed++
			}
			lats[b] = append(lats[b], r.end-r.due)
		}
		if b := bucket(r.start); stale[i] && b >= 0 && b < len(out) {
			out[b].Stale++
		}
	}
	for i := range out {
		out[i].P99 = percentileMS(lats[i], 99)
	}
	return out
}

// parseVersion reads the "v<version> " a -versions origin puts at the
// start of a body; -1 if there is none.
func parseVersion(body []byte) int64 {
	if len(body) < 2 || body[0] != 'v' {
		return -1
	}
	var v int64
	for i := 1; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= '0' && c <= '9':
			v = v*10 + int64(c-'0')
		case c == ' ' && i > 1:
			return v
		default:
			return -1
		}
	}
	return -1
}
