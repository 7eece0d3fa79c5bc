package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// chain is the two tiers as one cache: read through L1 then L2, an L2
// entry promoted into L1, a fill written through to L2 then L1. Either
// tier failing is a miss, never an error; L1 is used only while usable
// says it may be (an instance of a fleet that may have missed a purge
// does not use it). Every entry read is checked against the purges
// applied (bans), and a Vary marker is followed to the request's variant.
type chain struct {
	local, shared Tier        // either may be nil
	usable        func() bool // whether local may be used now
	bans          *tiers.Bans
	l1TTL, maxTTL time.Duration
	// variant returns the key of the variant of base that r selects.
	variant func(base string, vary []string, r *http.Request) string
	m       *metrics
	log     *slog.Logger
	now     func() time.Time
	rep     *report // notes entries with their report counters
}

// localTier returns L1 if there is one and it may be used now, else nil.
func (c *chain) localTier() Tier {
	if c.local != nil && c.usable() {
		return c.local
	}
	return nil
}

// get returns the response stored in t for key, the variant r selects if
// it varies (through a Vary marker no purge killed), or nil and why:
// fwdURIMiss, or fwdVaryMiss when the URL is stored but not the variant.
// A tier that fails is a miss. The response is not judged: see judge.
func (c *chain) get(ctx context.Context, t Tier, key string, r *http.Request) (*tiers.Entry, fwdReason) {
	e, ok, err := t.Get(ctx, key)
	if err != nil {
		c.tierError(t, err)
		return nil, fwdURIMiss
	}
	if !ok || e.Kind == tiers.KindVary && c.bans.Dead(e) {
		return nil, fwdURIMiss
	}
	if e.Kind != tiers.KindVary {
		return e, fwdNone
	}
	e, ok, err = t.Get(ctx, c.variant(key, e.Vary(), r))
	if err != nil {
		c.tierError(t, err)
		return nil, fwdVaryMiss
	}
	if !ok || e.Kind != tiers.KindResponse {
		return nil, fwdVaryMiss
	}
	return e, fwdNone
}

func (c *chain) tierError(t Tier, err error) {
	if t == c.shared {
		c.m.sharedErrors.Add(1)
	}
	c.log.Debug("cache tier error", "err", err)
}

// tierFailure names a failed call to the shared tier for the report and
// Cache-Status: reasonRedisTimeout when it did not answer in time (a
// transient slowness: one call, the tier still up), else reasonRedisDown
// (unreachable, the circuit open, or an error reply).
func tierFailure(err error) Reason {
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) && te.Timeout() {
		return reasonRedisTimeout
	}
	return reasonRedisDown
}

// placement is where and for how long an entry goes in a tier: under key,
// with, if it varies, a Vary marker under base.
type placement struct {
	base, key string
	e         *tiers.Entry
	varies    bool // key is a variant key of base: a marker goes under base
	ttl       time.Duration
}

// place returns the placement of e, stored for a request whose variant key
// is key: the marker of a varying entry under base.
func (c *chain) place(base, key string, e *tiers.Entry) placement {
	return placement{base: base, key: key, e: e, varies: key != base,
		ttl: min(e.Remaining(e.StoredAt.Time())+retention(e), c.maxTTL)}
}

// store writes e under key (its variant key) in both tiers, L2 first, and
// its Vary marker under base. It reports whether any tier took it, and
// what went wrong: reasonRedisTimeout when L2 did not answer in time,
// reasonRedisDown when it failed otherwise (see tierFailure), reasonExpired
// when e is stale already and nothing keeps it, reasonL1Unused when L1
// could not be used and there is no L2.
func (c *chain) store(ctx context.Context, base, key string, e *tiers.Entry) (stored bool, detail Reason) {
	e.Note = c.rep.note(e.URL) // e is the fill's own: nobody else holds it yet
	p := c.place(base, key, e)
	if p.ttl <= 0 {
		return false, reasonExpired
	}
	if c.shared != nil {
		err := c.shared.Set(ctx, p.key, e, p.ttl)
		if err == nil && p.varies {
			err = c.shared.Set(ctx, p.base, c.withVariants(ctx, c.shared, p), p.ttl)
		}
		if err != nil {
			c.tierError(c.shared, err)
			detail = tierFailure(err)
		} else {
			stored = true
		}
	}
	if c.setLocal(ctx, p, true) {
		stored = true
	} else if detail == reasonNone && !stored {
		detail = reasonL1Unused
	}
	if stored {
		c.m.stored.Add(1)
	}
	return stored, detail
}

// promote copies an entry found in L2 for r into L1.
func (c *chain) promote(ctx context.Context, base string, r *http.Request, e *tiers.Entry) {
	if c.localTier() == nil {
		return
	}
	// An entry read from Redis lives in the one allocation of its
	// encoding: copy it into the packed form, which takes less memory in
	// L1 (see tiers.Entry.Packed). A promotion is once per key per L1 TTL.
	e = e.Packed()
	e.Note = c.rep.note(e.URL)
	key := base
	if len(e.Vary()) > 0 {
		key = c.variant(base, e.Vary(), r)
	}
	p := c.place(base, key, e)
	p.ttl = min(e.Remaining(c.now())+retention(e), c.maxTTL)
	c.setLocal(ctx, p, false)
}

// waiter is implemented by a tier whose writes become visible
// asynchronously (ristretto buffers them).
type waiter interface{ Wait() }

// setLocal stores a placement in L1. With wait, it returns only once the
// write is visible (ristretto applies writes asynchronously): a fill from
// the origin waits, so that the next request cannot go to the origin
// again; a promotion from L2 does not, since missing it only costs
// another L2 read.
func (c *chain) setLocal(ctx context.Context, p placement, wait bool) bool {
	l := c.localTier()
	if l == nil || p.ttl <= 0 {
		return false
	}
	if p.ttl > c.l1TTL && c.shared != nil {
		// Other instances can purge: bound how long a copy may outlive a
		// purge this instance missed (see the fleet's guarantee). Alone,
		// an entry lives as long as its freshness and stale windows.
		p.ttl = c.l1TTL
	}
	if err := l.Set(ctx, p.key, p.e, p.ttl); err != nil {
		return false
	}
	if p.varies {
		if err := l.Set(ctx, p.base, c.withVariants(ctx, l, p), p.ttl); err != nil {
			return false
		}
	}
	if w, ok := l.(waiter); ok && wait {
		w.Wait()
	}
	return true
}

// maxVariantsListed bounds the variants a Vary marker lists, and
// maxVariantListed the length of one listed: the values come from
// clients' headers, and a marker is read and rewritten on every fill of
// a variant. A longer variant is stored, just not listed (inspect and a
// local URL purge do not see it; the purge's ban still kills it).
const (
	maxVariantsListed = 32
	maxVariantListed  = 512
)

// withVariants returns the Vary marker of p listing, for inspection, the
// variants stored under its base key in t: those the marker already in t
// lists, and p's. The list is best effort: two variants stored at once
// may each write a marker without the other. The marker shares no memory
// with any other entry.
func (c *chain) withVariants(ctx context.Context, t Tier, p placement) *tiers.Entry {
	_, suffix, _ := tiers.SplitKey(p.key)
	var listed []string
	unlisted := len(suffix) > maxVariantListed
	if !unlisted {
		listed = append(listed, suffix)
	}
	if old, ok, err := t.Get(ctx, p.base); err == nil && ok && old.Kind == tiers.KindVary && slices.Equal(old.Vary(), p.e.Vary()) {
		unlisted = unlisted || old.Header.Get(unlistedField) != ""
		for _, v := range old.Header.Values(variantField) {
			switch {
			case v == suffix:
			case len(listed) < maxVariantsListed:
				listed = append(listed, v)
			default:
				unlisted = true
			}
		}
	}
	// The marker owns its memory: its URL, Vary and Tags are the
	// variant's, which live in one allocation with the variant's body,
	// and the listed variants are the old marker's. Shared, they would
	// keep that body (and the old marker) alive after the variant is
	// evicted (see TestVaryFillKeepsL1MemoryBound).
	return tiers.VaryMarker(p.e, listed, unlisted)
}

// variantField and unlistedField are the fields of a Vary marker that
// list its variants (see tiers.VariantField).
const (
	variantField  = tiers.VariantField
	unlistedField = tiers.UnlistedField
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

// leaser returns the shared tier as a fill-lease service, or nil if
// there is none (no L2, or one that cannot coordinate fills).
func (c *chain) leaser() leaser {
	l, _ := c.shared.(leaser)
	return l
}

// originGate returns the shared tier as the fleet's record of origin
// failures, or nil.
func (c *chain) originGate() originGate {
	g, _ := c.shared.(originGate)
	return g
}

// revalidationLease takes the fleet's revalidation lease on key (see
// revalidationLeaser). Without a shared tier that coordinates, it returns
// an error: the caller revalidates.
func (c *chain) revalidationLease(ctx context.Context, key string) (held bool, release func(), err error) {
	l, ok := c.shared.(revalidationLeaser)
	if !ok {
		return false, nil, errNoLease
	}
	return l.RevalidationLease(ctx, key, leaseTTL)
}

// The chain's operations on the tiers for purges and invalidations
// (purge.go, invalidate.go), on L1 whether or not it may be used now.

// holder is implemented by a shared tier that can tell, in one cheap
// call, whether it holds anything under a key: an entry, a Vary marker,
// or a fill lease (shared.Tier.Holds).
type holder interface {
	Holds(ctx context.Context, key string) (bool, error)
}

// mayHold reports whether a tier may hold anything under the base key
// key: an entry in L1; an entry, a Vary marker or a fill lease in L2. A
// tier that fails or cannot tell counts as holding it.
func (c *chain) mayHold(ctx context.Context, key string) bool {
	if c.local != nil {
		if _, ok, err := c.local.Get(ctx, key); ok || err != nil {
			return true
		}
	}
	if c.shared == nil {
		return false
	}
	s, ok := c.shared.(holder)
	if !ok {
		return true
	}
	held, err := s.Holds(ctx, key)
	return held || err != nil
}

// drop deletes the entries under the base key key from both tiers (see
// dropKeys), and reports false if some were left.
func (c *chain) drop(ctx context.Context, key string) bool {
	complete := true
	for _, t := range []Tier{c.shared, c.local} {
		if t != nil && !dropKeys(ctx, t, key) {
			complete = false
		}
	}
	return complete
}

// dropLocal is drop for L1 alone.
func (c *chain) dropLocal(ctx context.Context, key string) bool {
	return c.local == nil || dropKeys(ctx, c.local, key)
}

// localPurger is a Local tier that can drop what a selector names
// itself (tiers/local): the entries it names that were stored before a
// time, later stores of them included.
type localPurger interface {
	Purge(sel tiers.Selector, storedBefore time.Time)
}

// purgeLocal has L1 drop what sel names, stored before storedBefore, if
// it can (localPurger); it reports whether it could.
func (c *chain) purgeLocal(sel tiers.Selector, storedBefore time.Time) bool {
	p, ok := c.local.(localPurger)
	if ok {
		p.Purge(sel, storedBefore)
	}
	return ok
}

// clearer is a Local tier that can drop every entry.
type clearer interface{ Clear() }

// clearLocal drops every entry of L1.
func (c *chain) clearLocal() {
	if l, ok := c.local.(clearer); ok {
		l.Clear()
	}
}

// dropKeys deletes from t the entry under the base key key, or its Vary
// marker and the variants it lists. It reports false if it could not, or
// some variant is not listed.
func dropKeys(ctx context.Context, t Tier, key string) bool {
	keys := []string{key}
	m, ok, err := t.Get(ctx, key)
	if err != nil {
		return false
	}
	complete := true
	if ok && m.Kind == tiers.KindVary {
		complete = m.Header.Get(unlistedField) == ""
		for _, v := range m.Header.Values(variantField) {
			keys = append(keys, tiers.VariantKey(key, v))
		}
	}
	return t.Delete(ctx, keys...) == nil && complete
}
