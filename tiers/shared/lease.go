package shared

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Fill leases coordinate fills across the fleet, like the leases of
// Facebook's memcache: the first instance to miss a key takes a short
// lease on it (SET NX PX) and fetches from the origin; the others wait for
// the entry to appear in Redis instead of fetching too. The holder renews
// the lease while it fetches, so a slow origin does not let a second fetch
// start, and a holder that dies lets the lease lapse within its TTL, after
// which a waiter fetches itself.

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// ErrAlone is returned by Lease while this instance is the only live one
// in its fleet: there is nobody to coordinate with.
var ErrAlone = errors.New("shared: alone in the fleet, no lease needed")

// leaseScript returns the entry under KEYS[1] if there is one; else it
// takes the lease KEYS[2] (SET NX PX) if nobody holds it. One round trip
// where GET, then SET NX, then GET again would take three, and atomic, so
// no entry stored between them goes unseen. Both keys are in the entry's
// slot (see keys.go); the purge sequence and epoch, which the caller
// needs to judge the entry, are in the fleet's, and are read beside it
// in the same pipeline (after the call started, which is all a purge
// that answered before it needs: see Get).
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {v, 0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {false, 1}
end
return {false, 0}
`)

// Lease looks up key and, if no entry is stored there, tries to take the
// fill lease on it for ttl, in one round trip. If an entry is found it is
// returned (held is false). Otherwise, if the lease is taken, held is
// true and release must be called when the fill is done (the lease is
// renewed every ttl/3 until then); if another instance holds it, held is
// false. While Redis is unavailable Lease returns ErrUnavailable.
func (t *Tier) Lease(ctx context.Context, key string, ttl time.Duration) (e *tiers.Entry, held bool, release func(), err error) {
	if t.peers.Load() == 1 {
		// Alone in the fleet: the in-process flight already collapses
		// every fill; a lease would only cost a round trip.
		return nil, false, nil, ErrAlone
	}
	if t.refuseKey(ctx, purposeWrite, t.redisKey(key)) {
		return nil, false, nil, ErrUnavailable
	}
	token := randomID()
	lk := t.leaseKey(key)
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var have uint64
	if t.bans != nil {
		have = t.bans.Applied()
	}
	res, meta, err := t.runLease(cctx, t.redisKey(key), lk, token, ttl)
	if err != nil {
		return nil, false, nil, t.fail(ctx, purposeWrite, "lease", err)
	}
	t.ok(purposeWrite)
	if len(res) != 2 {
		return nil, false, nil, fmt.Errorf("shared: lease: unexpected reply %v", res)
	}
	if t.bans != nil {
		// As for Get: Redis answered, so this is no sign it is down.
		if err := t.purgeLog.catchUp(cctx, time.Time{}, have, meta[0], meta[1]); err != nil {
			t.errs.Add(1)
			return nil, false, nil, fmt.Errorf("shared: lease bans: %w", err)
		}
	}
	if v, ok := res[0].(string); ok {
		e, err := tiers.DecodeString(v)
		if err != nil {
			t.undecodable.Add(1)
			return nil, false, nil, nil
		}
		return e, false, nil, nil
	}
	if n, _ := res[1].(int64); n != 1 {
		return nil, false, nil, nil
	}
	return nil, true, t.holdLease(ctx, lk, token, ttl), nil
}

// runLease runs leaseScript on the entry key rk and lease key lk and, if
// the tier keeps bans, reads the purge sequence and epoch in the same
// pipeline.
func (t *Tier) runLease(ctx context.Context, rk, lk, token string, ttl time.Duration) (res, meta []any, err error) {
	keys := []string{rk, lk}
	if t.bans == nil {
		res, err = leaseScript.Run(ctx, t.client, keys, token, ttl.Milliseconds()).Slice()
		return res, nil, err
	}
	p := t.client.Pipeline()
	m := p.MGet(ctx, t.seq, t.epochK)
	// EVALSHA, and EVAL if Redis does not have the script yet: in a
	// pipeline, Script.Run cannot see the NOSCRIPT before Exec.
	l := leaseScript.EvalSha(ctx, p, keys, token, ttl.Milliseconds())
	p.Exec(ctx)
	if err := l.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		l = leaseScript.Eval(ctx, t.client, keys, token, ttl.Milliseconds())
	}
	if err := m.Err(); err != nil {
		return nil, nil, err
	}
	if res, err = l.Slice(); err != nil {
		return nil, nil, err
	}
	if meta = m.Val(); len(meta) != 2 {
		return nil, nil, errBadReply
	}
	return res, meta, nil
}

// holdLease renews the lease lk held with token every ttl/3 until the
// returned release is called, which ends it.
func (t *Tier) holdLease(ctx context.Context, lk, token string, ttl time.Duration) (release func()) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(ttl / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				rctx, cancel := context.WithTimeout(context.Background(), t.timeout)
				renewScript.Run(rctx, t.client, []string{lk}, token, ttl.Milliseconds())
				cancel()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
		defer cancel()
		releaseScript.Run(rctx, t.client, []string{lk}, token)
	}
}

// RevalidationLease takes, if nobody holds it, the lease on the
// background revalidation of the stale entry under key, for ttl, renewed
// until release is called: one instance of the fleet refreshes an entry
// served stale-while-revalidate, the others keep serving it stale. It
// returns ErrAlone when this instance is alone in its fleet and
// ErrUnavailable while Redis is.
func (t *Tier) RevalidationLease(ctx context.Context, key string, ttl time.Duration) (held bool, release func(), err error) {
	if t.peers.Load() == 1 {
		return false, nil, ErrAlone
	}
	if t.down.Load() || t.blocked(purposeWrite) {
		t.errs.Add(1)
		return false, nil, ErrUnavailable
	}
	token := randomID()
	lk := t.revalidationKey(key)
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	ok, err := t.client.SetNX(cctx, lk, token, ttl).Result()
	if err != nil {
		return false, nil, t.fail(ctx, purposeWrite, "revalidation lease", err)
	}
	t.ok(purposeWrite)
	if !ok {
		return false, nil, nil
	}
	return true, t.holdLease(ctx, lk, token, ttl), nil
}

// LeaseHeld reports whether some instance holds the fill lease on key.
func (t *Tier) LeaseHeld(ctx context.Context, key string) (bool, error) {
	if t.refuse(purposeWrite) {
		return false, ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	n, err := t.client.Exists(cctx, t.leaseKey(key)).Result()
	if err != nil {
		return false, t.fail(ctx, purposeWrite, "lease check", err)
	}
	return n > 0, nil
}

// Holds reports whether Redis holds anything under key: an entry (or the
// Vary marker of its variants) or a fill lease, which an instance holds
// while it fetches the key from the origin. One EXISTS over both keys,
// which are in one slot. The proxy asks it before an invalidation after
// an unsafe request: a URL with neither needs no ban. While Redis is
// unavailable Holds returns ErrUnavailable.
func (t *Tier) Holds(ctx context.Context, key string) (bool, error) {
	if t.refuse(purposeRead) {
		return false, ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	n, err := t.client.Exists(cctx, t.redisKey(key), t.leaseKey(key)).Result()
	if err != nil {
		return false, t.fail(ctx, purposeRead, "holds", err)
	}
	t.ok(purposeRead)
	return n > 0, nil
}

// setPeers records the number of live instances of the fleet, this one
// included, as the last heartbeat counted them (0: unknown): with one,
// the fill lease is skipped.
func (t *Tier) setPeers(n int64) { t.peers.Store(n) }
