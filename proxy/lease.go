package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// The fleet's fill lease. Before going to the origin, a fill asks the
// shared tier for the fill lease on its key: the first instance to miss
// takes it and fetches, the others wait for the entry it stores, at most
// the lock timeout. Taking the lease re-reads the entry in the same round
// trip, so none stored meanwhile goes unseen.

// leaser is implemented by a shared tier that can coordinate fills across
// instances: one instance fetches a key from the origin while the others
// wait for the entry it stores.
type leaser interface {
	// Lease returns the entry stored under key if there is one; else it
	// takes the fill lease on key for ttl if nobody holds it (held), and
	// release ends it.
	Lease(ctx context.Context, key string, ttl time.Duration) (e *tiers.Entry, held bool, release func(), err error)
	// LeaseHeld reports whether anybody holds the fill lease on key.
	LeaseHeld(ctx context.Context, key string) (bool, error)
}

// revalidationLeaser is implemented by a shared tier that can give one
// instance of the fleet the background revalidation of a stale entry.
type revalidationLeaser interface {
	// RevalidationLease takes the revalidation lease on key for ttl if
	// nobody holds it (held), renewed until release is called. An error
	// means no coordination is possible (alone in the fleet, or Redis
	// down): the caller revalidates.
	RevalidationLease(ctx context.Context, key string, ttl time.Duration) (held bool, release func(), err error)
}

// leaseTTL is how long a fill lease lasts without renewal: how long the
// fleet waits for an instance that died while fetching.
const leaseTTL = 3 * time.Second

// errNoLease stands for a lease not taken on purpose.
var errNoLease = errors.New("no fill lease")

// fromFleet returns what the fleet has for a fill about to go to the
// origin, as use asks: an entry stored in L2 (since the handler read it,
// or by the instance whose fill it waited for), or the stale copy when
// another instance's fill outlived the lock timeout; else nil, with the
// release of the fill lease if this fill took it.
func (x *exchange) fromFleet(ctx context.Context, use sharedUse) (res *fillResult, release func()) {
	if use == sharedFull {
		// A background refresh: another refresh of this key may have
		// stored a fresh copy in L1 since this one was decided on (the
		// flight re-checks what the request checked before it).
		if l := x.h.chain.localTier(); l != nil {
			if e, _, _ := x.lookup(ctx, l); e != nil {
				return &fillResult{entry: e, key: x.key, shareable: true, as: hitL1}, nil
			}
		}
	}
	shared := x.h.o.Shared
	if shared == nil {
		return nil, nil
	}
	l, isLeaser := shared.(leaser)
	if use == sharedNone {
		// The request asked for the origin: nothing stored answers it,
		// and it waits for nobody. It takes the lease if it is free all
		// the same, so that an invalidation of its URL on another
		// instance sees it running (invalidationFor), and others wait
		// for what it stores.
		if isLeaser {
			if _, held, release, err := l.Lease(ctx, x.key, leaseTTL); err == nil && held {
				return nil, release
			}
		}
		return nil, nil
	}
	if use == sharedFull {
		e, stale, _ := x.lookup(ctx, shared)
		if e != nil {
			return x.fromL2(ctx, e), nil
		}
		if stale != nil && (x.stale == nil || stale.StoredAt.After(x.stale.StoredAt)) {
			x.stale = stale
		}
	}
	if !isLeaser {
		return nil, nil
	}
	if x.stale != nil {
		// A stale copy is revalidated, cheaply, by each instance.
		return x.awaitWithStale(ctx, l), nil
	}
	e, held, release, err := x.lease(ctx, l)
	switch {
	case e != nil:
		return x.fromL2(ctx, e), nil // stored since the handler read L2
	case err != nil:
		return nil, nil // no coordination: fetch ourselves
	case held:
		return nil, release
	}
	if e, _ := x.awaitFill(ctx, l); e != nil {
		x.h.m.fleetCollapsed.Add(1)
		return x.fromL2(ctx, e), nil
	}
	return nil, nil
}

// awaitWithStale is the fleet's answer to a fill that holds a stale copy:
// nil (revalidate it ourselves) unless another instance's fill of the key
// is running. Then, as for a fill running on this instance (joined), it
// is the entry that fill stores, or once the lock timeout has passed
// (that origin may hang) the stale copy where it may be served so; else
// nil.
func (x *exchange) awaitWithStale(ctx context.Context, l leaser) *fillResult {
	if held, err := l.LeaseHeld(ctx, x.key); err != nil || !held {
		return nil
	}
	e, timedOut := x.awaitFill(ctx, l)
	switch {
	case e != nil:
		x.h.m.fleetCollapsed.Add(1)
		return x.fromL2(ctx, e)
	case timedOut:
		return x.staleAfterLockTimeout()
	}
	return nil
}

// staleAfterLockTimeout returns the stale copy to answer with when a fill
// of the key, here or on another instance, outlived the lock timeout, if
// it may be served so: not purged, and stale-if-error or
// stale-while-revalidate allows it. Else nil.
func (x *exchange) staleAfterLockTimeout() *fillResult {
	stale, now := x.stale, x.h.o.Now()
	if x.servesStale(stale, now) {
		return &fillResult{entry: stale, key: x.key, shareable: true, as: staleOnError}
	}
	return nil
}

// lease takes the fill lease, or returns the entry stored meanwhile if it
// may answer the request.
func (x *exchange) lease(ctx context.Context, l leaser) (e *tiers.Entry, held bool, release func(), err error) {
	e, held, release, err = l.Lease(ctx, x.key, leaseTTL)
	switch {
	case e != nil && e.Kind == tiers.KindVary:
		// A Vary marker: the variant decides. Read it the usual way; no
		// lease for varying responses.
		e, _, _ = x.lookup(ctx, x.h.o.Shared)
		return e, false, nil, errNoLease
	case e != nil && x.verdict(e) != usable:
		// Stored but not for this request: the script took no lease;
		// fetch without one.
		return nil, false, nil, errNoLease
	}
	return e, held, release, err
}

// fromL2 is the result of a fill answered by an entry found in L2, which
// is promoted into L1.
func (x *exchange) fromL2(ctx context.Context, e *tiers.Entry) *fillResult {
	x.h.chain.promote(ctx, x.key, x.r, e)
	return &fillResult{entry: e, key: x.key, shareable: true, as: hitL2}
}

// awaitFill waits for the instance holding the fill lease to store the
// entry, polling the shared tier, for at most the lock timeout (a holder
// whose origin hangs renews its lease for as long as its fill lasts). It
// returns nil when the lease ends without a usable entry (the response was
// not storable, or its holder died), or when ctx ends, or with timedOut
// after the lock timeout: the caller then fetches itself, or serves its
// stale copy.
func (x *exchange) awaitFill(ctx context.Context, l leaser) (e *tiers.Entry, timedOut bool) {
	wait, failures := 2*time.Millisecond, 0
	deadline := time.NewTimer(x.h.flights.lockTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case <-deadline.C:
			return nil, true
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
		x.now = x.h.o.Now()
		if e, _, _ := x.lookup(ctx, x.h.o.Shared); e != nil {
			return e, false
		}
		held, err := l.LeaseHeld(ctx, x.key)
		if err != nil {
			// A slow answer is no reason to stampede the origin; a
			// Redis that keeps failing is.
			if failures++; failures >= 3 {
				return nil, false
			}
			continue
		}
		failures = 0
		if !held {
			// Released: the entry is there now, or will not be.
			e, _, _ := x.lookup(ctx, x.h.o.Shared)
			return e, false
		}
	}
}
