package shared

// The purge log, as this instance holds it: the one owner of the fleet's
// consistency state.
//
// Redis holds the log (epoch.go: its epoch and sequence; banlog.go: the
// bans, their bounds, the paged loading). purgeLog is this instance's copy
// of it: the ban table the proxy checks entries against, the epoch that
// table belongs to, the bans it applied last (to tell a replayed number
// from a changed history), and the gate (l1state.go) that says whether
// the table is complete enough for L1 to be used and until when. The
// Tier's read path catches up with it (catchUp); the Fleet drives it
// (resync, adoption, published bans, heartbeats); nothing else writes it.

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// purgeLog is this instance's copy of the fleet's purge log. Its methods
// are safe for concurrent use; what changes the table from the fleet's
// side is serialised by the Fleet (syncMu).
type purgeLog struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	stop    <-chan struct{} // the Tier's: loading ends with it

	// bans is the ban table, nil if the Tier keeps none (then the log is
	// unused).
	bans *tiers.Bans
	// banKeep is how long a ban is remembered (retention).
	banKeep time.Duration
	syncs   singleflight.Group // the one loading of bans (loadBans)
	floors  atomic.Int64       // all-bans applied at the log's floor
	// onFloor drops the local tier after the table jumped to the log's
	// floor (a Fleet's Flush); nil if there is none.
	onFloor atomic.Pointer[func()]
	seq     string // seqKey(), built once: every Get reads it
	epochK  string // epochKey(), likewise

	epoch  atomic.Pointer[string] // the epoch the table belongs to; nil until a Fleet synced it
	recent recentBans
	gate   l1Gate // whether the table is complete: L1's state, and renewing
}

func newPurgeLog(client redis.UniversalClient, prefix string, timeout time.Duration, log *slog.Logger,
	stop <-chan struct{}, bans *tiers.Bans, keep time.Duration) *purgeLog {
	l := &purgeLog{client: client, prefix: prefix, timeout: timeout, log: log, stop: stop, bans: bans, banKeep: keep}
	l.seq = metaKeyOf(prefix, "purge:seq")
	l.epochK = l.epochKey()
	return l
}

// knownEpoch returns the epoch the ban table belongs to, or "" and false
// before a Fleet first synced it (a tier without a fleet never checks).
func (l *purgeLog) knownEpoch() (string, bool) {
	if p := l.epoch.Load(); p != nil {
		return *p, true
	}
	return "", false
}

// setEpoch records the epoch the ban table now belongs to.
func (l *purgeLog) setEpoch(epoch string) { l.epoch.Store(&epoch) }

// sameHistory reports whether Redis, found at epoch with sequence seq,
// still holds the history the ban table was built from. have is what the
// table had applied before seq was read (a ban applied since may be newer
// than seq).
func (l *purgeLog) sameHistory(epoch string, seq, have uint64) bool {
	known, ok := l.knownEpoch()
	return !ok || (epoch == known && seq >= have)
}

// markRenew records that Redis holds another history than the ban table:
// L2 reads miss and the local tier is unused until a Fleet has adopted it
// (the gate signals it).
func (l *purgeLog) markRenew(why string) {
	if before, _ := l.gate.on(l1Event{kind: evNewEpoch}); !before.renewing {
		l.log.Warn("redis lost purges (restarted empty, flushed or restored): L1 and L2 unused until the new purge log is adopted",
			"reason", why)
	}
}

// renewing reports whether an adoption is pending.
func (l *purgeLog) renewing() bool { return l.gate.state().renewing }

// applyBans applies published or loaded bans to the ban table, noting
// their IDs for appliedAs.
func (l *purgeLog) applyBans(now time.Time, bans ...tiers.Ban) {
	l.bans.Apply(now, l.banKeep, bans...)
	l.recent.note(bans...)
}

// appliedAs returns the ID of the ban applied with sequence number seq,
// if it is among the last ones applied.
func (l *purgeLog) appliedAs(seq uint64) (string, bool) { return l.recent.lookup(seq) }

// retention is how long a ban is kept: no entry filled before it can be
// alive after that (see tiers.BanRetention).
func (l *purgeLog) retention() time.Duration { return l.banKeep }
