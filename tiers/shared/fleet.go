package shared

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// FleetOptions configures a Fleet.
type FleetOptions struct {
	// Tier is the shared tier whose client, prefix, timeout, logger and
	// ban table the fleet uses. Required, with Options.Bans set.
	Tier *Tier

	// ID names this instance in the fleet. If empty, host-pid-random.
	ID string

	// Info returns what this instance announces with each heartbeat
	// (its addresses and counters), encoded as JSON. May be nil.
	Info func() any

	// Flush drops every entry of the local tier. It is called whenever
	// the instance may have missed a purge: on every (re)subscription,
	// on a gap in the purge sequence and when Redis is found with a new
	// purge log. May be nil (no local tier).
	Flush func()

	// Heartbeat is how often the instance announces itself and checks
	// its subscription. If zero, 1s. An instance counts as live (for
	// fill leases and Members) for 5 heartbeats after its last one.
	Heartbeat time.Duration

	// PurgeWait bounds how long Purge waits for the instances to
	// confirm. If zero, 2s.
	PurgeWait time.Duration

	// L1TTL is the longest an entry lives in the local tier (the
	// proxy's L1TTL, which it caps entries at). An instance that cannot
	// reach Redis keeps using its local tier for L1TTL after its last
	// heartbeat in sync with the fleet's purges, and a purge waits for
	// (or reports) every instance heard from within L1TTL plus
	// FillTimeout. If zero, 30s.
	L1TTL time.Duration

	// FillTimeout bounds a fill (the proxy's FillTimeout): a fill that
	// started before a purge may answer the requests that joined it
	// for that long. If zero, 30s.
	FillTimeout time.Duration
}

// Fleet is this instance's membership of the fleet of proxies sharing one
// Redis under one prefix. It records purges in Redis and publishes them;
// it applies every instance's purges, in sequence, to the ban table, and
// confirms each once applied; it knows whether that table is complete and
// of Redis's current purge epoch, which decides when the local tier may
// be used (LocalUsable); and it announces the instance with a heartbeat
// so that a purge knows whom to wait for.
//
// Create it with NewFleet, then call Run.
type Fleet struct {
	t *Tier
	// The Tier's connection, its call timeout and the ban table the
	// fleet applies purges to (the Tier reads it on every get).
	client      redis.UniversalClient
	timeout     time.Duration
	bans        *tiers.Bans
	id          string
	info        func() any
	flush       func()
	hb          time.Duration
	purgeWait   time.Duration
	l1TTL       time.Duration
	fillTimeout time.Duration
	log         *slog.Logger

	started time.Time // also the base of the monotonic nanos below
	// gate is the purge log's l1Gate (l1state.go), which this fleet
	// drives: every change of whether the ban table is complete is an
	// event given to it. nil in a Fleet not made by NewFleet.
	gate *l1Gate
	// adopt is signalled when Redis is found with another purge history
	// (by the gate, or by a heartbeat after an adoption gave up).
	adopt chan struct{}
	// syncMu serialises what changes the ban table from the fleet's
	// side: resync, adoption, applying a published ban.
	syncMu     sync.Mutex
	clock      atomic.Pointer[clockOffset]
	adopting   atomic.Bool // an adoption goroutine is running
	kick       chan struct{}
	ps         atomic.Pointer[redis.PubSub] // the purge subscription, replaced when refused or deaf
	echo       atomic.Int64                 // mono nanos: this instance's last heartbeat heard, or the last subscription
	reconnects atomic.Int64
	flushes    atomic.Int64
	adoptions  atomic.Int64
	received   atomic.Int64
	purges     [5]atomic.Int64 // by tiers.BanKind

	mu      sync.Mutex
	waiters map[string]chan string // purge ID -> confirming instance IDs

	membersMu    sync.Mutex
	membersCache *membersAnswer // Members' last answer
}

// NewFleet returns a Fleet for opts.
func NewFleet(opts FleetOptions) (*Fleet, error) {
	if opts.Tier == nil {
		return nil, errors.New("shared: FleetOptions.Tier is required")
	}
	if opts.Tier.bans == nil {
		return nil, errors.New("shared: FleetOptions.Tier must have Options.Bans set")
	}
	if opts.Heartbeat < 0 || opts.PurgeWait < 0 || opts.L1TTL < 0 || opts.FillTimeout < 0 {
		return nil, errors.New("shared: FleetOptions durations must not be negative")
	}
	f := &Fleet{
		t: opts.Tier, client: opts.Tier.client, timeout: opts.Tier.timeout, bans: opts.Tier.bans,
		id: opts.ID, info: opts.Info, flush: opts.Flush,
		hb: opts.Heartbeat, purgeWait: opts.PurgeWait, log: opts.Tier.log,
		l1TTL: opts.L1TTL, fillTimeout: opts.FillTimeout,
		waiters: make(map[string]chan string),
		started: time.Now(),
		kick:    make(chan struct{}, 1),
		adopt:   make(chan struct{}, 1),
	}
	if f.id == "" {
		host, _ := os.Hostname()
		f.id = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomID()[:6])
	}
	if strings.ContainsAny(f.id, "|@ ") {
		return nil, fmt.Errorf("shared: FleetOptions.ID %q must not contain '|', '@' or spaces", f.id)
	}
	if f.hb == 0 {
		f.hb = time.Second
	}
	if f.purgeWait == 0 {
		f.purgeWait = 2 * time.Second
	}
	if f.l1TTL == 0 {
		f.l1TTL = 30 * time.Second
	}
	if f.fillTimeout == 0 {
		f.fillTimeout = tiers.DefaultFillTimeout
	}
	if f.flush == nil {
		f.flush = func() {}
	}
	pl := opts.Tier.purgeLog
	pl.onFloor.Store(&f.flush)
	f.gate = &pl.gate
	f.gate.configure(f.started, f.hb, f.l1TTL, f.adopt)
	return f, nil
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// opTimeout bounds the fleet's own calls to Redis (heartbeats, purges,
// confirmations, resyncs): longer than a cache read's, since nobody's
// response waits on them and a loaded Redis must not look like a dead one.
func (f *Fleet) opTimeout() time.Duration {
	return max(f.timeout, f.hb)
}

// mono returns the time since the fleet was created, from the monotonic
// clock.
func (f *Fleet) mono() int64 { return int64(time.Since(f.started)) }

// ID returns this instance's name in the fleet.
func (f *Fleet) ID() string { return f.id }

// LocalUsable reports whether the local tier may be used: within L1TTL of
// the last heartbeat this instance made in sync with the fleet's purges
// (subscribed, every purge applied, Redis's current epoch), and either
// still in sync or cut off from Redis altogether. An instance that can
// reach Redis but has lost its subscription, found a gap, or found a new
// purge log stops at once, until it has resynchronised. It is one atomic
// load.
func (f *Fleet) LocalUsable() bool { return f.gate.usableNow() }

// plog is the purge log this fleet keeps complete: the Tier's.
func (f *Fleet) plog() *purgeLog { return f.t.purgeLog }

// on gives ev to the gate (l1state.go).
func (f *Fleet) on(ev l1Event) (before, after l1State) { return f.gate.on(ev) }

func (f *Fleet) purgeChannel() string { return f.plog().purgeChannel() }
func (f *Fleet) ackChannel() string   { return f.plog().ackChannel() }
func (f *Fleet) replyChannel() string { return f.plog().replyChannel(f.id) }

// subscribe makes the fleet's subscription: the purges, this instance's
// own reply channel (the confirmations of its purges, its heartbeat's
// echo), and protocol 1's shared ack channel, on which only instances of
// that version publish (see protocol.go).
func (f *Fleet) subscribe(ctx context.Context) *redis.PubSub {
	return f.client.Subscribe(ctx, f.purgeChannel(), f.replyChannel(), f.ackChannel())
}
func (f *Fleet) membersKey() string { return f.t.metaKey("members") }
func (f *Fleet) memberKey(id string) string {
	return f.t.metaKey("member:" + id)
}

// Run subscribes to the fleet's purges and runs the heartbeat until ctx
// ends; it then leaves the fleet and returns nil. Redis being unreachable
// is not an error: Run keeps trying, and the local tier is used only as
// LocalUsable says until Redis is back and the ban table is complete
// again.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	f.ps.Store(f.subscribe(ctx))
	defer func() { f.ps.Load().Close() }()
	done := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		f.beat(ctx, done)
	}()
	go func() {
		// Adopt Redis's new purge log whenever one is found (on the
		// read path, by the heartbeat, by a published ban).
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-f.adopt:
				f.startAdoption(ctx, &wg)
			}
		}
	}()
	f.receive(ctx)
	close(done)
	wg.Wait()
	f.on(l1Event{kind: evStopped})
	f.t.setPeers(0)
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
	defer cancel()
	f.client.ZRem(lctx, f.membersKey(), f.id)
	f.client.Del(lctx, f.memberKey(f.id))
	return nil
}

// receive handles what the subscription delivers until ctx ends.
//
// go-redis redials and resubscribes by itself after a broken connection,
// but not after an error reply on a live one (a SUBSCRIBE refused by an
// ACL, NOPERM): then the subscription is closed and made again, with a
// backoff growing to maxSubscribeBackoff, until Redis accepts it.
func (f *Fleet) receive(ctx context.Context) {
	backoff := 50 * time.Millisecond
	refusedBackoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ps := f.ps.Load()
		msg, err := ps.ReceiveTimeout(ctx, 2*f.hb)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				continue // quiet channel; the heartbeat's ping keeps it honest
			}
			if errors.Is(err, redis.ErrClosed) {
				// Closed by checkEcho: subscribe again.
				f.ps.Store(f.subscribe(ctx))
				continue
			}
			if kind := replyKind(err); kind != "" {
				f.t.fail(ctx, purposeSubscribe, "subscribe", err)
				f.on(l1Event{kind: evFenced})
				f.log.Debug("purge subscription refused; subscribing again", "in", refusedBackoff.String(), "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(refusedBackoff):
				}
				refusedBackoff = min(2*refusedBackoff, maxSubscribeBackoff)
				ps.Close()
				f.ps.Store(f.subscribe(ctx))
				continue
			}
			// The connection broke: purges may be lost until go-redis
			// resubscribes, on the next receive. If Redis is down, not
			// just this connection, the instance is cut off and keeps
			// its local tier for a while (see LocalUsable); the ping
			// that tells is made only if the table was in sync. Meanwhile
			// (one ping) it confirms no purge, which a purge's 202
			// accounts for.
			cut := f.gate.state().synced && f.t.ping(ctx, f.timeout) != nil
			if before, after := f.on(l1Event{kind: evLost, cutOff: cut}); before.synced {
				if after.cutOff {
					f.log.Warn("cut off from redis: L1 used until the outage lease ends, then bypassed until resynchronised",
						"lease", f.l1TTL.String(), "err", err)
				} else {
					f.log.Warn("purge subscription lost: local tier bypassed until resubscribed", "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, f.hb)
			continue
		}
		backoff = 50 * time.Millisecond
		f.on(l1Event{kind: evHeard, at: f.mono()})
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == f.purgeChannel() {
				refusedBackoff = 50 * time.Millisecond
				f.t.okFor(purposeSubscribe)
				f.echo.Store(f.mono())
				f.syncMu.Lock()
				f.resyncLocked(ctx, "subscribed")
				f.syncMu.Unlock()
			}
		case *redis.Message:
			switch m.Channel {
			case f.purgeChannel():
				f.onPurge(ctx, m.Payload)
			case f.replyChannel():
				if m.Payload == f.echoPayload() {
					f.echo.Store(f.mono())
					break
				}
				f.onAck(m.Payload)
			case f.ackChannel():
				f.onAck(m.Payload) // a protocol 1 instance's confirmation
			}
		}
	}
}

// maxSubscribeBackoff bounds the wait between two attempts at a refused
// subscription.
const maxSubscribeBackoff = 2 * time.Second

// fence stops the use of the local tier until the ban table is complete
// again. The L1 lease is earned again by a heartbeat in sync after the
// resync, which also puts this instance back among the members that
// purges wait for (Redis may be new, and not know it).
func (f *Fleet) fence() { f.on(l1Event{kind: evFenced}) }

// unfence ends a resync or adoption: the local tier is flushed, then may
// be used again (after the next heartbeat in sync; one is asked for now).
func (f *Fleet) unfence() {
	f.flush()
	f.flushes.Add(1)
	f.on(l1Event{kind: evSynced})
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// resyncLocked makes the ban table complete after a (re)subscription or a
// gap: every purge published before the subscription was confirmed is in
// Redis. The local tier is flushed too, and used again only after both.
// If Redis turns out to hold another purge log than the table's, it is
// adopted instead. syncMu is held.
//
// Loading the bans takes as long as it takes: it is paged, each page with
// its own timeout (see purgeLog.loadBans), and a retry goes on from the last
// page applied.
func (f *Fleet) resyncLocked(ctx context.Context, why string) {
	pl := f.plog()
	f.fence()
	if why != "subscribed" || f.reconnects.Add(1) > 1 {
		f.log.Info("resynchronising purges", "reason", why)
	}
	for ctx.Err() == nil {
		have := f.bans.Applied()
		cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
		epoch, seq, err := pl.readState(cctx, "", 0)
		cancel()
		if err == nil {
			if _, ok := pl.knownEpoch(); !ok {
				pl.setEpoch(epoch) // the first sync takes the epoch it finds
			}
			if !pl.sameHistory(epoch, seq, have) {
				pl.markRenew(fmt.Sprintf("resync: epoch %q, sequence %d; had %d", epoch, seq, have))
			}
			if pl.renewing() {
				f.adoptLocked(ctx, false)
				return
			}
			err = pl.loadUpTo(ctx, seq)
		}
		if err == nil {
			break
		}
		if errors.Is(err, errRenewing) {
			continue
		}
		if replyKind(err) != "" {
			f.t.fail(ctx, purposeFleet, "loading purges", err)
		}
		f.log.Warn("loading purges from redis failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.hb / 4):
		}
	}
	if ctx.Err() == nil {
		f.unfence()
	}
}

// startAdoption adopts Redis's purge log in a goroutine of its own (one
// at a time), for a finding made on the read path or by the heartbeat.
func (f *Fleet) startAdoption(ctx context.Context, wg *sync.WaitGroup) {
	if ctx.Err() != nil || !f.adopting.CompareAndSwap(false, true) {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer f.adopting.Store(false)
		f.syncMu.Lock()
		defer f.syncMu.Unlock()
		if f.plog().renewing() {
			f.adoptLocked(ctx, false)
		}
	}()
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
// epoch is started, so that every instance adopts it. syncMu is held.
func (f *Fleet) adoptLocked(ctx context.Context, replace bool) {
	pl := f.plog()
	f.fence()
	f.adoptions.Add(1)
	for ctx.Err() == nil {
		gen := pl.gate.state().gen
		have := f.bans.Applied()
		var rep string
		if replace {
			rep, _ = pl.knownEpoch()
		}
		cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
		epoch, seq, err := pl.readState(cctx, rep, have+1)
		cancel()
		if err == nil {
			pl.setEpoch(epoch)
			replace = seq < have // the epoch starts below the table: start another
			if !replace {
				err = pl.loadUpTo(ctx, seq)
			}
		}
		// Adopted only if Redis was not found with yet another history
		// meanwhile (the gate compares the generation).
		if err == nil && !replace {
			if _, after := f.on(l1Event{kind: evAdopted, gen: gen}); !after.renewing {
				f.log.Info("adopted the new purge log", "epoch", epoch, "seq", f.bans.Applied())
				f.unfence()
				return
			}
		}
		if err != nil && !errors.Is(err, errRenewing) {
			f.log.Warn("adopting redis's new purge log failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.hb / 4):
		}
	}
}

// onPurge applies a published ban, in sequence, and confirms it once it
// is applied: never for a ban of another epoch than the table's, nor for
// one the table only seems to have applied.
func (f *Fleet) onPurge(ctx context.Context, payload string) {
	b, err := tiers.ParseBan(payload)
	if err != nil {
		f.log.Warn("ignoring malformed purge message", "payload", payload, "err", err)
		return
	}
	f.received.Add(1)
	pl := f.plog()
	f.syncMu.Lock()
	epoch := banEpoch(b.ID)
	known, ok := pl.knownEpoch()
	switch applied := f.bans.Applied(); {
	case !ok:
		// Not synced yet: the resync under way loads it.
	case pl.renewing():
		f.adoptLocked(ctx, false)
	case epoch != known:
		// Redis moved to another epoch, or this is a late message of
		// an older one: ask Redis which.
		f.checkLocked(ctx, false)
	case b.Seq <= applied:
		// Applied by a catch-up on the read path, or a ban of another
		// history numbered like one applied.
		if id, ok := pl.appliedAs(b.Seq); ok && id != b.ID {
			pl.markRenew(fmt.Sprintf("ban %d published as %q, applied as %q", b.Seq, b.ID, id))
			f.adoptLocked(ctx, true)
		} else if !ok {
			f.checkLocked(ctx, false)
		}
	case b.Seq == applied+1:
		pl.applyBans(time.Now(), b)
	default:
		f.resyncLocked(ctx, fmt.Sprintf("gap in purge sequence: have %d, got %d", applied, b.Seq))
	}
	known, _ = pl.knownEpoch()
	st := f.gate.state()
	confirm := known == epoch && f.bans.Applied() >= b.Seq && st.synced && !st.renewing
	f.syncMu.Unlock()
	if !confirm {
		f.log.Debug("purge not confirmed: not applied in its epoch", "ban", b.String())
		return
	}
	ch, ok := pl.confirmChannel(b.ID)
	if !ok {
		return // an epoch's opening ban: nobody waits for it
	}
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	defer cancel()
	if err := f.client.Publish(cctx, ch, confirmation(b.ID, f.id)).Err(); err != nil {
		f.log.Debug("purge confirmation not sent", "err", err)
	}
}

// checkLocked reads Redis's purge epoch and sequence and adopts its log
// if it is not the table's. syncMu is held.
func (f *Fleet) checkLocked(ctx context.Context, replace bool) {
	pl := f.plog()
	have := f.bans.Applied()
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	epoch, seq, err := pl.readState(cctx, "", 0)
	cancel()
	if err != nil {
		return // unconfirmed; the next heartbeat checks again
	}
	if !pl.sameHistory(epoch, seq, have) {
		pl.markRenew(fmt.Sprintf("epoch %q, sequence %d; had %d", epoch, seq, have))
		f.adoptLocked(ctx, replace)
	}
}

// onAck hands a confirmation to the Purge waiting for it, if any.
func (f *Fleet) onAck(payload string) {
	purgeID, member, ok := parseConfirmation(payload)
	if !ok {
		return
	}
	f.mu.Lock()
	ch := f.waiters[purgeID]
	f.mu.Unlock()
	if ch != nil {
		select {
		case ch <- member:
		default:
		}
	}
}
