package main

import (
	"slices"
	"testing"
	"time"
)

func TestRoleOf(t *testing.T) {
	for _, c := range []struct {
		reply        []any
		role, master string
	}{
		{[]any{"master", int64(3129659), []any{}}, "master", ""},
		{[]any{"slave", "127.0.0.1", int64(9753), "connected", int64(3167038)}, "slave", "127.0.0.1:9753"},
		{[]any{"slave", "127.0.0.1", "9753", "connect", int64(-1)}, "slave", "127.0.0.1:9753"},
		{[]any{"slave"}, "slave", ""},
		{nil, "", ""},
		{[]any{int64(1)}, "", ""},
	} {
		role, master := roleOf(c.reply)
		if role != c.role || master != c.master {
			t.Errorf("roleOf(%v) = %q, %q; want %q, %q", c.reply, role, master, c.role, c.master)
		}
	}
}

func TestBlobKeys(t *testing.T) {
	keys := []string{
		"bench:{1:G:/blob/12?size=1024}",
		"bench:lease:{1:G:/blob/12?size=1024}", // the same key again
		"bench:{1:G:/blob/7?size=1024}#Accept:x",
		"bench:{bench}:purge:seq",
		"bench:{1:G:/blob/x?size=1024}",
		"bench:{1:G:/blob/3}", // no query: not the load's
	}
	if got, want := blobKeys(keys), []int{12, 7}; !slices.Equal(got, want) {
		t.Errorf("blobKeys = %v, want %v", got, want)
	}
}

// hit and miss build a request of the cluster fault's load.
func hit(key int, start time.Duration) reqRecord {
	return reqRecord{key: key, due: start, start: start, end: start + ms1, status: 200, xcache: "HIT-L2"}
}

func miss(key int, start time.Duration) reqRecord {
	r := hit(key, start)
	r.xcache = "MISS"
	return r
}

func TestAnalyzeCluster(t *testing.T) {
	sec := time.Second
	victim := map[int]bool{1: true}
	// Kill at 10 s, promotion at 14 s, end at 30 s. Key 0 is a surviving
	// master's, key 1 the dead master's.
	var reqs []reqRecord
	for ts := time.Duration(0); ts < 30*sec; ts += 100 * ms1 {
		reqs = append(reqs, hit(0, ts))
		switch {
		case ts < 10*sec, ts >= 16*sec:
			reqs = append(reqs, hit(1, ts))
		case ts == 15*sec:
			reqs = append(reqs, hit(1, ts)) // a first hit, then misses again
		default:
			reqs = append(reqs, miss(1, ts))
		}
	}
	cs := analyzeCluster(reqs, victim, 0, 10*sec, 14*sec, 30*sec)
	if !cs.survivorsMet() {
		t.Errorf("survivors not met: %+v", cs.Survivors)
	}
	if s := cs.Survivors; s.Before.Requests != 100 || s.Failover.Requests != 40 || s.After.Requests != 160 || s.MaxGapSinceMS != 100 {
		t.Errorf("survivors = %+v", s)
	}
	v := cs.Victim
	if v.Before.HitL2 != 100 || v.Failover.HitL2 != 0 || v.Failover.Other != 40 || v.After.Requests != 160 || v.After.HitL2 != 141 || v.After.Other != 19 {
		t.Errorf("victim = %+v", v)
	}
	if v.Failover.XCache["MISS"] != 40 || v.After.XCache["MISS"] != 19 {
		t.Errorf("victim X-Cache = %v / %v", v.Failover.XCache, v.After.XCache)
	}
	// No hit from 9.9 s (ended 9.901 s) to 15 s (ended 15.001 s).
	if v.MaxGapSinceMS != 5100 {
		t.Errorf("victim's longest gap since the kill = %v ms, want 5100", v.MaxGapSinceMS)
	}
	if cs.FirstHitS == nil || *cs.FirstHitS != 1 || cs.SteadyS == nil || *cs.SteadyS != 2 {
		t.Errorf("first %v, steady %v; want 1 s and 2 s after the promotion", deref(cs.FirstHitS), deref(cs.SteadyS))
	}
	if !cs.victimMet() {
		t.Error("victim goal not met at 2 s after the promotion")
	}
	if len(cs.Timeline) != 20 || cs.Timeline[0].VictimNot != 10 || cs.Timeline[5].VictimHits != 1 || cs.Timeline[6].VictimHits != 10 || cs.Timeline[19].SurvivorHits != 10 {
		t.Errorf("timeline = %+v", cs.Timeline)
	}

	// A miss on a surviving master's key after the kill misses that goal;
	// a failure counts as not a hit.
	bad := append(slices.Clone(reqs), miss(0, 12*sec), reqRecord{key: 0, start: 20 * sec, end: 20 * sec, status: 0})
	cs = analyzeCluster(bad, victim, 0, 10*sec, 14*sec, 30*sec)
	if cs.survivorsMet() || cs.Survivors.Failover.Other != 1 || cs.Survivors.After.Failed != 1 {
		t.Errorf("survivors with a miss and a failure: met %v, %+v", cs.survivorsMet(), cs.Survivors)
	}
	if cs.Survivors.After.XCache["no answer"] != 1 {
		t.Errorf("survivors' not-hits = %v", cs.Survivors.After.XCache)
	}

	// Steady later than 10 s after the promotion misses the victim goal.
	late := slices.Clone(reqs)
	late = append(late, miss(1, 25*sec))
	cs = analyzeCluster(late, victim, 0, 10*sec, 14*sec, 30*sec)
	if cs.SteadyS == nil || *cs.SteadyS != 11.1 || cs.victimMet() {
		t.Errorf("steady %v (met %v), want 11.1 s and missed", deref(cs.SteadyS), cs.victimMet())
	}

	// No promotion: nothing measured from it, and the goal missed; the
	// dead master's slots never hit again.
	var none []reqRecord
	for _, r := range reqs {
		if r.key == 0 || r.start < 10*sec {
			none = append(none, r)
		}
	}
	cs = analyzeCluster(none, victim, 0, 10*sec, -1, 30*sec)
	if cs.PromotionS != -1 || cs.FirstHitS != nil || cs.SteadyS != nil || cs.victimMet() {
		t.Errorf("without a promotion: %+v", cs)
	}
	if cs.Victim.Failover.Requests != 0 || cs.Survivors.Failover.Requests != 200 || cs.Victim.MaxGapSinceMS < 20000 {
		t.Errorf("without a promotion: survivors %+v, victim %+v", cs.Survivors, cs.Victim)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
