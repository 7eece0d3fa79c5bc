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
// Redis under one prefix. It records purges in Redis, publishes them and
// waits for their confirmations (purge.go); it announces the instance
// with a heartbeat so that a purge knows whom to wait for, and measures
// Redis's clock (heartbeat.go); and it keeps the purge subscription,
// handing each ban it delivers to the Tier's purge log (purgelog.go),
// which applies and confirms it, and decides whether the local tier may
// be used (LocalUsable).
//
// Create it with NewFleet, then call Run.
type Fleet struct {
	t *Tier
	// The Tier's connection, its call timeout and its ban table (which
	// the purge log fills; the fleet reads its bounds and mark).
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
	// gate is the purge log's l1Gate (l1state.go), to which the fleet
	// gives the events of its subscription and heartbeat (heard, lost,
	// refused, beat). nil in a Fleet not made by NewFleet.
	gate *l1Gate
	// adopt is signalled when Redis is found with another purge history
	// (by the gate, or by a heartbeat after an adoption gave up).
	adopt      chan struct{}
	clock      atomic.Pointer[clockOffset]
	adopting   atomic.Bool                  // an adoption goroutine is running
	kick       chan struct{}                // asks for a heartbeat now (after a resync or adoption)
	ps         atomic.Pointer[redis.PubSub] // the purge subscription, replaced when refused or deaf
	echo       atomic.Int64                 // mono nanos: this instance's last heartbeat heard, or the last subscription
	reconnects atomic.Int64
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
	pl.join(f.id, f.opTimeout(), f.hb/4, f.flush)
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
				why := "" // the first subscription is no news
				if f.reconnects.Add(1) > 1 {
					why = "subscribed"
				}
				if f.plog().resync(ctx, why) {
					f.beatSoon()
				}
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

// beatSoon asks for a heartbeat now: the table was made complete again
// (a resync or adoption), and the L1 lease is earned by a heartbeat in
// sync.
func (f *Fleet) beatSoon() {
	select {
	case f.kick <- struct{}{}:
	default:
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
		if f.plog().adoptPending(ctx) {
			f.beatSoon()
		}
	}()
}

// onPurge hands a published ban to the purge log, which applies and
// confirms it (purgeLog.receive).
func (f *Fleet) onPurge(ctx context.Context, payload string) {
	b, err := tiers.ParseBan(payload)
	if err != nil {
		f.log.Warn("ignoring malformed purge message", "payload", payload, "err", err)
		return
	}
	f.received.Add(1)
	if f.plog().receive(ctx, b).synced {
		f.beatSoon()
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
