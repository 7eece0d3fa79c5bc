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

// leaseTTL is how long a fill lease lasts without renewal: how long the
// fleet waits for an instance that died while fetching.
const leaseTTL = 3 * time.Second

// errNoLease stands for a lease not taken on purpose.
var errNoLease = errors.New("no fill lease")

// claim is a fill's claim on the fleet before it goes to the origin, as
// use asks: what the tiers hold for it now (an entry stored since the
// handler read them, here or by the instance whose fill it waited for), or
// the stale copy when another instance's fill outlived the lock timeout;
// else nil, with the fill lease's release if this fill took it. It also
// returns the stale copy the fill is to revalidate: stale, or a newer
// one found in L2.
func (x *exchange) claim(ctx context.Context, use sharedUse, stale *tiers.Entry) (res *fillResult, newer *tiers.Entry, release func()) {
	if use == sharedFull {
		// A background refresh: another fill of this key may have
		// stored a fresh copy since this one was decided on (the flight
		// re-checks what the request checked before it).
		f := x.lookup(ctx, false)
		if f.entry != nil {
			return &fillResult{entry: f.entry, key: x.key, shareable: true, as: f.as}, stale, nil
		}
		if f.stale != nil && (stale == nil || f.stale.StoredAt > stale.StoredAt) {
			stale = f.stale
		}
	}
	l := x.h.chain.leaser()
	switch {
	case l == nil:
		return nil, stale, nil
	case use == sharedNone:
		// The request asked for the origin: nothing stored answers it,
		// and it waits for nobody. It takes the lease if it is free all
		// the same, so that an invalidation of its URL on another
		// instance sees it running (invalidationFor), and others wait
		// for what it stores.
		if _, held, release, err := l.Lease(ctx, x.key, leaseTTL); err == nil && held {
			return nil, stale, release
		}
		return nil, stale, nil
	case stale != nil:
		// A stale copy is revalidated, cheaply, by each instance.
		return x.awaitWithStale(ctx, l, stale), stale, nil
	}
	e, held, release, err := x.lease(ctx, l)
	switch {
	case e != nil:
		return x.fromL2(ctx, e), nil, nil // stored since the handler read L2
	case err != nil:
		return nil, nil, nil // no coordination: fetch ourselves
	case held:
		return nil, nil, release
	}
	if e, _ := x.awaitFill(ctx, l); e != nil {
		x.h.m.fleetCollapsed.Add(1)
		return x.fromL2(ctx, e), nil, nil
	}
	return nil, nil, nil
}

// awaitWithStale is the fleet's answer to a fill that holds a stale copy:
// nil (revalidate it ourselves) unless another instance's fill of the key
// is running. Then, as for a fill running on this instance (joined), it
// is the entry that fill stores, or once the lock timeout has passed
// (that origin may hang) the stale copy where it may be served so; else
// nil.
func (x *exchange) awaitWithStale(ctx context.Context, l leaser, stale *tiers.Entry) *fillResult {
	if held, err := l.LeaseHeld(ctx, x.key); err != nil || !held {
		return nil
	}
	e, timedOut := x.awaitFill(ctx, l)
	switch {
	case e != nil:
		x.h.m.fleetCollapsed.Add(1)
		return x.fromL2(ctx, e)
	case timedOut:
		return x.staleAfterLockTimeout(stale)
	}
	return nil
}

// staleAfterLockTimeout returns the stale copy to answer with when a fill
// of the key, here or on another instance, outlived the lock timeout, if
// it may be served so: not purged, and stale-if-error or
// stale-while-revalidate allows it. Else nil.
func (x *exchange) staleAfterLockTimeout(stale *tiers.Entry) *fillResult {
	if x.servesStale(stale, x.h.o.Now()) {
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
		return x.fromShared(ctx), false, nil, errNoLease
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
		if e := x.fromShared(ctx); e != nil {
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
			return x.fromShared(ctx), false
		}
	}
}

// fromShared returns the entry L2 holds for the exchange's request if it
// answers it now, else nil: what another instance's fill stored.
func (x *exchange) fromShared(ctx context.Context) *tiers.Entry {
	if j, _ := x.find(ctx, x.h.chain.shared, x.h.o.Now()); j.use == usable {
		return j.e
	}
	return nil
}
