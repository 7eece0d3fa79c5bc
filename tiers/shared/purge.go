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

	keys := []string{f.t.seqKey(), f.t.bansKey(), f.t.floorKey(), f.t.bytesKey(),
		f.t.epochKey(), f.membersKey()}
	maxBans, maxBytes := f.bans.Limits()
	sent := time.Now()
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	raw, err := purgeScript.Run(cctx, f.client, keys, sel.Kind.String(), requestID(id, f.id), sel.Value,
		f.t.retention().Milliseconds(), maxBans, maxBytes, tiers.BanOverhead, randomID(),
		f.redisDeadline(sent, f.opTimeout()), f.window().Milliseconds(), f.purgeChannel()).Slice()
	cancel()
	if err != nil {
		return tiers.PurgeResult{}, f.t.fail(ctx, purposeFleet, "recording purge", err)
	}
	f.t.okFor(purposeFleet)
	if sel.Kind == tiers.BanURL && baseKey != "" {
		// Only to free memory: the ban already makes the entry dead. In
		// its own slot, so not in the script.
		f.t.Delete(ctx, baseKey)
	}
	if len(raw) == 1 && raw[0] == "late" {
		return tiers.PurgeResult{}, ErrPurgeLate
	}
	if len(raw) < 2 || len(raw)%2 != 0 {
		return tiers.PurgeResult{}, errBadReply
	}
	f.purges[sel.Kind].Add(1)
	s, _ := raw[0].(string)
	b, err := tiers.ParseBan(s)
	if err != nil {
		return tiers.PurgeResult{}, err
	}
	res := tiers.PurgeResult{Ban: b}
	ms, _ := raw[1].(int64)
	at := time.UnixMilli(ms)
	heard := make(map[string]time.Time, len(raw)/2-1)
	for i := 2; i+1 < len(raw); i += 2 {
		m, _ := raw[i].(string)
		score, _ := raw[i+1].(string)
		h, err := strconv.ParseFloat(score, 64)
		if m == "" || err != nil {
			continue
		}
		heard[m] = time.UnixMilli(int64(h))
	}

	pending := make(map[string]bool, len(heard))
	for m := range heard {
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
				res.MissingUntil[m] = f.servesUntil(heard[m], at)
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
		InvalidationsRecvd: f.received.Load(), L1Flushes: f.flushes.Load(),
		BansApplied: f.bans.Applied(), BansHeld: f.bans.Len(),
		EpochAdoptions: f.adoptions.Load(), CutOff: f.gate.state().cutOff,
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
