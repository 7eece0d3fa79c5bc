package shared

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Origin backoff, fleet-wide: while a key's origin fetches keep failing,
// at most one instance at a time, once per interval, sends one (see
// proxy/backoff.go). Two keys in the entry's slot carry it: the failure
// count (kept for four times the longest interval after the last
// failure) and the hold, which bars every instance from the origin: for
// the interval after a failure, or, while one instance probes the origin
// after the interval ended, until that instance reports.

// attemptScript: KEYS[1] the hold, KEYS[2] the failure count; ARGV[1] how
// long a probe holds the key (ms). It returns {ok, failing}.
var attemptScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 1} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {1, 0} end
redis.call('SET', KEYS[1], 'probe', 'PX', ARGV[1])
return {1, 1}
`)

// failScript: KEYS as attemptScript; ARGV[1] the first interval (ms),
// ARGV[2] the longest. One failure per interval counts: instances that
// fail together (their fetches started before any failure was recorded)
// double the interval once, not once each. It returns the interval in
// force (ms).
var failScript = redis.NewScript(`
local h = redis.call('GET', KEYS[1])
if h and h ~= 'probe' then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then return left end
end
local n = redis.call('INCR', KEYS[2])
local base, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[2], 4 * cap)
local d = base
for i = 2, n do
  if d >= cap then break end
  d = d * 2
end
if d > cap then d = cap end
redis.call('SET', KEYS[1], n, 'PX', d)
return d
`)

// backoffKeys returns the hold and failure-count keys of the caller's key,
// in the entry's slot.
func (t *Tier) backoffKeys(key string) []string {
	k := strings.TrimPrefix(t.redisKey(key), t.prefix+":")
	return []string{t.prefix + ":backoff:" + k, t.prefix + ":failures:" + k}
}

// OriginAttempt reports whether a fetch of key may go to the origin now: no
// instance recorded a failure of it, or the backoff interval ended and
// this caller is the first to ask, which holds the key for hold (until it
// reports with OriginFailed or OriginRecovered). failing reports whether
// failures are recorded. It returns ErrAlone when this instance is alone
// in its fleet and ErrUnavailable while Redis is.
func (t *Tier) OriginAttempt(ctx context.Context, key string, hold time.Duration) (ok, failing bool, err error) {
	if t.peers.Load() == 1 {
		return false, false, ErrAlone
	}
	if t.refuse(purposeWrite) {
		return false, false, ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	res, err := attemptScript.Run(cctx, t.client, t.backoffKeys(key), hold.Milliseconds()).Int64Slice()
	if err != nil {
		return false, false, t.fail(ctx, purposeWrite, "origin attempt", err)
	}
	t.ok(purposeWrite)
	if len(res) != 2 {
		return false, false, errBadReply
	}
	return res[0] == 1, res[1] == 1, nil
}

// OriginFailed records a failed origin fetch of key and returns the
// backoff interval in force for the fleet: base doubled for each failure
// in a row, at most max.
func (t *Tier) OriginFailed(ctx context.Context, key string, base, max time.Duration) (time.Duration, error) {
	if t.peers.Load() == 1 {
		return 0, ErrAlone
	}
	if t.refuse(purposeWrite) {
		return 0, ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	ms, err := failScript.Run(cctx, t.client, t.backoffKeys(key), base.Milliseconds(), max.Milliseconds()).Int64()
	if err != nil {
		return 0, t.fail(ctx, purposeWrite, "origin failed", err)
	}
	t.ok(purposeWrite)
	return time.Duration(ms) * time.Millisecond, nil
}

// OriginRecovered forgets the failures of key: the origin answered.
func (t *Tier) OriginRecovered(ctx context.Context, key string) error {
	if t.refuse(purposeWrite) {
		return ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if err := t.client.Del(cctx, t.backoffKeys(key)...).Err(); err != nil {
		return t.fail(ctx, purposeWrite, "origin recovered", err)
	}
	t.ok(purposeWrite)
	return nil
}
