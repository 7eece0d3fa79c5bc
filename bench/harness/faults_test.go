package main

import (
	"slices"
	"testing"
	"time"
)

const ms1 = time.Millisecond

func TestStaleReads(t *testing.T) {
	purges := []purgeRecord{
		{key: 1, sent: 90 * ms1, answered: 100 * ms1, status: 200, ver: 5},
		{key: 1, sent: 190 * ms1, answered: 200 * ms1, status: 200, ver: 4}, // lower than an earlier purge: 5 still required
		{key: 2, sent: 90 * ms1, answered: 100 * ms1, status: 503, ver: 9},  // not a 200 purge: requires nothing
		{key: 3, sent: 290 * ms1, answered: 300 * ms1, status: 202, ver: 9},
	}
	reqs := []reqRecord{
		{key: 1, start: 50 * ms1, status: 200, ver: 4},   // before the purge was sent
		{key: 1, start: 95 * ms1, status: 200, ver: 4},   // while the purge was in flight
		{key: 1, start: 100 * ms1, status: 200, ver: 4},  // at the very moment of the answer: not after it
		{key: 1, start: 101 * ms1, status: 200, ver: 4},  // stale
		{key: 1, start: 101 * ms1, status: 200, ver: 5},  // fresh
		{key: 1, start: 101 * ms1, status: 502, ver: 4},  // not a 200 answer
		{key: 1, start: 101 * ms1, status: 200, ver: -1}, // no version
		{key: 1, start: 250 * ms1, status: 200, ver: 4},  // stale: the max over earlier purges counts
		{key: 2, start: 250 * ms1, status: 200, ver: 0},  // only a 503 purge
		{key: 3, start: 350 * ms1, status: 200, ver: 0},  // only a 202 purge
		{key: 4, start: 350 * ms1, status: 200, ver: 0},  // never purged
	}
	got := staleReads(reqs, purges)
	want := []bool{false, false, false, true, false, false, false, true, false, false, false}
	if !slices.Equal(got, want) {
		t.Errorf("staleReads = %v, want %v", got, want)
	}
	if p, ok := requiredBy(purges, reqs[7]); !ok || p.ver != 5 || p.answered != 100*ms1 {
		t.Errorf("requiredBy = %+v, %v; want the purge of v5", p, ok)
	}
}

func TestCountAt(t *testing.T) {
	s := []countSample{{100 * ms1, 10}, {200 * ms1, 20}, {300 * ms1, 20}}
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{0, 10}, {100 * ms1, 10}, {150 * ms1, 15}, {200 * ms1, 20}, {250 * ms1, 20}, {time.Second, 20}} {
		if got := countAt(s, c.at); got != c.want {
			t.Errorf("countAt(%v) = %v, want %v", c.at, got, c.want)
		}
	}
	if got := countAt(nil, time.Second); got != 0 {
		t.Errorf("countAt(nil) = %v", got)
	}
}

func TestPercentileMS(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*ms1)
	}
	if p := percentileMS(ds, 99); p != 99 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentileMS(ds, 50); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentileMS(ds, 100); p != 100 {
		t.Errorf("max = %v", p)
	}
	if p := percentileMS(nil, 99); p != 0 {
		t.Errorf("empty = %v", p)
	}
}

func TestParseVersion(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"v0 abc", 0}, {"v123 x", 123}, {"v7 ", 7}, {"v ", -1}, {"v12", -1}, {"abc", -1}, {"", -1}, {"v1x ", -1}} {
		if got := parseVersion([]byte(c.in)); got != c.want {
			t.Errorf("parseVersion(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// steady returns samples of a counter rising by perSec from 0 to end,
// every 200 ms, plus extra requests at each of bursts.
func steady(perSec float64, end time.Duration, bursts map[time.Duration]int64) []countSample {
	var s []countSample
	var extra int64
	for at := time.Duration(0); at <= end; at += 200 * ms1 {
		extra += bursts[at]
		s = append(s, countSample{at, int64(perSec*at.Seconds()) + extra})
	}
	return s
}

func TestRecovery(t *testing.T) {
	sec := time.Second
	w := faultWindows{start: 0, faultStart: 10 * sec, faultEnd: 15 * sec, duringEnd: 15 * sec, end: 30 * sec}
	var reqs []reqRecord
	for at := time.Duration(0); at < w.end; at += 10 * ms1 {
		r := reqRecord{due: at, start: at, end: at + ms1, status: 200, ver: 0}
		if at >= 15*sec && at < 16*sec {
			r.status = 502 // failures go on for a second after the fault
		}
		reqs = append(reqs, r)
	}
	// The origin sees 1 request a second, and 100 a second from 15 s to 18 s.
	bursts := map[time.Duration]int64{}
	for at := 15 * sec; at < 18*sec; at += 200 * ms1 {
		bursts[at+200*ms1] = 20
	}
	samples := steady(1, w.end, bursts)
	fs := analyzeFault(reqs, nil, samples, w)
	if fs.RecoveryS != 3 {
		t.Errorf("recovery = %v s, want 3 (the burst ends at 18 s)", fs.RecoveryS)
	}
	if fs.Failed != 100 || fs.After.Failed != 100 || fs.Before.Failed != 0 {
		t.Errorf("failed = %d (before %d, after %d), want 100 after", fs.Failed, fs.Before.Failed, fs.After.Failed)
	}
	if fs.Before.OriginRPS < 0.9 || fs.Before.OriginRPS > 1.1 {
		t.Errorf("before origin rate %v, want 1", fs.Before.OriginRPS)
	}
	if fs.Before.Requests != 1000 || fs.Before.HitRatio < 0.98 {
		t.Errorf("before: %d requests, hit ratio %v", fs.Before.Requests, fs.Before.HitRatio)
	}
	if fs.FirstPurgeS != -1 {
		t.Errorf("first purge = %v without purges", fs.FirstPurgeS)
	}
	if n := len(fs.Timeline); n != 30 || fs.Timeline[0].T != -10 || fs.Timeline[15].T != 5 || fs.Timeline[15].Failed != 100 {
		t.Errorf("timeline: %d seconds from %d, %+v", n, fs.Timeline[0].T, fs.Timeline[15])
	}

	// Failures to the end: never recovered.
	for i := range reqs {
		if reqs[i].due >= 15*sec {
			reqs[i].status = 0
		}
	}
	if r := recovery(reqs, samples, w, 1); r != -1 {
		t.Errorf("recovery with failures to the end = %v, want -1", r)
	}
}

func TestFirstPurge(t *testing.T) {
	sec := time.Second
	w := faultWindows{start: 0, faultStart: 2 * sec, faultEnd: 4 * sec, duringEnd: 7 * sec, end: 10 * sec}
	purges := []purgeRecord{
		{sent: 3 * sec, answered: 3500 * ms1, status: 503},
		{sent: 4 * sec, answered: 4200 * ms1, status: 503},
		{sent: 5 * sec, answered: 5300 * ms1, status: 200},
		{sent: 6 * sec, answered: 6010 * ms1, status: 200},
	}
	fs := analyzeFault(nil, purges, nil, w)
	if fs.FirstPurgeS < 1.29 || fs.FirstPurgeS > 1.31 {
		t.Errorf("first 200 purge %v s after the end, want 1.3", fs.FirstPurgeS)
	}
	if fs.During.Purges["503"] != 2 || fs.During.Purges["200"] != 2 || fs.Purges["503"] != 2 {
		t.Errorf("purges during %v, in all %v", fs.During.Purges, fs.Purges)
	}
}
