package shared

// Epochs of the purge log. The sequence numbers of bans, and the bans
// themselves, live in Redis; a Redis restarted without persistence,
// flushed, or restored from an older snapshot has lost some of them. An
// instance that went on trusting its own high-water mark would then take
// the new bans for ones it already applied and confirm them without
// applying them.
//
// So the log has an epoch: a random name in epochKey, created by the
// first script that finds it missing (a heartbeat, a purge, a resync),
// together with an all-ban that starts the epoch's sequence. Every read of
// the sequence (the L2 read's MGET, the fill lease, the heartbeat, the
// resync, each page of bans) reads the epoch with it. An instance that
// sees another epoch than its bans belong to, or a sequence below what it
// has applied, has found Redis with another history: it stops using L1
// and L2 (Tier.renewing), adopts the epoch (Fleet.adopt), flushes L1, and
// only then uses them and confirms purges again.
//
// An epoch's sequence starts at the Redis clock in milliseconds (and
// above the sequence numbers of whoever starts it), so sequence numbers
// keep growing across epochs: the ban table never goes back, entries
// filled before the epoch, wherever they are stored (a fill in flight
// across a restart stores into the new Redis), carry lower numbers, and
// the epoch's opening all-ban kills them all.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// epochKey holds the name of the purge log's epoch.
func (t *Tier) epochKey() string { return t.metaKey("purge:epoch") }

// errRenewing is the read path's answer while the instance adopts a new
// epoch of the purge log: a miss.
var errRenewing = errors.New("redis has a new purge history; adopting it")

// epochLua is prepended to the scripts that may find the log without an
// epoch, with the wire form of bans (tiers.BanLua). ensure_epoch returns the epoch; if there is none (or it is
// replace, which a caller that found the log's history changed under the
// same epoch passes), it starts one named cand: the sequence moves to the
// largest of the Redis clock in ms, minseq and the old sequence plus one,
// an all-ban at that number replaces the log, and it is published.
// Millisecond numbers (13 digits) stay exact in Lua's %.14g conversions.
var epochLua = tiers.BanLua + `
local function ensure_epoch(ek, sk, bk, byk, ch, cand, replace, minseq, ms, overhead)
  local e = redis.call('GET', ek)
  if e and (replace == '' or e ~= replace) then return e end
  local seq = math.max(ms, tonumber(minseq) or 0, (tonumber(redis.call('GET', sk)) or 0) + 1)
  local s = string.format('%d', seq)
  local ban = encode_ban(s, ban_all, ms, '` + epochBanPrefix + `' .. cand .. '@' .. cand, '')
  redis.call('SET', ek, cand)
  redis.call('SET', sk, s)
  redis.call('ZREMRANGEBYSCORE', bk, '-inf', '(' .. s)
  redis.call('ZADD', bk, s, ban)
  redis.call('SET', byk, overhead)
  redis.call('PUBLISH', ch, ban)
  return cand
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// stateScript returns the epoch (starting one if there is none, or if it
// is ARGV[2]: see epochLua, ARGV[5] the channel) and the purge sequence.
var stateScript = redis.NewScript(epochLua + `
local e = ensure_epoch(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[5], ARGV[1], ARGV[2], ARGV[3], ms, ARGV[4])
return {e, redis.call('GET', KEYS[2])}
`)

// epochKeys are the keys ensure_epoch takes, in its order; its channel,
// purgeChannel, is an argument (a channel is no key: in a Cluster it has
// no slot to share with them).
func (t *Tier) epochKeys() []string {
	return []string{t.epochKey(), t.seqKey(), t.bansKey(), t.bytesKey()}
}

// purgeChannel is the channel bans are published on.
func (t *Tier) purgeChannel() string { return t.prefix + ":purge" }

// readState returns Redis's purge epoch and sequence, starting an epoch
// if there is none. If replace is the current epoch, another is started,
// its sequence above minSeq.
func (t *Tier) readState(ctx context.Context, replace string, minSeq uint64) (epoch string, seq uint64, err error) {
	res, err := stateScript.Run(ctx, t.client, t.epochKeys(), randomID(), replace,
		minSeq, tiers.BanOverhead, t.purgeChannel()).StringSlice()
	if err != nil {
		return "", 0, err
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("purge state: %d values", len(res))
	}
	if seq, err = strconv.ParseUint(res[1], 10, 64); err != nil {
		return "", 0, fmt.Errorf("purge sequence %q: %w", res[1], err)
	}
	return res[0], seq, nil
}

// banEpoch returns the epoch a ban was recorded in: its ID is
// "<request>@<epoch>".
func banEpoch(id string) string {
	_, e, _ := strings.Cut(id, "@")
	return e
}

// knownEpoch returns the epoch the ban table belongs to, or "" and false
// before a Fleet first synced it (a tier without a fleet never checks).
func (t *Tier) knownEpoch() (string, bool) {
	if p := t.epoch.Load(); p != nil {
		return *p, true
	}
	return "", false
}

// sameHistory reports whether Redis, found at epoch with sequence seq,
// still holds the history the ban table was built from. have is what the
// table had applied before seq was read (a ban applied since may be newer
// than seq).
func (t *Tier) sameHistory(epoch string, seq, have uint64) bool {
	known, ok := t.knownEpoch()
	return !ok || (epoch == known && seq >= have)
}

// markRenew records that Redis holds another history than the ban table:
// L2 reads miss and the local tier is unused until a Fleet has adopted it.
func (t *Tier) markRenew(why string) {
	t.renewGen.Add(1)
	if !t.renew.Swap(true) {
		t.log.Warn("redis lost purges (restarted empty, flushed or restored): L1 and L2 unused until the new purge log is adopted",
			"reason", why)
	}
	if f := t.onRenew.Load(); f != nil {
		(*f)()
	}
}

// renewing reports whether an adoption is pending.
func (t *Tier) renewing() bool { return t.renew.Load() }

// The Fleet's side of the epoch (fleet.go): it adopts a new history and
// hooks itself to the findings.

// setEpoch records the epoch the ban table now belongs to.
func (t *Tier) setEpoch(epoch string) { t.epoch.Store(&epoch) }

// renewals counts the times Redis was found with another history; an
// adoption that began at one count is complete only if it is unchanged.
func (t *Tier) renewals() int64 { return t.renewGen.Load() }

// renewed clears the pending adoption: the ban table is Redis's history.
func (t *Tier) renewed() { t.renew.Store(false) }

// setOnRenew sets (or, with nil, clears) the hook markRenew calls.
func (t *Tier) setOnRenew(fn *func()) { t.onRenew.Store(fn) }

// renewHook returns the hook markRenew calls, or nil.
func (t *Tier) renewHook() *func() { return t.onRenew.Load() }

// applyBans applies published or loaded bans to the ban table, noting
// their IDs for appliedAs.
func (t *Tier) applyBans(now time.Time, bans ...tiers.Ban) {
	t.bans.Apply(now, t.banKeep, bans...)
	t.recent.note(bans...)
}

// appliedAs returns the ID of the ban applied with sequence number seq,
// if it is among the last ones applied.
func (t *Tier) appliedAs(seq uint64) (string, bool) { return t.recent.lookup(seq) }

// retention is how long a ban is kept: no entry filled before it can be
// alive after that.
func (t *Tier) retention() time.Duration { return t.banKeep }

// recentBans remembers the IDs of the last bans applied, by sequence
// number, so that a published ban numbered at or below the table's
// high-water mark can be told apart from one already applied: same
// number, another ID, means Redis's history changed under the same epoch.
type recentBans struct {
	mu  sync.Mutex
	ids [1024]struct {
		seq uint64
		id  string
	}
}

func (r *recentBans) note(bans ...tiers.Ban) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range bans {
		e := &r.ids[b.Seq%uint64(len(r.ids))]
		e.seq, e.id = b.Seq, b.ID
	}
}

// lookup returns the ID of the ban applied at seq, if remembered.
func (r *recentBans) lookup(seq uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.ids[seq%uint64(len(r.ids))]
	return e.id, e.seq == seq && e.id != ""
}

// setPeers records the number of live instances of the fleet, this one
// included, as the last heartbeat counted them (0: unknown): with one,
// the fill lease is skipped (lease.go).
func (t *Tier) setPeers(n int64) { t.peers.Store(n) }
