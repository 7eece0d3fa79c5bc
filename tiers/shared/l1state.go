package shared

// Whether this instance may use its local tier (L1), as one state value
// and one transition function.
//
// An instance may use L1 only while no purge can have escaped it: its
// ban table is complete (subscribed, resynchronised since it last
// dropped, of Redis's current purge epoch), and a heartbeat made in that
// state was answered within L1TTL, which is the lease purges count on
// (see heartbeat.go for the bound it gives a purge). Cut off from Redis
// altogether, it keeps L1 until that lease ends; able to reach Redis but
// out of sync, it stops at once.
//
// The state is an immutable l1State; every change is an l1Event given to
// next, the one function that makes transitions; until computes, in one
// place, the moment L1 stops being usable. l1Gate holds the current
// state for the fleet and the read path (it is part of the purge log,
// purgelog.go, whose table it guards).

import (
	"sync"
	"sync/atomic"
	"time"
)

// l1Phase names where an instance stands with the fleet's purges.
type l1Phase uint8

const (
	// phaseOutOfSync: Redis answers, but the ban table may be missing
	// purges (not subscribed yet, subscription lost or deaf, a gap,
	// resynchronising). L1 is not used.
	phaseOutOfSync l1Phase = iota
	// phaseInSync: subscribed, every purge applied, the subscription
	// heard from recently. L1 is used while the lease lasts.
	phaseInSync
	// phaseCutOff: Redis did not answer the last heartbeat (or the
	// subscription broke and a ping failed). L1 is used until the lease
	// earned in sync ends.
	phaseCutOff
	// phaseNewEpoch: Redis was found with another purge history
	// (restarted empty, flushed, restored). Neither L1 nor L2 is used
	// until the new log is adopted.
	phaseNewEpoch
)

var l1PhaseNames = [...]string{"out of sync", "in sync", "cut off", "new epoch"}

func (p l1Phase) String() string { return l1PhaseNames[p] }

// l1EventKind says what happened to the instance's link with the fleet.
type l1EventKind uint8

const (
	// evHeard: the subscription delivered something (a message, a
	// subscription confirmation, a pong) at at.
	evHeard l1EventKind = iota + 1
	// evFenced: the ban table may be missing purges, and the instance
	// knows Redis answers (subscription refused or deaf, resync or
	// adoption starting). The lease must be earned again.
	evFenced
	// evLost: the subscription's connection broke; cutOff says whether
	// Redis also failed a ping (checked only if the state was synced).
	evLost
	// evSynced: a resync or adoption completed (L1 flushed, every purge
	// applied); L1 is used again after the next heartbeat in sync.
	evSynced
	// evBeat: Redis answered a heartbeat sent at at that read sequence
	// seq; earn says the state at sending could earn the lease (see
	// l1State.canEarn).
	evBeat
	// evBeatFailed: a heartbeat failed; cutOff says Redis could not be
	// reached.
	evBeatFailed
	// evNewEpoch: Redis was found with another purge history.
	evNewEpoch
	// evAdopted: the new history was adopted by an adoption that began
	// at generation gen; ignored if Redis was found with yet another
	// one since.
	evAdopted
	// evStopped: the fleet stopped running.
	evStopped
)

// l1Event is one input of the state machine.
type l1Event struct {
	kind   l1EventKind
	at     int64 // mono nanos (evHeard, evBeat)
	seq    uint64
	earn   bool
	cutOff bool
	gen    int64
}

// l1State is what decides whether L1 may be used. Times are monotonic
// nanoseconds since the fleet started; 0 is "never".
type l1State struct {
	synced    bool  // the ban table is complete since the last (re)subscription
	cutOff    bool  // Redis did not answer the last heartbeat or ping
	renewing  bool  // Redis holds another purge history, not adopted yet
	gen       int64 // how many times another history was found
	leaseFrom int64 // sending of the last heartbeat answered in sync
	heard     int64 // last sign of life of the subscription
	beatOK    bool  // the last heartbeat was answered, and beatSeq is what it read
	beatSeq   uint64
}

// hearWithin is how recently, in heartbeats, the subscription must have
// been heard for the instance to be in sync (it is pinged every
// heartbeat).
const hearWithin = 3

// next returns the state after ev: the one place transitions are made.
func (s l1State) next(ev l1Event) l1State {
	switch ev.kind {
	case evHeard:
		s.heard = ev.at
	case evFenced:
		s.synced, s.leaseFrom = false, 0
	case evLost:
		// cutOff is known before synced is cleared (one value now), so
		// that no reader finds the instance neither in sync nor cut off
		// and bypasses an L1 it may still use.
		if s.synced {
			s.cutOff = ev.cutOff
		}
		s.synced = false
	case evSynced:
		s.synced = true
	case evBeat:
		s.cutOff = false
		if ev.earn && !s.renewing {
			s.leaseFrom = ev.at
		}
		s.beatOK, s.beatSeq = true, ev.seq
	case evBeatFailed:
		s.beatOK = false
		if ev.cutOff {
			s.cutOff = true
		}
	case evNewEpoch:
		s.renewing = true
		s.gen++
	case evAdopted:
		if s.gen == ev.gen {
			s.renewing = false
		}
	case evStopped:
		s.synced, s.cutOff, s.leaseFrom = false, false, 0
	}
	return s
}

// inSync reports whether the ban table is complete and current at now.
func (s l1State) inSync(now int64, hb time.Duration) bool {
	return s.synced && !s.renewing && now-s.heard < int64(hearWithin*hb)
}

// canEarn reports whether a heartbeat sent at now, with have the ban
// table's high-water mark, earns the lease if Redis answers it: in sync,
// and caught up with what the previous heartbeat read (so that a purge
// recorded before that one cannot be missing).
func (s l1State) canEarn(now int64, have uint64, hb time.Duration) bool {
	return s.inSync(now, hb) && s.beatOK && have >= s.beatSeq
}

// phase names the state at now.
func (s l1State) phase(now int64, hb time.Duration) l1Phase {
	switch {
	case s.renewing:
		return phaseNewEpoch
	case s.cutOff:
		return phaseCutOff
	case s.inSync(now, hb):
		return phaseInSync
	}
	return phaseOutOfSync
}

// until returns the moment (mono nanos) from which L1 may no longer be
// used, or 0 if it may not be now: the end of the lease, and, unless cut
// off, hearWithin heartbeats after the subscription was last heard.
func (s l1State) until(hb, l1TTL time.Duration) int64 {
	if s.leaseFrom == 0 || s.renewing || (!s.synced && !s.cutOff) {
		return 0
	}
	u := s.leaseFrom + int64(l1TTL)
	if !s.cutOff {
		u = min(u, s.heard+int64(hearWithin*hb))
	}
	return u
}

// l1Gate holds an instance's l1State. Reads are one atomic load;
// transitions are serialised. Its zero value is out of sync, unusable;
// configure sets the clock and durations (NewFleet). Methods on a nil
// gate read the zero state and ignore events.
type l1Gate struct {
	mu      sync.Mutex
	st      atomic.Pointer[l1State]
	usable  atomic.Bool // now < until, as of the last transition or refresh
	started time.Time
	hb      time.Duration
	l1TTL   time.Duration
	// adopt receives a signal whenever another history is found, for
	// the fleet to adopt it (Fleet.Run).
	adopt chan struct{}
}

// configure sets the gate's clock (mono nanos count from started), the
// durations until depends on, and the channel signalled on evNewEpoch.
func (g *l1Gate) configure(started time.Time, hb, l1TTL time.Duration, adopt chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.started, g.hb, g.l1TTL, g.adopt = started, hb, l1TTL, adopt
}

// now returns the gate's monotonic clock.
func (g *l1Gate) now() int64 { return int64(time.Since(g.started)) }

// state returns the current state.
func (g *l1Gate) state() l1State {
	if g == nil {
		return l1State{}
	}
	if p := g.st.Load(); p != nil {
		return *p
	}
	return l1State{}
}

// on makes the transition for ev and returns the states before and
// after it.
func (g *l1Gate) on(ev l1Event) (before, after l1State) {
	if g == nil {
		return l1State{}, l1State{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	before = g.state()
	after = before.next(ev)
	g.st.Store(&after)
	g.usable.Store(g.now() < after.until(g.hb, g.l1TTL))
	if ev.kind == evNewEpoch && g.adopt != nil {
		select {
		case g.adopt <- struct{}{}:
		default:
		}
	}
	return before, after
}

// refresh recomputes usable for the time now (the fleet's watchdog).
func (g *l1Gate) refresh() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.usable.Store(g.now() < g.state().until(g.hb, g.l1TTL))
}

// usableNow reports whether L1 may be used: one atomic load.
func (g *l1Gate) usableNow() bool { return g != nil && g.usable.Load() }
