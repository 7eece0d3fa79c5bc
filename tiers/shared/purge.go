package shared

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// errBadReply is a script's answer of an unexpected shape.
var errBadReply = errors.New("shared: unexpected reply from redis")

// ErrPurgeLate is returned by Purge when Redis ran the purge only after
// this instance had given up waiting for it: it was refused, not
// recorded.
var ErrPurgeLate = errors.New("shared: redis answered after the purge's deadline; not recorded")

// Purge records a ban of sel in Redis, publishes it, and waits
// up to PurgeWait for every instance that may still serve what it names
// (heard from within L1TTL plus FillTimeout and a little, this one
// included) to confirm it has applied it. baseKey, for a URL purge, is the
// URL's base cache key, deleted from Redis at once to free memory (the ban
// alone already makes it dead).
//
// An error means the ban was not recorded, with one exception: an error
// after which Redis may still have run the purge, whose answer was lost.
// Redis refuses to run it after this instance's deadline (see
// redisDeadline), so a purge that failed is never recorded after Purge
// returned; ErrPurgeLate says Redis refused it. A selector that is not
// valid (tiers.Selector.Validate: a value longer than tiers.MaxBanValue
// fails with tiers.ErrBanTooLong) is refused without a call to Redis.
func (f *Fleet) Purge(ctx context.Context, sel tiers.Selector, baseKey string) (tiers.PurgeResult, error) {
	if err := sel.Validate(); err != nil {
		return tiers.PurgeResult{}, fmt.Errorf("shared: purge of %s: %w", sel.Kind, err)
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

	rec, ran, err := f.record(ctx, sel, requestID(id, f.id))
	if sel.Kind == tiers.BanURL && baseKey != "" && ran {
		// Only to free memory: the ban already makes the entry dead. In
		// its own slot, so not in the script.
		f.t.Delete(ctx, baseKey)
	}
	if err != nil {
		return tiers.PurgeResult{}, err
	}
	f.purges[sel.Kind].Add(1)
	return f.awaitConfirmations(ctx, rec, acks)
}

// purgeCall is one run of purgeScript: what is recorded, and the bounds
// and names it is recorded with. args lists them in the script's order,
// the one place that knows it; the selector is one argument, its wire
// form, so that a field added to it changes neither.
type purgeCall struct {
	sel      tiers.Selector // sent in its wire form (Selector.Wire)
	request  string         // the ban's request ID (requestID)
	keep     time.Duration  // the log's retention
	maxBans  int            // the log's bounds (tiers.Bans.Limits)
	maxBytes int
	epoch    string        // the name of an epoch started by this call
	deadline int64         // Redis clock (ms) after which it is refused; 0 none
	window   time.Duration // members heard within it are returned
	channel  string        // the purge channel
	prior    string        // the epoch this instance knew ("": none; see lostKey)
}

func (c purgeCall) args() []any {
	return []any{c.sel.Wire(), c.request, c.keep.Milliseconds(), c.maxBans, c.maxBytes,
		tiers.BanOverhead, c.epoch, c.deadline, c.window.Milliseconds(), c.channel, c.prior}
}

// purgeRecord is purgeScript's answer: the ban recorded, Redis's clock
// then, when the purge log's epoch began (from then on its members set
// has heard every instance), and the members heard within the window,
// with when.
type purgeRecord struct {
	ban        tiers.Ban
	at         time.Time
	epochStart time.Time
	heard      map[string]time.Time
}

// parsePurgeReply reads purgeScript's reply, the one place that knows its
// layout: {'late'}, or the ban, the clock in ms, the epoch's start in ms,
// then pairs of member and score.
func parsePurgeReply(raw []any) (purgeRecord, error) {
	if len(raw) == 1 && raw[0] == "late" {
		return purgeRecord{}, ErrPurgeLate
	}
	if len(raw) < 3 || len(raw)%2 != 1 {
		return purgeRecord{}, errBadReply
	}
	ban, clock, start, heard := raw[0], raw[1], raw[2], raw[3:]
	s, _ := ban.(string)
	b, err := tiers.ParseBan(s)
	if err != nil {
		return purgeRecord{}, err
	}
	ms, ok1 := clock.(int64)
	began, ok2 := start.(int64)
	if !ok1 || !ok2 {
		return purgeRecord{}, errBadReply
	}
	rec := purgeRecord{ban: b, at: time.UnixMilli(ms), heard: make(map[string]time.Time, len(heard)/2)}
	if began > 0 { // 0: no history lost in this epoch (see lostKey)
		rec.epochStart = time.UnixMilli(began)
	}
	for i := 0; i+1 < len(heard); i += 2 {
		m, _ := heard[i].(string)
		score, _ := heard[i+1].(string)
		h, err := strconv.ParseFloat(score, 64)
		if m == "" || err != nil {
			continue
		}
		rec.heard[m] = time.UnixMilli(int64(h))
	}
	return rec, nil
}

// record runs purgeScript for sel: the ban is recorded and published, or
// an error says why not; ran is false if the call itself failed.
func (f *Fleet) record(ctx context.Context, sel tiers.Selector, request string) (rec purgeRecord, ran bool, err error) {
	pl := f.plog()
	keys := []string{pl.seqKey(), pl.bansKey(), pl.floorKey(), pl.bytesKey(), pl.epochKey(), f.membersKey(),
		pl.epochStartKey(), pl.lostKey()}
	maxBans, maxBytes := f.bans.Limits()
	sent := time.Now()
	prior, _ := pl.knownEpoch()
	call := purgeCall{sel: sel, request: request, keep: pl.retention(), maxBans: maxBans, maxBytes: maxBytes, prior: prior,
		epoch: randomID(), deadline: f.redisDeadline(sent, f.opTimeout()), window: f.window(), channel: f.purgeChannel()}
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	raw, err := purgeScript.Run(cctx, f.client, keys, call.args()...).Slice()
	cancel()
	if err != nil {
		return purgeRecord{}, false, f.t.fail(ctx, purposeFleet, "recording purge", err)
	}
	f.t.okFor(purposeFleet)
	rec, err = parsePurgeReply(raw)
	return rec, true, err
}

// awaitConfirmations waits up to PurgeWait for every member rec heard to
// confirm the ban on acks, and reports those that did not with the time
// until which they may still serve what it names, and, if the purge log's
// epoch is too young for its members set to know every instance that may
// serve, until when one it does not know may (unknownUntil).
func (f *Fleet) awaitConfirmations(ctx context.Context, rec purgeRecord, acks <-chan string) (tiers.PurgeResult, error) {
	res := tiers.PurgeResult{Ban: rec.ban, UnknownUntil: f.unknownUntil(rec.epochStart, rec.at)}
	pending := make(map[string]bool, len(rec.heard))
	for m := range rec.heard {
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
			res.MissingUntil = make(map[string]time.Time, len(pending))
			for m := range pending {
				res.Missing = append(res.Missing, m)
				res.MissingUntil[m] = f.servesUntil(rec.heard[m], rec.at)
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

// Members lists the live instances (heard within 5 heartbeats), this one
// included. It costs two Redis commands (the members set, then every
// member's info in one MGET), whatever the fleet's size, and its answer
// is kept for a heartbeat: however many dashboards poll it, an instance
// reads the members at most once a heartbeat. The slice is shared by the
// callers of that heartbeat: read it, do not modify it.
func (f *Fleet) Members(ctx context.Context) ([]Member, error) {
	f.membersMu.Lock()
	defer f.membersMu.Unlock()
	if c := f.membersCache; c != nil && f.mono()-c.at < int64(f.hb) {
		return c.members, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*f.timeout)
	defer cancel()
	zs, err := f.client.ZRangeByScoreWithScores(cctx, f.membersKey(), &redis.ZRangeBy{Min: "-inf", Max: "+inf"}).Result()
	if err != nil {
		return nil, err
	}
	out := []Member{}
	var keys []string
	for _, z := range zs {
		id, _ := z.Member.(string)
		seen := time.UnixMilli(int64(z.Score))
		if time.Since(seen) > 5*f.hb {
			continue
		}
		out = append(out, Member{ID: id, LastSeen: seen})
		keys = append(keys, f.memberKey(id))
	}
	if len(keys) > 0 {
		// The member keys share the fleet's hash tag: one Cluster slot.
		infos, err := f.client.MGet(cctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		for i, v := range infos {
			if s, ok := v.(string); ok && json.Valid([]byte(s)) {
				out[i].Info = json.RawMessage(s)
			}
		}
	}
	f.membersCache = &membersAnswer{at: f.mono(), members: out}
	return out, nil
}

// membersAnswer is Members' last answer, and when it was read.
type membersAnswer struct {
	at      int64 // mono nanos
	members []Member
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
	// Epoch is the purge log's epoch the ban table belongs to;
	// EpochAdoptions counts the times Redis was found with a new one.
	Epoch          string `json:"epoch"`
	EpochAdoptions int64  `json:"epoch_adoptions"`
	// CutOff is true while Redis did not answer the last heartbeat.
	CutOff bool `json:"cut_off"`
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() FleetStats {
	s := FleetStats{
		ID: f.id, LocalUsable: f.LocalUsable(), Purges: map[string]int64{},
		InvalidationsRecvd: f.received.Load(), L1Flushes: f.plog().flushes.Load(),
		BansApplied: f.bans.Applied(), BansHeld: f.bans.Len(),
		EpochAdoptions: f.plog().adoptions.Load(), CutOff: f.gate.state().cutOff,
	}
	s.Epoch, _ = f.plog().knownEpoch()
	if r := f.reconnects.Load(); r > 0 {
		s.SubscriptionResyncs = r - 1 // the first subscription is not a reconnect
	}
	for _, k := range tiers.BanKinds {
		s.Purges[k.String()] = f.purges[k].Load()
	}
	return s
}
