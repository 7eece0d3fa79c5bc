package shared

import (
	"context"
	"errors"
	"fmt"
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

func (t *Tier) leaseKey(key string) string { return t.prefix + ":lease:" + key }

// leaseScript returns the entry under KEYS[1] if there is one; else it
// takes the lease KEYS[2] (SET NX PX) if nobody holds it. Either way it
// returns the purge sequence KEYS[3] and epoch KEYS[4], so the caller can
// judge the entry.
// One round trip where GET, then SET NX, then GET again would take three,
// and atomic, so no entry stored between them goes unseen.
var leaseScript = redis.NewScript(`
local seq = redis.call('GET', KEYS[3])
local v = redis.call('GET', KEYS[1])
local epoch = redis.call('GET', KEYS[4])
if v then return {v, seq, 0, epoch} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {false, seq, 1, epoch}
end
return {false, seq, 0, epoch}
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
	if t.refuse() {
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
	res, err := leaseScript.Run(cctx, t.client, []string{key, lk, t.seq, t.epochK}, token, ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, false, nil, t.fail(ctx, "lease", err)
	}
	t.ok()
	if len(res) != 4 {
		return nil, false, nil, fmt.Errorf("shared: lease: unexpected reply %v", res)
	}
	if t.bans != nil {
		// As for Get: Redis answered, so this is no sign it is down.
		if err := t.catchUp(cctx, have, res[1], res[3]); err != nil {
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
	if n, _ := res[2].(int64); n != 1 {
		return nil, false, nil, nil
	}
	return nil, true, t.holdLease(ctx, lk, token, ttl), nil
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
	if t.down.Load() {
		t.errs.Add(1)
		return false, nil, ErrUnavailable
	}
	token := randomID()
	lk := t.prefix + ":revalidate:" + key
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	ok, err := t.client.SetNX(cctx, lk, token, ttl).Result()
	if err != nil {
		return false, nil, t.fail(ctx, "revalidation lease", err)
	}
	t.ok()
	if !ok {
		return false, nil, nil
	}
	return true, t.holdLease(ctx, lk, token, ttl), nil
}

// LeaseHeld reports whether some instance holds the fill lease on key.
func (t *Tier) LeaseHeld(ctx context.Context, key string) (bool, error) {
	if t.refuse() {
		return false, ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	n, err := t.client.Exists(cctx, t.leaseKey(key)).Result()
	if err != nil {
		return false, t.fail(ctx, "lease check", err)
	}
	return n > 0, nil
}
