package shared

// The purge log in Redis: its keys, the script that records a ban and
// keeps the log bounded, and the paged loading that reads it into the ban
// table.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// purgeScript records a ban and publishes it, atomically, so that bans
// are published in sequence order. Its arguments are named in its first
// lines, in the order purgeCall.args gives them; the selector is one of
// them, in its wire form (tiers.Selector.Wire), which the script splits
// into the ban's kind and value fields and reads nothing else of but
// whether it is a hard purge of everything. It keeps the log bounded, a
// little at each purge and never by a scan:
//
//   - a hard all-ban drops every ban recorded before it (it makes them
//     redundant: it kills whatever they kill);
//   - up to 16 bans older than the retention (keep, ms) are pruned,
//     oldest first: no entry filled before them can be alive;
//   - while the log holds more than maxBans bans or more than maxBytes
//     bytes (each ban counted as its value's length plus overhead, as by
//     tiers.BanCost), up to 256 of the oldest are trimmed, and the floor
//     key (KEYS[3]) is raised to the newest trimmed one's Seq. An instance
//     catching up from below the floor has missed bans the log no longer
//     holds: it applies an all-ban at the floor, which kills every entry
//     they killed (see purgeLog.loadPage).
//
// KEYS[4] holds the log's byte count; it is reset whenever the log is
// down to the one new ban, so a count thrown off (by an older instance's
// script, which does not keep it) heals.
//
// The ban's ID is the request's and the epoch's, joined by "@"; the epoch
// (KEYS[5]) is started first if there is none (see epochLua, cand its
// name). If deadline is not 0 and Redis's clock is past it (in ms),
// nothing is recorded and the script returns {'late'}: the caller has
// given up by then (see Fleet.Purge). It publishes the ban on channel and
// returns the reply parsePurgeReply reads: the ban, Redis's clock (ms),
// when the epoch began (ms, recorded in KEYS[7] before the ban, which may
// drop the epoch's opening ban: see epoch_start in epochLua) if it began
// when Redis lost its history with instances running (KEYS[8], see
// lostKey; prior is the epoch the asking instance knew), else 0, and the
// members of KEYS[6] heard within window ms, each followed by its score.
// Every key is the fleet's metadata, in one Cluster slot (see keys.go).
//
// What it stores and publishes, the ban's wire form, is what the script
// of earlier releases (which took the selector as two of eleven
// arguments) stores and publishes: instances of both can share a Redis
// (TestPurgeScriptRecordsAsBefore).
var purgeScript = redis.NewScript(epochLua + `
local sel, request, keep, maxBans, maxBytes, overhead, cand, deadline, window, channel, prior =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10], ARGV[11] or ''
local kind, value = decode_selector(sel)
if not kind then return redis.error_reply('malformed selector ' .. sel) end
if deadline > 0 and ms > deadline then return {'late'} end
local epoch = ensure_epoch(KEYS[5], KEYS[1], KEYS[2], KEYS[4], channel, cand, '', 0, ms, overhead)
local start = epoch_start(KEYS[7], KEYS[2], epoch, ms, overhead)
note_lost(KEYS[8], epoch, prior)
if redis.call('GET', KEYS[8]) ~= epoch then start = 0 end
local seq = string.format('%d', redis.call('INCR', KEYS[1]))
local ban = encode_ban(seq, kind, ms, request .. '@' .. epoch, value)
if kind == ban_all then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. seq)
  redis.call('SET', KEYS[4], 0)
end
redis.call('ZADD', KEYS[2], seq, ban)
local bytes = redis.call('INCRBY', KEYS[4], #value + overhead)
for i = 1, 16 do
  local first = redis.call('ZRANGE', KEYS[2], 0, 0)
  if first[1] == ban then break end
  local at, cost = ban_at_cost(first[1], overhead)
  if at >= ms - keep then break end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
  bytes = redis.call('DECRBY', KEYS[4], cost)
end
local n = redis.call('ZCARD', KEYS[2])
local floor = nil
for i = 1, 256 do
  if n <= 1 or (n <= maxBans and bytes <= maxBytes) then break end
  local first = redis.call('ZPOPMIN', KEYS[2])
  local _, cost = ban_at_cost(first[1], overhead)
  bytes = redis.call('DECRBY', KEYS[4], cost)
  floor = first[2]
  n = n - 1
end
if floor and tonumber(floor) > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], floor)
end
if n == 1 then redis.call('SET', KEYS[4], #value + overhead) end
redis.call('PUBLISH', channel, ban)
local out = {ban, ms, start}
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], ms - window, '+inf', 'WITHSCORES')) do
  out[#out + 1] = v
end
return out
`)

// seqKey holds the fleet's purge sequence number: the Seq of the last ban
// recorded.
func (l *purgeLog) seqKey() string { return l.seq }

// bansKey is a sorted set of the recorded bans (tiers.Ban.String), scored
// by Seq.
func (l *purgeLog) bansKey() string { return metaKeyOf(l.prefix, "purge:bans") }

// floorKey holds the floor of the ban log: the Seq of the newest ban
// trimmed from it to keep it within its bounds (see purgeScript).
func (l *purgeLog) floorKey() string { return metaKeyOf(l.prefix, "purge:floor") }

// bytesKey holds what the bans in the log are counted to cost (see
// purgeScript).
func (l *purgeLog) bytesKey() string { return metaKeyOf(l.prefix, "purge:bytes") }

// Bans are loaded from Redis a page at a time: at most banPage bans and,
// but for the first, banPageBytes bytes of them.
const (
	banPage      = 1000
	banPageBytes = 1 << 20
)

// errBansLoading is the read path's answer while the ban table is too far
// behind the fleet's to use an entry: a miss, not a sign that Redis is
// unreachable.
var errBansLoading = errors.New("purge bans still loading")

// catchUp loads the bans Bans has not applied if seq, the fleet's purge
// sequence number as read from Redis (a string, or nil if no purge was
// ever recorded), is ahead of it. have is Bans.Applied as it was before
// seq was read, and epoch the epoch read with seq: if they say Redis has
// another history than the table (see observe), the tier starts
// renewing and the read is a miss. It waits for the bans until ctx ends
// or, if deadline is not zero, until deadline, and not at all when more
// than a page is missing (a new instance, or one back from an outage):
// the loading goes on in the background, and the entry is a miss
// meanwhile.
func (l *purgeLog) catchUp(ctx context.Context, deadline time.Time, have uint64, seq, epoch any) error {
	if l.renewing() {
		return errRenewing
	}
	s, _ := seq.(string)
	e, _ := epoch.(string)
	var n uint64
	if s != "" {
		var err error
		if n, err = strconv.ParseUint(s, 10, 64); err != nil {
			return fmt.Errorf("purge sequence %q: %w", s, err)
		}
	}
	if !l.observe("read", e, n, have) {
		return errRenewing
	}
	have = l.bans.Applied()
	if n <= have {
		return nil
	}
	if n-have > banPage {
		l.syncs.DoChan("sync", l.loadBans)
		return fmt.Errorf("%w: have %d of %d", errBansLoading, have, n)
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	return l.loadUpTo(ctx, n)
}

// loadUpTo waits, until ctx ends, for Bans to have applied every ban up
// to n. The loading itself (loadBans) runs on its own, shared by every
// caller: one that gives up leaves it going for the next, and what it has
// applied stays applied.
func (l *purgeLog) loadUpTo(ctx context.Context, n uint64) error {
	// A load already under way may end before the ban numbered n was
	// recorded: then load again.
	for range 3 {
		if n <= l.bans.Applied() {
			return nil
		}
		select {
		case r := <-l.syncs.DoChan("sync", l.loadBans):
			if r.Err != nil {
				return r.Err
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: have %d of %d: %w", errBansLoading, l.bans.Applied(), n, ctx.Err())
		}
	}
	if n <= l.bans.Applied() {
		return nil
	}
	return fmt.Errorf("purge bans up to %d not found (have %d)", n, l.bans.Applied())
}

// loadBans applies the bans recorded in Redis after Bans.Applied, a page
// at a time, until the end of the log. Each page has its own timeout, the
// larger of Timeout and a second, and is applied before the next is read.
func (l *purgeLog) loadBans() (any, error) {
	start, from := time.Now(), l.bans.Applied()
	pages := 0
	for {
		select {
		case <-l.stop:
			return nil, redis.ErrClosed
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(l.timeout, time.Second))
		more, err := l.loadPage(ctx)
		cancel()
		pages++
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if pages > 1 {
		l.log.Info("purge bans loaded", "from", from, "to", l.bans.Applied(), "pages", pages,
			"held", l.bans.Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	return nil, nil
}

// pageScript returns the floor of the ban log (KEYS[2], see purgeScript),
// whether more bans follow this page ("1" or "0"), the epoch (KEYS[3],
// "" if none), and the page: the bans
// after Seq ARGV[1], at most ARGV[2] of them and, but for the first, at
// most ARGV[3] bytes. It reads the log 64 bans at a time, so that a page
// of long bans does not read far past its end. Floor and page are read
// together, so that no trim can fall between.
var pageScript = redis.NewScript(`
local limit, maxBytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {redis.call('GET', KEYS[2]) or '0', '0', redis.call('GET', KEYS[3]) or ''}
local n, bytes = 0, 0
while true do
  local chunk = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', n, 64)
  for _, m in ipairs(chunk) do
    if n == limit or (n > 0 and bytes + #m > maxBytes) then
      out[2] = '1'
      return out
    end
    bytes = bytes + #m
    n = n + 1
    out[#out + 1] = m
  end
  if #chunk < 64 then return out end
end
`)

// loadPage applies one page of the bans recorded after Bans.Applied and
// reports whether more may follow. If the log was trimmed past Applied
// (it holds no ban at or below its floor), the bans missed are gone: it
// applies an all-ban at the floor instead, which kills every entry they
// killed, and flushes the local tier (a Fleet's Flush). A page of another
// epoch than the table's is not applied: the tier starts renewing.
func (l *purgeLog) loadPage(ctx context.Context) (more bool, err error) {
	from := l.bans.Applied()
	res, err := pageScript.Run(ctx, l.client, []string{l.bansKey(), l.floorKey(), l.epochKey()},
		from, banPage, banPageBytes).StringSlice()
	if err != nil {
		return false, err
	}
	if len(res) < 3 {
		return false, fmt.Errorf("ban page: %d values", len(res))
	}
	if known, ok := l.knownEpoch(); ok && res[2] != known {
		l.markRenew(fmt.Sprintf("loading purges: epoch %q, had %q", res[2], known))
		return false, errRenewing
	}
	floor, err := strconv.ParseUint(res[0], 10, 64)
	if err != nil {
		return false, fmt.Errorf("ban log floor %q: %w", res[0], err)
	}
	now := time.Now()
	bans := make([]tiers.Ban, 0, len(res)-1)
	if floor > from {
		bans = append(bans, tiers.Ban{Seq: floor, Selector: tiers.All, At: now, ID: "floor"})
	}
	for _, m := range res[3:] {
		b, err := tiers.ParseBan(m)
		if err != nil {
			l.log.Warn("ignoring malformed ban in redis", "ban", m, "err", err)
			continue
		}
		bans = append(bans, b)
	}
	l.bans.Apply(now, l.banKeep, bans...)
	if floor > from {
		l.recent.note(bans[1:]...) // not the floor's own all-ban
	} else {
		l.recent.note(bans...)
	}
	if floor > from && l.bans.Applied() >= floor {
		l.floors.Add(1)
		l.log.Warn("purge log trimmed past this instance's bans: every entry older than the floor is treated as purged",
			"had", from, "floor", floor)
		if f := l.flushLocal.Load(); f != nil {
			(*f)()
		}
	}
	return res[1] == "1", nil
}
