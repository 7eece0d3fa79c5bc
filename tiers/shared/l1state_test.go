package shared

import (
	"testing"
	"time"
)

// TestL1StateTransitions runs every transition of the state that decides
// whether L1 may be used: from each phase (in sync, cut off, out of sync,
// new epoch, and resubscribed after any of them), each event, the phase
// it leads to and until when L1 may be used.
func TestL1StateTransitions(t *testing.T) {
	const hb, ttl = 100 * time.Millisecond, time.Second
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	// A lease earned at 1000ms, the subscription heard at 1050ms.
	inSync := l1State{synced: true, leaseFrom: ms(1000), heard: ms(1050), beatOK: true, beatSeq: 7}
	cutOff := inSync
	cutOff.synced, cutOff.cutOff = false, true
	outOfSync := inSync
	outOfSync.synced, outOfSync.leaseFrom = false, 0
	newEpoch := inSync
	newEpoch.renewing, newEpoch.gen = true, 3
	fresh := l1State{} // just started: out of sync, no lease

	for _, tc := range []struct {
		name      string
		from      l1State
		ev        l1Event
		now       int64
		wantPhase l1Phase
		wantUntil int64 // 0: L1 not usable
	}{
		// Starting, and resubscribed: L1 only after a heartbeat in sync.
		{"fresh/heard", fresh, l1Event{kind: evHeard, at: ms(10)}, ms(10), phaseOutOfSync, 0},
		{"fresh/synced: no lease yet", l1State{heard: ms(10)}, l1Event{kind: evSynced}, ms(20), phaseInSync, 0},
		{"resubscribed/first beat earns nothing", l1State{synced: true, heard: ms(10)},
			l1Event{kind: evBeat, at: ms(20), seq: 5, earn: false}, ms(30), phaseInSync, 0},
		{"resubscribed/beat in sync earns the lease", l1State{synced: true, heard: ms(10), beatOK: true, beatSeq: 5},
			l1Event{kind: evBeat, at: ms(20), seq: 6, earn: true}, ms(30), phaseInSync, ms(10) + 3*int64(hb)},
		{"out of sync/resynced keeps lease 0", outOfSync, l1Event{kind: evSynced}, ms(1060), phaseInSync, 0},

		// In sync.
		{"in sync/heard extends", inSync, l1Event{kind: evHeard, at: ms(1200)}, ms(1200), phaseInSync, ms(1200) + 3*int64(hb)},
		{"in sync/silent subscription", inSync, l1Event{kind: evBeat, at: ms(1400), seq: 7, earn: false}, ms(1400),
			phaseOutOfSync, ms(1050) + 3*int64(hb)},
		{"in sync/beat renews", inSync, l1Event{kind: evBeat, at: ms(1100), seq: 8, earn: true}, ms(1100),
			phaseInSync, ms(1050) + 3*int64(hb)},
		{"in sync/lost, redis answers", inSync, l1Event{kind: evLost, cutOff: false}, ms(1060), phaseOutOfSync, 0},
		{"in sync/lost, redis gone", inSync, l1Event{kind: evLost, cutOff: true}, ms(1060), phaseCutOff, ms(1000) + int64(ttl)},
		{"in sync/beat failed, unreachable", inSync, l1Event{kind: evBeatFailed, cutOff: true}, ms(1060), phaseCutOff, ms(1000) + int64(ttl)},
		{"in sync/beat failed, error reply", inSync, l1Event{kind: evBeatFailed, cutOff: false}, ms(1060), phaseInSync, ms(1050) + 3*int64(hb)},
		{"in sync/fenced", inSync, l1Event{kind: evFenced}, ms(1060), phaseOutOfSync, 0},
		{"in sync/new epoch", inSync, l1Event{kind: evNewEpoch}, ms(1060), phaseNewEpoch, 0},
		{"in sync/stopped", inSync, l1Event{kind: evStopped}, ms(1060), phaseOutOfSync, 0},

		// Cut off: L1 until the lease ends, then not.
		{"cut off/heard nothing changes", cutOff, l1Event{kind: evHeard, at: ms(1500)}, ms(1500), phaseCutOff, ms(1000) + int64(ttl)},
		{"cut off/lease over", cutOff, l1Event{kind: evBeatFailed, cutOff: true}, ms(2100), phaseCutOff, ms(1000) + int64(ttl)},
		{"cut off/lost again keeps cut off", cutOff, l1Event{kind: evLost, cutOff: false}, ms(1500), phaseCutOff, ms(1000) + int64(ttl)},
		{"cut off/redis answers, not synced", cutOff, l1Event{kind: evBeat, at: ms(1500), seq: 9, earn: false}, ms(1500), phaseOutOfSync, 0},
		{"cut off/fenced", cutOff, l1Event{kind: evFenced}, ms(1500), phaseCutOff, 0},
		{"cut off/new epoch", cutOff, l1Event{kind: evNewEpoch}, ms(1500), phaseNewEpoch, 0},

		// Out of sync: nothing but a resync and a heartbeat makes it usable.
		{"out of sync/heard", outOfSync, l1Event{kind: evHeard, at: ms(1100)}, ms(1100), phaseOutOfSync, 0},
		{"out of sync/beat cannot earn", outOfSync, l1Event{kind: evBeat, at: ms(1100), seq: 9, earn: true}, ms(1100), phaseOutOfSync, 0},
		{"out of sync/lost, redis gone", outOfSync, l1Event{kind: evLost, cutOff: true}, ms(1100), phaseOutOfSync, 0},
		{"out of sync/beat failed", outOfSync, l1Event{kind: evBeatFailed, cutOff: true}, ms(1100), phaseCutOff, 0},

		// New epoch: L1 unused until adopted, by the adoption that saw the
		// last finding; then resubscribed as above.
		{"new epoch/beat earns nothing", newEpoch, l1Event{kind: evBeat, at: ms(1100), seq: 9, earn: true}, ms(1100), phaseNewEpoch, 0},
		{"new epoch/found again", newEpoch, l1Event{kind: evNewEpoch}, ms(1100), phaseNewEpoch, 0},
		{"new epoch/stale adoption", newEpoch, l1Event{kind: evAdopted, gen: 2}, ms(1100), phaseNewEpoch, 0},
		{"new epoch/adopted", newEpoch, l1Event{kind: evAdopted, gen: 3}, ms(1060), phaseInSync, ms(1050) + 3*int64(hb)},
		{"new epoch/fenced then adopted", func() l1State { s := newEpoch; s.synced, s.leaseFrom = false, 0; return s }(),
			l1Event{kind: evAdopted, gen: 3}, ms(1060), phaseOutOfSync, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.from.next(tc.ev)
			if p := got.phase(tc.now, hb); p != tc.wantPhase {
				t.Errorf("phase %v, want %v (state %+v)", p, tc.wantPhase, got)
			}
			if u := got.until(hb, ttl); u != tc.wantUntil {
				t.Errorf("until %v, want %v (state %+v)", time.Duration(u), time.Duration(tc.wantUntil), got)
			}
			if usable := tc.now < got.until(hb, ttl); usable && got.phase(tc.now, hb) != phaseInSync && got.phase(tc.now, hb) != phaseCutOff {
				t.Errorf("usable in phase %v", got.phase(tc.now, hb))
			}
		})
	}
}

// TestL1StateCanEarn: a heartbeat earns the lease only in sync and caught
// up with what the previous heartbeat read.
func TestL1StateCanEarn(t *testing.T) {
	const hb = 100 * time.Millisecond
	s := l1State{synced: true, heard: int64(time.Second), beatOK: true, beatSeq: 7}
	now := int64(time.Second + 50*time.Millisecond)
	for _, tc := range []struct {
		name string
		s    l1State
		have uint64
		want bool
	}{
		{"in sync, caught up", s, 7, true},
		{"behind the previous heartbeat", s, 6, false},
		{"previous heartbeat failed", func() l1State { x := s; x.beatOK = false; return x }(), 7, false},
		{"not synced", func() l1State { x := s; x.synced = false; return x }(), 7, false},
		{"renewing", func() l1State { x := s; x.renewing = true; return x }(), 7, false},
		{"subscription silent", func() l1State { x := s; x.heard = 0; return x }(), 7, false},
	} {
		if got := tc.s.canEarn(now, tc.have, hb); got != tc.want {
			t.Errorf("%s: canEarn %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestL1GateUsable: the gate's one load follows until, and a nil gate
// (a Fleet made without NewFleet) is never usable and ignores events.
func TestL1GateUsable(t *testing.T) {
	var g l1Gate
	g.configure(time.Now(), time.Hour, time.Hour, nil)
	g.on(l1Event{kind: evHeard, at: g.now()})
	g.on(l1Event{kind: evSynced})
	if g.usableNow() {
		t.Fatal("usable before a heartbeat in sync")
	}
	g.on(l1Event{kind: evBeat, at: g.now(), earn: true})
	if !g.usableNow() {
		t.Fatal("not usable after a heartbeat in sync")
	}
	g.on(l1Event{kind: evNewEpoch})
	if g.usableNow() {
		t.Fatal("usable with a new epoch pending")
	}
	var nilGate *l1Gate
	nilGate.on(l1Event{kind: evSynced})
	if nilGate.usableNow() || nilGate.state().synced {
		t.Fatal("nil gate changed")
	}
}
