package shared

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
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
	// the instance may have missed a purge: on every (re)subscription
	// and on a gap in the purge sequence. May be nil (no local tier).
	Flush func()

	// Heartbeat is how often the instance announces itself and checks
	// its subscription. If zero, 1s. An instance is live for the others
	// for 5 heartbeats after its last one, and stops using its local
	// tier after 3 heartbeats without an answer from Redis.
	Heartbeat time.Duration

	// PurgeWait bounds how long Purge waits for the live instances to
	// confirm. If zero, 2s.
	PurgeWait time.Duration
}

// Fleet is this instance's membership of the fleet of proxies sharing one
// Redis under one prefix. It records purges in Redis and publishes them;
// it applies every instance's purges, in sequence, to the ban table, and
// confirms each; it knows whether that table is complete, which is when
// the local tier may be used (LocalUsable); and it announces the instance
// with a heartbeat so that a purge knows whom to wait for.
//
// Create it with NewFleet, then call Run.
type Fleet struct {
	t         *Tier
	id        string
	info      func() any
	flush     func()
	hb        time.Duration
	purgeWait time.Duration
	log       *slog.Logger

	started    time.Time
	synced     atomic.Bool  // the ban table is complete since the last (re)subscription
	pubsubOK   atomic.Int64 // unix nanos of the last sign of life of the subscription
	heartbeat  atomic.Int64 // unix nanos of the last successful heartbeat
	usable     atomic.Bool  // cached LocalUsable, refreshed by the watchdog
	reconnects atomic.Int64
	flushes    atomic.Int64
	received   atomic.Int64
	purges     [5]atomic.Int64 // by tiers.BanKind

	mu      sync.Mutex
	waiters map[string]chan string // purge ID -> confirming instance IDs
}

// NewFleet returns a Fleet for opts.
func NewFleet(opts FleetOptions) (*Fleet, error) {
	if opts.Tier == nil {
		return nil, errors.New("shared: FleetOptions.Tier is required")
	}
	if opts.Tier.bans == nil {
		return nil, errors.New("shared: FleetOptions.Tier must have Options.Bans set")
	}
	if opts.Heartbeat < 0 || opts.PurgeWait < 0 {
		return nil, errors.New("shared: FleetOptions.Heartbeat and PurgeWait must not be negative")
	}
	f := &Fleet{
		t: opts.Tier, id: opts.ID, info: opts.Info, flush: opts.Flush,
		hb: opts.Heartbeat, purgeWait: opts.PurgeWait, log: opts.Tier.log,
		waiters: make(map[string]chan string),
		started: time.Now(),
	}
	if f.id == "" {
		host, _ := os.Hostname()
		f.id = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomID()[:6])
	}
	if strings.ContainsAny(f.id, "| ") {
		return nil, fmt.Errorf("shared: FleetOptions.ID %q must not contain '|' or spaces", f.id)
	}
	if f.hb == 0 {
		f.hb = time.Second
	}
	if f.purgeWait == 0 {
		f.purgeWait = 2 * time.Second
	}
	if f.flush == nil {
		f.flush = func() {}
	}
	opts.Tier.onFloor.Store(&f.flush)
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
	return max(f.t.timeout, f.hb)
}

// ID returns this instance's name in the fleet.
func (f *Fleet) ID() string { return f.id }

// LocalUsable reports whether the local tier may be used: the instance is
// subscribed, has applied every purge recorded since, and heard from
// Redis within the last 3 heartbeats. It is one atomic load.
func (f *Fleet) LocalUsable() bool { return f.usable.Load() }

func (f *Fleet) purgeChannel() string { return f.t.prefix + ":purge" }
func (f *Fleet) ackChannel() string   { return f.t.prefix + ":purge:ack" }
func (f *Fleet) membersKey() string   { return f.t.prefix + ":members" }
func (f *Fleet) memberKey(id string) string {
	return f.t.prefix + ":member:" + id
}

// Run subscribes to the fleet's purges and runs the heartbeat until ctx
// ends; it then leaves the fleet and returns nil. Redis being unreachable
// is not an error: Run keeps trying, and the local tier stays unused
// until it is back and the ban table is complete again.
func (f *Fleet) Run(ctx context.Context) error {
	ps := f.t.client.Subscribe(ctx, f.purgeChannel(), f.ackChannel())
	defer ps.Close()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.beat(ctx, ps, done)
	}()
	f.receive(ctx, ps)
	close(done)
	wg.Wait()
	f.usable.Store(false)
	f.t.peers.Store(0)
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.t.timeout)
	defer cancel()
	f.t.client.ZRem(lctx, f.membersKey(), f.id)
	f.t.client.Del(lctx, f.memberKey(f.id))
	return nil
}

// receive handles what the subscription delivers until ctx ends.
func (f *Fleet) receive(ctx context.Context, ps *redis.PubSub) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 2*f.hb)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				continue // quiet channel; the heartbeat's ping keeps it honest
			}
			// The connection broke: purges may be lost until go-redis
			// resubscribes, on the next receive.
			if f.synced.Swap(false) {
				f.log.Warn("purge subscription lost: local tier bypassed until resubscribed", "err", err)
			}
			f.usable.Store(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, f.hb)
			continue
		}
		backoff = 50 * time.Millisecond
		f.pubsubOK.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == f.purgeChannel() {
				f.resync(ctx, "subscribed")
			}
		case *redis.Message:
			switch m.Channel {
			case f.purgeChannel():
				f.onPurge(ctx, m.Payload)
			case f.ackChannel():
				f.onAck(m.Payload)
			}
		}
		f.refreshUsable()
	}
}

// resync makes the ban table complete after a (re)subscription or a gap:
// every purge published before the subscription was confirmed is in
// Redis. The local tier is flushed too, and used again only after both.
//
// Loading the bans takes as long as it takes: it is paged, each page with
// its own timeout (see Tier.syncBans), and a retry goes on from the last
// page applied.
func (f *Fleet) resync(ctx context.Context, why string) {
	f.synced.Store(false)
	f.usable.Store(false)
	if why != "subscribed" || f.reconnects.Add(1) > 1 {
		f.log.Info("resynchronising purges", "reason", why)
	}
	for ctx.Err() == nil {
		err := f.t.syncBans(ctx, f.opTimeout())
		if err == nil {
			break
		}
		f.log.Warn("loading purges from redis failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.hb / 4):
		}
	}
	f.flush()
	f.flushes.Add(1)
	f.synced.Store(true)
}

// onPurge applies a published ban, in sequence, and confirms it.
func (f *Fleet) onPurge(ctx context.Context, payload string) {
	b, err := tiers.ParseBan(payload)
	if err != nil {
		f.log.Warn("ignoring malformed purge message", "payload", payload, "err", err)
		return
	}
	f.received.Add(1)
	switch applied := f.t.bans.Applied(); {
	case b.Seq <= applied:
		// Already applied, by a catch-up on the read path.
	case b.Seq == applied+1:
		f.t.bans.Apply(time.Now(), f.t.banKeep, b)
	default:
		f.resync(ctx, fmt.Sprintf("gap in purge sequence: have %d, got %d", applied, b.Seq))
	}
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	defer cancel()
	if err := f.t.client.Publish(cctx, f.ackChannel(), b.ID+"|"+f.id).Err(); err != nil {
		f.log.Debug("purge confirmation not sent", "err", err)
	}
}

// onAck hands a confirmation to the Purge waiting for it, if any.
func (f *Fleet) onAck(payload string) {
	purgeID, member, ok := strings.Cut(payload, "|")
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

// heartbeatScript announces an instance, with Redis's clock, and forgets
// instances silent for a minute.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - 60000)
return redis.call('ZCOUNT', KEYS[1], ms - tonumber(ARGV[4]), '+inf')
`)

// beat runs the heartbeat and the subscription's ping until done.
func (f *Fleet) beat(ctx context.Context, ps *redis.PubSub, done <-chan struct{}) {
	tick := time.NewTicker(f.hb)
	defer tick.Stop()
	watch := time.NewTicker(f.hb / 4)
	defer watch.Stop()
	f.heartbeatOnce(ctx)
	for {
		select {
		case <-done:
			return
		case <-watch.C:
			f.refreshUsable()
		case <-tick.C:
			f.heartbeatOnce(ctx)
			pctx, cancel := context.WithTimeout(ctx, f.opTimeout())
			ps.Ping(pctx) // the pong arrives through receive
			cancel()
		}
	}
}

func (f *Fleet) heartbeatOnce(ctx context.Context) {
	var info []byte
	if f.info != nil {
		info, _ = json.Marshal(f.info())
	}
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	defer cancel()
	window := strconv.FormatInt((5 * f.hb).Milliseconds(), 10)
	live, err := heartbeatScript.Run(cctx, f.t.client, []string{f.membersKey(), f.memberKey(f.id)},
		f.id, string(info), window, window).Int64()
	if err == nil {
		f.heartbeat.Store(time.Now().UnixNano())
		// Instances started together see only themselves on their
		// first heartbeats: claim to be alone only once every instance
		// started with this one has had time to announce itself.
		if live == 1 && time.Since(f.started) < 5*f.hb {
			live = 0
		}
		f.t.peers.Store(live)
	}
	f.refreshUsable()
}

// refreshUsable recomputes LocalUsable.
func (f *Fleet) refreshUsable() {
	limit := time.Now().Add(-3 * f.hb).UnixNano()
	f.usable.Store(f.synced.Load() && f.pubsubOK.Load() > limit && f.heartbeat.Load() > limit)
}

// liveScript lists the instances heard from within ARGV[1] ms, by Redis's
// clock.
var liveScript = redis.NewScript(`
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], ms - tonumber(ARGV[1]), '+inf')
`)

// PurgeResult is the outcome of a fleet-wide purge.
type PurgeResult struct {
	Ban tiers.Ban
	// Confirmed lists the live instances that applied the ban within
	// the wait; Missing those that did not.
	Confirmed []string
	Missing   []string
}

// Purge records a ban of kind and value in Redis, publishes it, and waits
// up to PurgeWait for every live instance (this one included) to confirm
// it has applied it. baseKey, for a URL purge, is the URL's base cache
// key, deleted from Redis at once to free memory (the ban alone already
// makes it dead). An error means the ban could not be recorded: the fleet
// was not told. A value longer than tiers.MaxBanValue is refused with
// tiers.ErrBanTooLong, without a call to Redis.
func (f *Fleet) Purge(ctx context.Context, kind tiers.BanKind, value, baseKey string) (PurgeResult, error) {
	if len(value) > tiers.MaxBanValue {
		return PurgeResult{}, fmt.Errorf("shared: purge of a %s of %d bytes: %w", kind, len(value), tiers.ErrBanTooLong)
	}
	id := randomID()
	acks := make(chan string, 256)
	f.mu.Lock()
	f.waiters[id] = acks
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.waiters, id)
		f.mu.Unlock()
	}()

	keys := []string{f.t.seqKey(), f.t.bansKey(), f.purgeChannel(), f.t.floorKey(), f.t.bytesKey()}
	if kind == tiers.BanURL && baseKey != "" {
		keys = append(keys, baseKey)
	}
	maxBans, maxBytes := f.t.bans.Limits()
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	raw, err := purgeScript.Run(cctx, f.t.client, keys, kind.String(), id, value,
		f.t.banKeep.Milliseconds(), maxBans, maxBytes, tiers.BanOverhead).Text()
	cancel()
	if err != nil {
		return PurgeResult{}, f.t.fail(ctx, "recording purge", err)
	}
	f.purges[kind].Add(1)
	b, err := tiers.ParseBan(raw)
	if err != nil {
		return PurgeResult{}, err
	}
	res := PurgeResult{Ban: b}

	cctx, cancel = context.WithTimeout(ctx, f.opTimeout())
	live, err := liveScript.Run(cctx, f.t.client, []string{f.membersKey()},
		strconv.FormatInt((5*f.hb).Milliseconds(), 10)).StringSlice()
	cancel()
	if err != nil {
		return res, fmt.Errorf("listing live instances: %w", err)
	}
	pending := make(map[string]bool, len(live))
	for _, m := range live {
		pending[m] = true
	}
	timer := time.NewTimer(f.purgeWait)
	defer timer.Stop()
	for len(pending) > 0 {
		select {
		case m := <-acks:
			if pending[m] {
				delete(pending, m)
				res.Confirmed = append(res.Confirmed, m)
			}
		case <-timer.C:
			for m := range pending {
				res.Missing = append(res.Missing, m)
			}
			sort.Strings(res.Missing)
			pending = nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	sort.Strings(res.Confirmed)
	return res, nil
}

// Member is one live instance as announced by its heartbeat.
type Member struct {
	ID       string          `json:"id"`
	LastSeen time.Time       `json:"last_seen"`
	Info     json.RawMessage `json:"info,omitempty"`
}

// Members lists the live instances, this one included.
func (f *Fleet) Members(ctx context.Context) ([]Member, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*f.t.timeout)
	defer cancel()
	zs, err := f.t.client.ZRangeByScoreWithScores(cctx, f.membersKey(), &redis.ZRangeBy{Min: "-inf", Max: "+inf"}).Result()
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, z := range zs {
		id, _ := z.Member.(string)
		seen := time.UnixMilli(int64(z.Score))
		if time.Since(seen) > 5*f.hb {
			continue
		}
		m := Member{ID: id, LastSeen: seen}
		if info, err := f.t.client.Get(cctx, f.memberKey(id)).Bytes(); err == nil && json.Valid(info) {
			m.Info = info
		}
		out = append(out, m)
	}
	return out, nil
}

// FleetStats are the fleet's counters for this instance.
type FleetStats struct {
	ID                  string           `json:"id"`
	LocalUsable         bool             `json:"local_usable"`
	Purges              map[string]int64 `json:"purges"`
	InvalidationsRecvd  int64            `json:"invalidations_received"`
	SubscriptionResyncs int64            `json:"subscription_resyncs"`
	L1Flushes           int64            `json:"l1_flushes"`
	BansApplied         uint64           `json:"bans_applied_seq"`
	BansHeld            int              `json:"bans_held"`
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() FleetStats {
	s := FleetStats{
		ID: f.id, LocalUsable: f.LocalUsable(), Purges: map[string]int64{},
		InvalidationsRecvd: f.received.Load(), L1Flushes: f.flushes.Load(),
		BansApplied: f.t.bans.Applied(), BansHeld: f.t.bans.Len(),
	}
	if r := f.reconnects.Load(); r > 0 {
		s.SubscriptionResyncs = r - 1 // the first subscription is not a reconnect
	}
	for _, k := range []tiers.BanKind{tiers.BanURL, tiers.BanPrefix, tiers.BanTag, tiers.BanAll} {
		s.Purges[k.String()] = f.purges[k].Load()
	}
	return s
}
