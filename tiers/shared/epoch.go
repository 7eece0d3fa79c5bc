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
// and L2 (purgeLog.renewing), adopts the epoch (purgeLog.adoptLocked), flushes L1, and
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

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// epochKey holds the name of the purge log's epoch.
func (l *purgeLog) epochKey() string { return metaKeyOf(l.prefix, "purge:epoch") }

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
//
// note_lost records in lk that an instance that knew the epoch prior
// reached Redis in epoch e, another (see lostKey).
//
// epoch_start returns when (Redis clock, ms) the epoch e began: the
// moment from which Redis's members set has heard every instance (a
// Redis that lost its data lost the members with the log; see
// Fleet.unknownUntil). It is recorded in stk ("<epoch> <ms>", see
// epochStartKey) by the first purge of the epoch, read from the epoch's
// opening ban, which is the first in the log until a purge drops or trims
// it. If stk names another epoch and the opening ban is gone (an epoch
// started and purged by instances of a release before epoch_start), the
// epoch is taken to begin now: later than it did, so its purges are
// taken for younger, never older, than they are. ensure_epoch leaves stk
// alone, so that the scripts of that release, which do not know it, start
// epochs as this one does.
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
local function epoch_start(stk, bk, e, ms, overhead)
  local v = redis.call('GET', stk)
  if v then
    local name, at = string.match(v, '^(%S+) (%d+)$')
    if name == e then return tonumber(at) end
  end
  local start = ms
  local first = redis.call('ZRANGE', bk, 0, 0)[1]
  if first and string.find(first, '|` + epochBanPrefix + `' .. e .. '@' .. e .. '|', 1, true) then
    start = ban_at_cost(first, overhead)
  end
  redis.call('SET', stk, e .. ' ' .. string.format('%d', start))
  return start
end
local function note_lost(lk, e, prior)
  if prior ~= '' and prior ~= e then redis.call('SET', lk, e) end
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// stateScript returns the epoch (starting one if there is none, or if it
// is ARGV[2]: see epochLua, ARGV[5] the channel) and the purge sequence;
// ARGV[6] is the epoch the instance knew (see lostKey, KEYS[5]).
var stateScript = redis.NewScript(epochLua + `
local e = ensure_epoch(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[5], ARGV[1], ARGV[2], ARGV[3], ms, ARGV[4])
note_lost(KEYS[5], e, ARGV[6] or '')
return {e, redis.call('GET', KEYS[2])}
`)

// epochStartKey holds when the current epoch began: "<epoch> <ms>" (see
// epoch_start in epochLua).
func (l *purgeLog) epochStartKey() string { return metaKeyOf(l.prefix, "purge:epoch-start") }

// lostKey names the epoch in which an instance that knew another epoch
// reached Redis (note_lost in epochLua): Redis lost its history, and its
// members set with it, while instances were running. A new fleet on an
// empty Redis has no such instance, and its members set knows everyone
// from the start: only an epoch named here makes a purge's membership
// incomplete while it is young (Fleet.unknownUntil). Each heartbeat and
// purge tells the scripts the epoch its instance knew (knownEpoch).
func (l *purgeLog) lostKey() string { return metaKeyOf(l.prefix, "purge:epoch-lost") }

// epochKeys are the keys ensure_epoch takes, in its order; its channel,
// purgeChannel, is an argument (a channel is no key: in a Cluster it has
// no slot to share with them).
func (l *purgeLog) epochKeys() []string {
	return []string{l.epochKey(), l.seqKey(), l.bansKey(), l.bytesKey()}
}

// purgeChannel is the channel bans are published on.
func (l *purgeLog) purgeChannel() string { return l.prefix + ":purge" }

// readState returns Redis's purge epoch and sequence, starting an epoch
// if there is none. If replace is the current epoch, another is started,
// its sequence above minSeq.
func (l *purgeLog) readState(ctx context.Context, replace string, minSeq uint64) (epoch string, seq uint64, err error) {
	prior, _ := l.knownEpoch()
	res, err := stateScript.Run(ctx, l.client, append(l.epochKeys(), l.lostKey()), randomID(), replace,
		minSeq, tiers.BanOverhead, l.purgeChannel(), prior).StringSlice()
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
