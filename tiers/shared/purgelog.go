package shared

// The purge log, as this instance holds it: the one owner of the fleet's
// consistency state.
//
// Redis holds the log (epoch.go: its epoch and sequence; banlog.go: the
// bans, their bounds, the paged loading). purgeLog is this instance's copy
// of it: the ban table the proxy checks entries against, the epoch that
// table belongs to, the bans it applied last (to tell a replayed number
// from a changed history), and the gate (l1state.go) that says whether
// the table is complete enough for L1 to be used and until when. It
// decides which purges are applied: the Tier's read path catches up with
// it (catchUp); a published ban is received by it (receive: applied in
// sequence, a gap resynchronised, a new history adopted, then
// confirmed); a resynchronisation or adoption is its own (resync,
// adoptPending). The Fleet only wires it: it hands it what the
// subscription delivers, asks for a heartbeat when it reports the table
// complete again, and gives the gate the events of the link (the
// subscription heard, lost or refused; heartbeats answered or not).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// purgeLog is this instance's copy of the fleet's purge log. Its methods
// are safe for concurrent use; what changes the table from the fleet's
// side (receive, resync, adoptPending) is serialised by syncMu.
type purgeLog struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	stop    <-chan struct{} // the Tier's: loading ends with it
	// fail reports a failed call to the Tier's health (Tier.fail).
	fail func(ctx context.Context, p purpose, op string, err error) error

	// bans is the ban table, nil if the Tier keeps none (then the log is
	// unused).
	bans *tiers.Bans
	// banKeep is how long a ban is remembered (retention).
	banKeep time.Duration
	syncs   singleflight.Group // the one loading of bans (loadBans)
	floors  atomic.Int64       // all-bans applied at the log's floor
	// flushLocal drops the local tier (a Fleet's Flush), whenever the
	// table may have missed what it held: after a resync or adoption,
	// and after the table jumped to the log's floor. nil if there is
	// none.
	flushLocal atomic.Pointer[func()]
	seq        string // seqKey(), built once: every Get reads it
	epochK     string // epochKey(), likewise

	epoch  atomic.Pointer[string] // the epoch the table belongs to; nil until a Fleet synced it
	recent recentBans
	gate   l1Gate // whether the table is complete: L1's state, and renewing

	// Set by the Fleet that keeps the log complete (join), before it
	// runs.
	self  string        // the instance's ID, which its confirmations name
	op    time.Duration // bounds each call to Redis (Fleet.opTimeout)
	retry time.Duration // the pause between two attempts at a resync or adoption

	syncMu    sync.Mutex   // serialises receive, resync and adoption
	flushes   atomic.Int64 // resyncs and adoptions completed (each flushed L1)
	adoptions atomic.Int64 // adoptions begun
}

func newPurgeLog(client redis.UniversalClient, prefix string, timeout time.Duration, log *slog.Logger,
	stop <-chan struct{}, bans *tiers.Bans, keep time.Duration,
	fail func(context.Context, purpose, string, error) error) *purgeLog {
	l := &purgeLog{client: client, prefix: prefix, timeout: timeout, log: log, stop: stop, bans: bans, banKeep: keep, fail: fail}
	l.seq = metaKeyOf(prefix, "purge:seq")
	l.epochK = l.epochKey()
	return l
}

// join makes the log a fleet member's: self names the instance in its
// confirmations, op bounds each of the log's calls to Redis, retry is
// the pause between two attempts at a resync or an adoption, and flush
// drops the local tier. The Fleet calls it once, before it runs.
func (l *purgeLog) join(self string, op, retry time.Duration, flush func()) {
	l.self, l.op, l.retry = self, op, retry
	l.flushLocal.Store(&flush)
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

// observe takes Redis's epoch and sequence, as where read them, with have
// the table's high-water mark before the read, and reports whether Redis
// still holds the table's history (sameHistory). If it does not, the log
// starts renewing (markRenew): the one reaction to another history,
// whoever finds it (the read path, the heartbeat, a resync, a check).
func (l *purgeLog) observe(where, epoch string, seq, have uint64) bool {
	if l.sameHistory(epoch, seq, have) {
		return true
	}
	l.markRenew(fmt.Sprintf("%s: epoch %q, sequence %d; had %d", where, epoch, seq, have))
	return false
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

// A banStep is what a published ban asks of the table, as decided by
// tablePos.step from where the table stands.
type banStep uint8

const (
	// stepWait: the table was never synced; the resync under way loads
	// the ban.
	stepWait banStep = iota
	// stepAdopt: Redis was found with another history, not adopted
	// yet: adopt it, which loads the ban.
	stepAdopt
	// stepCheck: a ban of another epoch than the table's (Redis moved
	// to another, or a late message of an older one), or numbered at or
	// below the table's mark but no longer remembered: ask Redis which
	// history it holds.
	stepCheck
	// stepReplace: numbered like a ban applied, with another ID: Redis's
	// history changed under the same epoch (restored from a snapshot).
	// Another epoch is started, for every instance to adopt.
	stepReplace
	// stepApplied: applied already (by a catch-up on the read path).
	stepApplied
	// stepApply: the next in sequence: applied.
	stepApply
	// stepResync: past the next in sequence: some were missed.
	stepResync
)

var banStepNames = [...]string{"wait", "adopt", "check", "replace", "applied", "apply", "resync"}

func (s banStep) String() string { return banStepNames[s] }

// tablePos is where the ban table stands, read at once: its epoch (""
// and !known before the first sync), its high-water mark, and the gate's
// view of it.
type tablePos struct {
	epoch    string
	known    bool
	applied  uint64
	synced   bool // complete since the last (re)subscription
	renewing bool // Redis holds another history, not adopted yet
}

// pos returns where the table stands now.
func (l *purgeLog) pos() tablePos {
	epoch, known := l.knownEpoch()
	st := l.gate.state()
	return tablePos{epoch: epoch, known: known, applied: l.bans.Applied(), synced: st.synced, renewing: st.renewing}
}

// step decides what the published ban b asks of a table at p. appliedID
// is the ID of the ban the table applied with b's number, if remembered.
func (p tablePos) step(b tiers.Ban, appliedID string, remembered bool) banStep {
	switch {
	case !p.known:
		return stepWait
	case p.renewing:
		return stepAdopt
	case banEpoch(b.ID) != p.epoch:
		return stepCheck
	case b.Seq <= p.applied && !remembered:
		return stepCheck
	case b.Seq <= p.applied && appliedID != b.ID:
		return stepReplace
	case b.Seq <= p.applied:
		return stepApplied
	case b.Seq == p.applied+1:
		return stepApply
	}
	return stepResync
}

// confirms reports whether a table at p may confirm b: applied, in b's
// epoch, and complete. Never a ban of another epoch than the table's, nor
// one the table only seems to have applied.
func (p tablePos) confirms(b tiers.Ban) bool {
	return p.epoch == banEpoch(b.ID) && p.applied >= b.Seq && p.synced && !p.renewing
}

// A receipt is what became of a published ban: the step it took, whether
// that made the table complete again (a resync or adoption: L1 flushed,
// its lease to be earned again), and whether it is confirmed.
type receipt struct {
	step    banStep
	synced  bool
	confirm bool
}

// receive takes a ban published on the purge channel: it does what the
// table's position asks (tablePos.step: apply it, or check, adopt or
// resynchronise), then confirms it on its asker's channel if the table
// has it applied in its epoch (tablePos.confirms), and returns what it
// decided.
func (l *purgeLog) receive(ctx context.Context, b tiers.Ban) receipt {
	l.syncMu.Lock()
	id, remembered := l.appliedAs(b.Seq)
	p := l.pos()
	r := receipt{step: p.step(b, id, remembered)}
	switch r.step {
	case stepAdopt:
		r.synced = l.adoptLocked(ctx, false)
	case stepCheck:
		r.synced = l.checkLocked(ctx)
	case stepReplace:
		l.markRenew(fmt.Sprintf("ban %d published as %q, applied as %q", b.Seq, b.ID, id))
		r.synced = l.adoptLocked(ctx, true)
	case stepApply:
		l.applyBans(time.Now(), b)
	case stepResync:
		r.synced = l.resyncLocked(ctx, fmt.Sprintf("gap in purge sequence: have %d, got %d", p.applied, b.Seq))
	}
	r.confirm = l.pos().confirms(b)
	l.syncMu.Unlock()
	if !r.confirm {
		l.log.Debug("purge not confirmed: not applied in its epoch", "ban", b.String(), "step", r.step.String())
		return r
	}
	ch, ok := l.confirmChannel(b.ID)
	if !ok {
		return r // an epoch's opening ban: nobody waits for it
	}
	cctx, cancel := context.WithTimeout(ctx, l.op)
	defer cancel()
	if err := l.client.Publish(cctx, ch, confirmation(b.ID, l.self)).Err(); err != nil {
		l.log.Debug("purge confirmation not sent", "err", err)
	}
	return r
}

// resync makes the ban table complete after a (re)subscription: see
// resyncLocked.
func (l *purgeLog) resync(ctx context.Context, why string) (synced bool) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.resyncLocked(ctx, why)
}

// resyncLocked makes the ban table complete after a (re)subscription or
// a gap: every purge published before the subscription was confirmed is
// in Redis. The local tier is flushed too, and used again only after
// both and a heartbeat in sync, which also puts this instance back among
// the members that purges wait for (Redis may be new, and not know it).
// If Redis turns out to hold another purge log than the table's,
// it is adopted instead. It retries until it succeeds or ctx ends, and
// reports whether the table is complete. why, if not "", is logged.
// syncMu is held.
//
// Loading the bans takes as long as it takes: it is paged, each page with
// its own timeout (see loadBans), and a retry goes on from the last page
// applied.
func (l *purgeLog) resyncLocked(ctx context.Context, why string) (synced bool) {
	l.gate.on(l1Event{kind: evFenced})
	if why != "" {
		l.log.Info("resynchronising purges", "reason", why)
	}
	for ctx.Err() == nil {
		have := l.bans.Applied()
		cctx, cancel := context.WithTimeout(ctx, l.op)
		epoch, seq, err := l.readState(cctx, "", 0)
		cancel()
		if err == nil {
			if _, ok := l.knownEpoch(); !ok {
				l.setEpoch(epoch) // the first sync takes the epoch it finds
			}
			l.observe("resync", epoch, seq, have)
			if l.renewing() {
				return l.adoptLocked(ctx, false)
			}
			err = l.loadUpTo(ctx, seq)
		}
		if err == nil {
			l.unfence()
			return true
		}
		if errors.Is(err, errRenewing) {
			continue
		}
		if replyKind(err) != "" {
			l.fail(ctx, purposeFleet, "loading purges", err)
		}
		l.log.Warn("loading purges from redis failed; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(l.retry):
		}
	}
	return false
}

// adoptPending adopts Redis's purge log if it was found with another
// history and not adopted yet, and reports whether it was.
func (l *purgeLog) adoptPending(ctx context.Context) (synced bool) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.renewing() && l.adoptLocked(ctx, false)
}

// adoptLocked makes the ban table that of Redis's current purge epoch
// after Redis was found with another history (see epoch.go): the local
// tier and L2 reads stay unused meanwhile. The table is not reset: the
// epoch's sequence starts above every number this instance gave an entry
// (if it does not, because Redis's clock is behind, another epoch is
// started above them), so loading its bans from the table's high-water
// mark applies the epoch's opening all-ban, which kills every entry from
// before, and every ban since. If replace, the epoch Redis names is the
// table's own but its history changed (restored from a snapshot): another
// epoch is started, so that every instance adopts it. It retries until it
// succeeds or ctx ends, and reports whether the table is complete.
// syncMu is held.
func (l *purgeLog) adoptLocked(ctx context.Context, replace bool) (synced bool) {
	l.gate.on(l1Event{kind: evFenced})
	l.adoptions.Add(1)
	for ctx.Err() == nil {
		gen := l.gate.state().gen
		have := l.bans.Applied()
		var rep string
		if replace {
			rep, _ = l.knownEpoch()
		}
		cctx, cancel := context.WithTimeout(ctx, l.op)
		epoch, seq, err := l.readState(cctx, rep, have+1)
		cancel()
		if err == nil {
			l.setEpoch(epoch)
			replace = seq < have // the epoch starts below the table: start another
			if !replace {
				err = l.loadUpTo(ctx, seq)
			}
		}
		// Adopted only if Redis was not found with yet another history
		// meanwhile (the gate compares the generation).
		if err == nil && !replace {
			if _, after := l.gate.on(l1Event{kind: evAdopted, gen: gen}); !after.renewing {
				l.log.Info("adopted the new purge log", "epoch", epoch, "seq", l.bans.Applied())
				l.unfence()
				return true
			}
		}
		if err != nil && !errors.Is(err, errRenewing) {
			l.log.Warn("adopting redis's new purge log failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(l.retry):
		}
	}
	return false
}

// checkLocked reads Redis's purge epoch and sequence and adopts its log
// if it is not the table's; it reports whether it adopted one. syncMu is
// held.
func (l *purgeLog) checkLocked(ctx context.Context) (synced bool) {
	have := l.bans.Applied()
	cctx, cancel := context.WithTimeout(ctx, l.op)
	epoch, seq, err := l.readState(cctx, "", 0)
	cancel()
	if err != nil {
		return false // unconfirmed; the next heartbeat checks again
	}
	if !l.observe("check", epoch, seq, have) {
		return l.adoptLocked(ctx, false)
	}
	return false
}

// unfence ends a resync or adoption: the local tier is flushed, then may
// be used again (after the next heartbeat in sync, which the caller asks
// for).
func (l *purgeLog) unfence() {
	if f := l.flushLocal.Load(); f != nil {
		(*f)()
	}
	l.flushes.Add(1)
	l.gate.on(l1Event{kind: evSynced})
}
