package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

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

// awaitFill waits for the instance holding the fill lease on key to store
// the entry, polling the shared tier. It returns nil when the lease ends
// without a usable entry (the response was not storable, or the holder
// died), or when ctx ends: the caller then fetches itself.
func (h *Handler) awaitFill(ctx context.Context, l leaser, key string, r *http.Request, reqCC cacheControl) *tiers.Entry {
	wait, failures := 2*time.Millisecond, 0
	// No longer than the lock timeout: a holder whose origin hangs
	// renews its lease for as long as its fill lasts.
	deadline := time.NewTimer(h.flights.lockTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
		if e, _, _ := h.lookup(ctx, h.shared, key, r, reqCC, h.now()); e != nil {
			return e
		}
		held, err := l.LeaseHeld(ctx, key)
		if err != nil {
			// A slow answer is no reason to stampede the origin; a
			// Redis that keeps failing is.
			if failures++; failures >= 3 {
				return nil
			}
			continue
		}
		failures = 0
		if !held {
			// Released: the entry is there now, or will not be.
			e, _, _ := h.lookup(ctx, h.shared, key, r, reqCC, h.now())
			return e
		}
	}
}
