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
	e, ok, err = t.Get(ctx, c.variant(key, e.Vary, r))
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
		ttl: min(e.Remaining(e.StoredAt)+retention(e), c.maxTTL)}
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
	if len(e.Vary) > 0 {
		key = c.variant(base, e.Vary, r)
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
	if old, ok, err := t.Get(ctx, p.base); err == nil && ok && old.Kind == tiers.KindVary && slices.Equal(old.Vary, p.e.Vary) {
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

// lookup finds the entry for the request in t. It returns the entry if it
// may answer the request now; else, if one is stored but stale, that
// entry; and the Cache-Status forward reason. Tier errors count as
// misses.
func (x *exchange) lookup(ctx context.Context, t Tier) (fresh, stale *tiers.Entry, fwd fwdReason) {
	e, fwd := x.h.chain.get(ctx, t, x.key, x.r)
	if e == nil {
		return nil, nil, fwd
	}
	judged, u := x.judge(e, x.now)
	switch u {
	case usable:
		return judged, nil, fwdNone
	case stored:
		return nil, judged, fwdStale
	case purged:
		// As if it were not stored (RFC 9211 §2.2.1).
		if len(e.Vary) > 0 {
			return nil, nil, fwdVaryMiss
		}
		return nil, nil, fwdURIMiss
	}
	return nil, nil, fwdMiss
}

func firstOf(a, b *tiers.Entry) *tiers.Entry {
	if a != nil {
		return a
	}
	return b
}
