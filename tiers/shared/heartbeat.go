package shared

// The heartbeat, and what it decides: whether the local tier may be used.
//
// An instance announces itself every Heartbeat in the fleet's members set,
// scored by Redis's clock. It may use its local tier for L1TTL after the
// sending of its last heartbeat that Redis answered while it was in sync
// (subscribed, every purge applied up to the sequence the previous
// heartbeat read, Redis's current epoch): this is its lease. While it
// stays in sync, each heartbeat renews the lease; while it is cut off
// from Redis (a Redis outage, or a partition), it keeps serving from and
// filling its local tier until the lease ends, then bypasses it until it
// is back and resynchronised. An instance that can reach Redis but is not
// in sync (its subscription dropped, a gap, a new purge log) stops at once.
//
// A purge recorded at time p can therefore be served, from a local tier
// that has not applied it, by an instance last heard at h only until
//
//	(h < p-d ? h+op : p+d) + L1TTL + FillTimeout + Heartbeat
//
// where op is the heartbeat's timeout and d = Heartbeat + op: an instance
// renews its lease after p without having applied the purge at most once
// (the heartbeat after that requires the sequence the previous one read),
// and only if its previous heartbeat was answered, within d before p. The
// FillTimeout is for fills that started before and answer the requests
// that join them; the last Heartbeat, for the watchdog's granularity and
// clock rates. Purge waits for, or reports with that time, every instance
// heard within the window (see purge.go).

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// heartbeatScript announces an instance, with Redis's clock, forgets
// instances silent for ARGV[5] ms, and returns how many were heard within
// ARGV[4] ms, the purge epoch (started if there is none, published on
// ARGV[8]), the purge sequence and Redis's clock. It publishes ARGV[10]
// on ARGV[9] (the instance's own reply channel), for the instance to hear
// on its subscription (see checkEcho). ARGV[11] is the epoch the instance
// knew: one other than Redis's marks the epoch as one in which Redis lost
// its history (KEYS[7], see lostKey).
var heartbeatScript = redis.NewScript(epochLua + `
local e = ensure_epoch(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[8], ARGV[6], '', 0, ms, ARGV[7])
note_lost(KEYS[7], e, ARGV[11] or '')
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - tonumber(ARGV[5]))
redis.call('PUBLISH', ARGV[9], ARGV[10])
return {redis.call('ZCOUNT', KEYS[1], ms - tonumber(ARGV[4]), '+inf'), e, redis.call('GET', KEYS[4]) or '0', ms}
`)

// clockOffset is Redis's clock minus this instance's, as measured by a
// heartbeat, give or take uncertainty (half its round trip).
type clockOffset struct {
	offset, uncertainty time.Duration
}

// beat runs the heartbeat and the subscription's ping until done.
func (f *Fleet) beat(ctx context.Context, done <-chan struct{}) {
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
			f.gate.refresh() // the lease ends, the subscription goes quiet
		case <-f.kick:
			f.heartbeatOnce(ctx)
		case <-tick.C:
			f.heartbeatOnce(ctx)
			pctx, cancel := context.WithTimeout(ctx, f.opTimeout())
			f.ps.Load().Ping(pctx) // the pong arrives through receive
			cancel()
		}
	}
}

func (f *Fleet) heartbeatOnce(ctx context.Context) {
	var info []byte
	if f.info != nil {
		info, _ = json.Marshal(f.info())
	}
	pl := f.plog()
	send, sendWall := f.mono(), time.Now()
	have := f.bans.Applied()
	// Whether this heartbeat, if answered, earns the L1 lease.
	earn := f.gate.state().canEarn(send, have, f.hb)
	cctx, cancel := context.WithTimeout(ctx, f.opTimeout())
	defer cancel()
	live := strconv.FormatInt((5 * f.hb).Milliseconds(), 10)
	keep := strconv.FormatInt(max(time.Minute, f.window()+5*time.Second).Milliseconds(), 10)
	keys := append(append([]string{f.membersKey(), f.memberKey(f.id)}, pl.epochKeys()...), pl.lostKey())
	prior, _ := pl.knownEpoch()
	res, err := heartbeatScript.Run(cctx, f.client, keys,
		f.id, string(info), live, live, keep, randomID(), tiers.BanOverhead, f.purgeChannel(),
		f.replyChannel(), f.echoPayload(), prior).Slice()
	if err == nil && len(res) != 4 {
		err = errBadReply
	}
	if err != nil {
		if replyKind(err) != "" {
			f.t.fail(ctx, purposeFleet, "heartbeat", err)
		}
		cut := ctx.Err() == nil && unreachable(err)
		if before, after := f.on(l1Event{kind: evBeatFailed, cutOff: cut}); cut && !before.cutOff && after.leaseFrom > 0 {
			f.log.Warn("cut off from redis: L1 used until the outage lease ends, then bypassed until resynchronised",
				"lease_ends", sendWall.Add(time.Duration(after.leaseFrom+int64(f.l1TTL)-send)).Format(time.RFC3339), "err", err)
		}
		return
	}
	recv := time.Now()
	f.t.okFor(purposeFleet)
	n, _ := res[0].(int64)
	epoch, _ := res[1].(string)
	seqStr, _ := res[2].(string)
	redisMs, _ := res[3].(int64)
	seq, _ := strconv.ParseUint(seqStr, 10, 64)
	mid := sendWall.Add(recv.Sub(sendWall) / 2)
	f.clock.Store(&clockOffset{offset: time.UnixMilli(redisMs).Sub(mid), uncertainty: recv.Sub(sendWall)/2 + time.Millisecond})
	if !pl.observe("heartbeat", epoch, seq, have) {
		earn = false
	}
	f.on(l1Event{kind: evBeat, at: send, seq: seq, earn: earn})
	f.checkEcho()
	// Instances started together see only themselves on their first
	// heartbeats: claim to be alone only once every instance started
	// with this one has had time to announce itself.
	if n == 1 && time.Since(f.started) < 5*f.hb {
		n = 0
	}
	f.t.setPeers(n)
	if pl.renewing() && !f.adopting.Load() {
		select {
		case f.adopt <- struct{}{}: // an adoption that ended without adopting: again
		default:
		}
	}
}

// echoPayload is what the heartbeat publishes on this instance's reply
// channel for it to hear.
func (f *Fleet) echoPayload() string { return "beat|" + f.id }

// checkEcho makes the subscription again if it has heard none of the
// heartbeats Redis answered for echoAfter heartbeats: it is alive (its
// pings are answered) but deaf, on a server the fleet no longer writes
// to. After a Sentinel failover the data connections move to the new
// master at once, but the subscription stays on the old one until it is
// converted to a replica (up to 10s later, when Sentinel next looks), or
// for good if it never is; a proxy in front of several servers can do the
// same. Redis's own pings cannot tell.
func (f *Fleet) checkEcho() {
	if !f.gate.state().synced || f.mono()-f.echo.Load() < int64(echoAfter*f.hb) {
		return
	}
	f.log.Warn("purge subscription hears none of the fleet's messages (left on a former master?): L1 bypassed, subscribing again")
	// The lease is earned again after the resync that follows.
	f.on(l1Event{kind: evFenced})
	f.ps.Load().Close() // receive subscribes again
}

// echoAfter is how many heartbeats a subscription may go without hearing
// its own before it is made again.
const echoAfter = 3

// window is how long after it was last heard an instance may still serve
// what a purge names (see the comment at the top): a purge waits for, or
// reports, every instance heard within it.
func (f *Fleet) window() time.Duration {
	return f.opTimeout() + f.l1TTL + f.fillTimeout + f.hb
}

// servesUntil returns the time by which an instance last heard at heard
// serves nothing older than a purge recorded at p (see the comment at the
// top), both by Redis's clock.
func (f *Fleet) servesUntil(heard, p time.Time) time.Time {
	d := f.hb + f.opTimeout()
	base := p.Add(d)
	if heard.Before(p.Add(-d)) {
		base = heard.Add(f.opTimeout())
	}
	return base.Add(f.l1TTL + f.fillTimeout + f.hb)
}

// unknownUntil returns, for a purge recorded at p in an epoch of the
// purge log begun at epochStart (both by Redis's clock), the time until
// which an instance the purge cannot know of may still serve what it
// names, or the zero time if there is none. A Redis restarted empty or
// flushed lost its members set with the log: an instance last heard
// before the epoch began, by the Redis before it, and cut off since (so
// not heard again), may keep using its L1 until the end of the window
// after it was last heard (servesUntil), so at most until epochStart plus
// the window. Once the epoch is older than the window, the members set
// holds every instance a purge must wait for. An epoch in which no
// instance that knew another has reached Redis (a new fleet on an empty
// Redis: see lostKey) comes with a zero epochStart: no instance can be
// unknown.
func (f *Fleet) unknownUntil(epochStart, p time.Time) time.Time {
	if epochStart.IsZero() {
		return time.Time{}
	}
	if u := epochStart.Add(f.window()); u.After(p) {
		return u
	}
	return time.Time{}
}

// redisDeadline returns, in Redis's clock (unix ms), a moment before a
// call sent at sent and abandoned after budget is given up on, or 0 if
// the clocks have not been compared yet.
func (f *Fleet) redisDeadline(sent time.Time, budget time.Duration) int64 {
	c := f.clock.Load()
	if c == nil {
		return 0
	}
	return sent.Add(budget + c.offset - c.uncertainty - 10*time.Millisecond).UnixMilli()
}
