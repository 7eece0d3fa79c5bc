package proxy

import (
	"context"
	"sync"
	"time"
)

// Origin backoff: while a key's origin fetch keeps failing (an error, a
// refused connection, a 5xx), at most one fetch of it per interval reaches
// the origin, here and, through the shared tier, in the whole fleet; every
// other request with a stale copy it may serve on error (stale-if-error,
// or within stale-while-revalidate) is served that copy at once
// (Cache-Status detail origin-backoff). The interval starts at
// Options.OriginBackoff and doubles with each failure in a row, up to
// Options.OriginBackoffMax; a fetch that succeeds ends it.
//
// A request without such a copy is not held back: it goes to the origin as
// before (collapsed with the concurrent misses of its key), so that the
// origin's own answer, error or not, reaches it. The backoff protects the
// origin from the requests a cache can answer, never fails one it could
// not.

// originGate is implemented by a shared tier that records, for the whole
// fleet, which keys' origin fetches are failing (shared.Tier).
type originGate interface {
	// OriginAttempt reports whether a fetch of key may go to the origin
	// now: no failure of it is recorded, or its backoff interval has
	// ended and this caller is the first to ask (the others are then
	// held back for at most hold, or until it reports). failing reports
	// whether a failure was recorded: the caller must then report the
	// fetch's outcome.
	OriginAttempt(ctx context.Context, key string, hold time.Duration) (ok, failing bool, err error)
	// OriginFailed records a failed fetch of key and returns the backoff
	// interval now in force: base doubled for each failure in a row, at
	// most max.
	OriginFailed(ctx context.Context, key string, base, max time.Duration) (time.Duration, error)
	// OriginRecovered forgets the failures of key.
	OriginRecovered(ctx context.Context, key string) error
}

// maxBackoffKeys bounds the keys this instance remembers as failing.
const maxBackoffKeys = 10000

// backoffs is this instance's record of the keys whose origin fetches are
// failing. The zero value is ready to use. Safe for concurrent use.
type backoffs struct {
	mu sync.Mutex
	m  map[string]backoff // lazily initialized, at most maxBackoffKeys
}

// backoff is one failing key: how many fetches failed in a row, and until
// when no other may be sent.
type backoff struct {
	failures int
	until    time.Time
}

// interval returns the backoff after failures failures in a row: base
// doubled for each after the first, at most max.
func interval(failures int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// begin reports whether a fetch of key may go to the origin at now as far
// as this instance knows: if key is failing and its interval has ended,
// the caller is let through and the key held for hold, so that the others
// wait for its outcome. failing reports whether key is failing here.
func (b *backoffs) begin(key string, now time.Time, hold time.Duration) (ok, failing bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, found := b.m[key]
	switch {
	case !found:
		return true, false
	case now.Before(s.until):
		return false, true
	}
	s.until = now.Add(hold)
	b.m[key] = s
	return true, true
}

// failed records a failed fetch of key at now and returns the interval now
// in force: the fleet's (fleet > 0) or this instance's own.
func (b *backoffs) failed(key string, now time.Time, fleet, base, max time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]backoff)
	}
	s := b.m[key]
	s.failures++
	d := fleet
	if d <= 0 {
		d = interval(s.failures, base, max)
	}
	s.until = now.Add(d)
	if _, found := b.m[key]; !found && len(b.m) >= maxBackoffKeys {
		b.evict(now, max)
	}
	b.m[key] = s
	return d
}

// heldBack records that the fleet holds key back from the origin: this
// instance asks again no sooner than until.
func (b *backoffs) heldBack(key string, now, until time.Time, max time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]backoff)
	}
	s, found := b.m[key]
	if !found && len(b.m) >= maxBackoffKeys {
		b.evict(now, max)
	}
	s.until = until
	b.m[key] = s
}

// evict makes room for one key: the keys whose interval ended more than
// max ago (nobody asked for them since), else any one.
func (b *backoffs) evict(now time.Time, max time.Duration) {
	for k, s := range b.m {
		if now.Sub(s.until) > max {
			delete(b.m, k)
		}
	}
	if len(b.m) < maxBackoffKeys {
		return
	}
	for k := range b.m {
		delete(b.m, k)
		return
	}
}

// succeeded forgets key's failures, and reports whether there were any.
func (b *backoffs) succeeded(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, found := b.m[key]
	delete(b.m, key)
	return found
}

// failing returns how many keys are failing here at now.
func (b *backoffs) failing(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.m {
		if now.Before(s.until) {
			n++
		}
	}
	return n
}

// originAllowed reports whether the fill of the exchange's key may go to
// the origin at now (see backoffs.begin and originGate), and whether it
// must report its outcome to the fleet.
func (x *exchange) originAllowed(ctx context.Context, now time.Time) (ok, report bool) {
	h := x.h
	ok, failing := h.backoffs.begin(x.key, now, h.o.FillTimeout)
	if !ok {
		return false, false
	}
	g := h.chain.originGate()
	if g == nil {
		return true, false
	}
	ok, fleetFailing, err := g.OriginAttempt(ctx, x.key, h.o.FillTimeout)
	if err != nil {
		// No coordination (alone, or Redis down): this instance's
		// record decides.
		return true, false
	}
	if !ok {
		// Another instance's failure, or its probe: ask again in a
		// while, not on every request.
		h.backoffs.heldBack(x.key, now, now.Add(h.o.OriginBackoff), h.o.OriginBackoffMax)
	}
	return ok, failing || fleetFailing
}

// originOutcome records the outcome of a fetch of the exchange's key that
// reached the origin: failed (an error or a 5xx) or not.
func (x *exchange) originOutcome(ctx context.Context, failed, report bool) {
	h := x.h
	g := h.chain.originGate()
	if !failed {
		if h.backoffs.succeeded(x.key) || report {
			if g != nil {
				g.OriginRecovered(context.WithoutCancel(ctx), x.key)
			}
		}
		return
	}
	var fleet time.Duration
	if g != nil {
		fleet, _ = g.OriginFailed(context.WithoutCancel(ctx), x.key, h.o.OriginBackoff, h.o.OriginBackoffMax)
	}
	h.backoffs.failed(x.key, h.o.Now(), fleet, h.o.OriginBackoff, h.o.OriginBackoffMax)
}
