package shared

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
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

func (t *Tier) leaseKey(key string) string { return t.prefix + ":lease:" + key }

// Lease tries to take the fill lease on key for ttl. If it is taken, held
// is true and release must be called when the fill is done (the lease is
// renewed every ttl/3 until then). If another instance holds it, held is
// false. While Redis is unavailable Lease returns ErrUnavailable.
func (t *Tier) Lease(ctx context.Context, key string, ttl time.Duration) (held bool, release func(), err error) {
	if t.down.Load() {
		t.errs.Add(1)
		return false, nil, ErrUnavailable
	}
	token := randomID()
	lk := t.leaseKey(key)
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	ok, err := t.client.SetNX(cctx, lk, token, ttl).Result()
	cancel()
	if err != nil {
		return false, nil, t.fail(ctx, "lease", err)
	}
	if !ok {
		return false, nil, nil
	}
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
	release = func() {
		close(stop)
		<-done
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.timeout)
		defer cancel()
		releaseScript.Run(rctx, t.client, []string{lk}, token)
	}
	return true, release, nil
}

// LeaseHeld reports whether some instance holds the fill lease on key.
func (t *Tier) LeaseHeld(ctx context.Context, key string) (bool, error) {
	if t.down.Load() {
		t.errs.Add(1)
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
