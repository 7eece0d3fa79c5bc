package shared

// Error replies. A Redis that answers, but answers errors (CROSSSLOT,
// MOVED, READONLY, NOPERM, WRONGPASS...), is not unreachable, and the
// circuit of shared.go (down) does not open for it; but it is no more
// use for the calls it refuses. So errors are tracked by what the calls
// were for (a purpose: reads, writes, the fleet's own calls, the purge
// subscription): replyStreak error replies in a row for one purpose, with
// no success between, mark it failing, which is logged once at WARN with
// the real reply, counted by kind, reported by Problems (and so by
// /readyz and stats), and makes Healthy false. A failing read or write
// purpose is refused at once (ErrUnavailable, a miss) but for one call
// every RetryInterval, which finds out when Redis answers again; the
// first success clears it, logged at INFO.

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// purpose is what a call to Redis was for.
type purpose int

const (
	purposeRead      purpose = iota // L2 reads (Get)
	purposeWrite                    // stores, deletes, fill and revalidation leases
	purposeFleet                    // heartbeats, purges, loading purges
	purposeSubscribe                // the purge subscription
	nPurposes
)

var purposeNames = [nPurposes]string{"read", "write", "fleet", "subscribe"}

func (p purpose) String() string { return purposeNames[p] }

// replyKinds are the error replies counted apart; any other is "other".
var replyKinds = []string{"CROSSSLOT", "MOVED", "ASK", "READONLY", "NOPERM", "WRONGPASS", "NOAUTH",
	"NOSCRIPT", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "OOM", "BUSY", "WRONGTYPE", "ERR", "other"}

// replyStreak is how many error replies in a row make a purpose failing.
const replyStreak = 3

// replyKind returns err's kind if it is an error reply from Redis (its
// first word, if one of replyKinds, else "other"), or "" if it is not one.
func replyKind(err error) string {
	var rerr redis.Error
	if err == nil || errors.Is(err, redis.Nil) || !errors.As(err, &rerr) {
		return ""
	}
	code, msg, _ := strings.Cut(rerr.Error(), " ")
	if code == "ERR" && (strings.Contains(msg, "can't publish") || strings.Contains(msg, "can't access") ||
		strings.Contains(msg, "no permissions")) {
		// An ACL refusal inside a script comes back as ERR.
		return "NOPERM"
	}
	for _, k := range replyKinds {
		if k == code {
			return k
		}
	}
	return "other"
}

// health is the tier's record of error replies, per purpose.
type health struct {
	counts [nPurposes][]atomic.Int64 // by purpose, then replyKinds index
	p      [nPurposes]purposeHealth
}

type purposeHealth struct {
	streak  atomic.Int64 // error replies since the last success; 0 when healthy
	failing atomic.Bool
	nextTry atomic.Int64 // unix nanos: while failing, when one call may go through

	mu    sync.Mutex
	last  string // the last error reply
	kind  string
	since time.Time // when it started failing
}

func newHealth() *health {
	h := &health{}
	for i := range h.counts {
		h.counts[i] = make([]atomic.Int64, len(replyKinds))
	}
	return h
}

// Problem is one purpose Redis answers errors to.
type Problem struct {
	// Purpose is "read", "write", "fleet" or "subscribe".
	Purpose string `json:"purpose"`
	// Kind is the error reply's code (CROSSSLOT, NOPERM...).
	Kind string `json:"kind"`
	// Err is the last error reply, as Redis gave it.
	Err string `json:"err"`
	// Since is when the purpose started failing.
	Since time.Time `json:"since"`
}

// replyError records an error reply of kind for p. It reports whether p
// has just started failing.
func (t *Tier) replyError(p purpose, kind string, err error) bool {
	return t.replyErrorAfter(p, kind, err, replyStreak)
}

// replyErrorAfter is replyError with need error replies in a row making
// p failing.
func (t *Tier) replyErrorAfter(p purpose, kind string, err error, need int64) bool {
	for i, k := range replyKinds {
		if k == kind {
			t.health.counts[p][i].Add(1)
		}
	}
	ph := &t.health.p[p]
	ph.mu.Lock()
	ph.last, ph.kind = err.Error(), kind
	ph.mu.Unlock()
	if p == purposeSubscribe {
		need = 1 // each attempt is already spaced by a backoff
	}
	if ph.streak.Add(1) < need || ph.failing.Load() {
		return false
	}
	ph.mu.Lock()
	ph.since = time.Now()
	ph.mu.Unlock()
	ph.nextTry.Store(time.Now().Add(t.retry).UnixNano())
	if !ph.failing.CompareAndSwap(false, true) {
		return false
	}
	t.log.Warn("redis answers errors to "+p.String()+" calls: "+consequence[p],
		"addr", t.addr, "kind", kind, "err", err)
	return true
}

// consequence says, for the log, what a failing purpose costs.
var consequence = [nPurposes]string{
	purposeRead:      "L2 reads are misses until it answers them again",
	purposeWrite:     "nothing is stored in L2 and fills are not coordinated until it answers them again",
	purposeFleet:     "purges answer 503 and L1 is unused until it answers them again",
	purposeSubscribe: "L1 is unused until the purge subscription is accepted (retried with backoff)",
}

// okFor records a call for p that Redis answered. It costs one atomic
// load while p is healthy.
func (t *Tier) okFor(p purpose) {
	ph := &t.health.p[p]
	if ph.streak.Load() == 0 {
		return
	}
	ph.streak.Store(0)
	if ph.failing.CompareAndSwap(true, false) {
		t.log.Info("redis answers "+p.String()+" calls again", "addr", t.addr)
	}
}

// blocked reports whether a call for p is refused at once: p is failing,
// and this is not the one call per RetryInterval that tries again.
func (t *Tier) blocked(p purpose) bool {
	ph := &t.health.p[p]
	if !ph.failing.Load() {
		return false
	}
	now := time.Now().UnixNano()
	next := ph.nextTry.Load()
	if now < next {
		return true
	}
	return !ph.nextTry.CompareAndSwap(next, now+int64(t.retry))
}

// failing reports whether any purpose is failing.
func (t *Tier) failing() bool {
	for i := range t.health.p {
		if t.health.p[i].failing.Load() {
			return true
		}
	}
	return false
}

// Problems lists the purposes Redis answers errors to, in a fixed order;
// none while it answers every call.
func (t *Tier) Problems() []Problem {
	var out []Problem
	for i := range t.health.p {
		ph := &t.health.p[i]
		if !ph.failing.Load() {
			continue
		}
		ph.mu.Lock()
		out = append(out, Problem{Purpose: purpose(i).String(), Kind: ph.kind, Err: ph.last, Since: ph.since})
		ph.mu.Unlock()
	}
	return out
}

// ReplyErrors returns the error replies counted, by purpose then kind;
// kinds never seen are left out.
func (t *Tier) ReplyErrors() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for p := range t.health.counts {
		for i, k := range replyKinds {
			if n := t.health.counts[p][i].Load(); n > 0 {
				if out[purpose(p).String()] == nil {
					out[purpose(p).String()] = map[string]int64{}
				}
				out[purpose(p).String()][k] = n
			}
		}
	}
	return out
}
