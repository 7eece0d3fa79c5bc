package proxy

import (
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// The judge: whether an entry read from a tier may answer the exchange's
// request, decided in one place for every path that reads one: the
// lookup in L1 and L2 (chain.go), the entry the fleet's fill lease finds
// stored (lease.go), another request's fill joined (collapse.go), and a
// stale copy served instead of a fetch (after the lock timeout, in the
// origin's backoff, when the origin failed). It applies, in order: the
// purges (a hard ban kills, a soft ban makes stale), the request's own
// terms (its content codings: deliveryOf; Authorization and its cache
// directives: usability), and the entry's freshness. Its judgement says
// how the entry answers too, so that writing it decides nothing again.

// judgement is the judge's word on an entry for a request: the entry to
// use, what it may do, and how its body is sent (when it may answer).
type judgement struct {
	e   *tiers.Entry
	use use
	how delivery
}

// judge returns what e may do for the exchange's request at now, and the
// entry to use: e itself, or for an entry a soft purge named while it was
// fresh, a copy that is stale from now and may be served while it is
// revalidated (softPurged).
func (x *exchange) judge(e *tiers.Entry, now time.Time) judgement {
	bans := x.h.o.Bans
	if bans.Dead(e) {
		return judgement{use: purged}
	}
	how := deliveryOf(e.Header, x.ae)
	if how == refused {
		// A body in a coding the client did not accept, which the
		// proxy cannot decode for it (coding.go).
		return judgement{use: forbidden}
	}
	cc := &x.cc
	if cc.wantsOrigin() { // rare: the common case copies nothing
		d := x.directivesFor(e)
		cc = &d
	}
	u := usability(e, x.r, *cc, now)
	switch {
	case u == forbidden:
		return judgement{use: forbidden}
	case bans.Stale(e):
		// Named by a soft purge: stale, whatever the request accepts,
		// until a fill newer than the purge replaces it.
		if e.Remaining(now) > 0 {
			e = softPurged(e, now)
		}
		return judgement{e, stored, how}
	case u == usable && cc.wantsOrigin():
		return judgement{e, stored, how} // to revalidate, as the request asks
	}
	return judgement{e, u, how}
}

// directivesFor returns the request's cache directives as they apply to
// e. Under the NoCacheRevalidate policy, an entry without a validator
// cannot be revalidated: the request's no-cache and max-age=0 are dropped
// for it, and it answers as if they were absent (see Options.ClientNoCache).
func (x *exchange) directivesFor(e *tiers.Entry) cacheControl {
	cc := x.cc
	if x.policy != NoCacheRevalidate || !cc.wantsOrigin() || e == nil || hasValidator(e.Header) {
		return cc
	}
	cc.noCache = false
	if cc.maxAge == 0 {
		cc.maxAge = -1
	}
	return cc
}

// asksOrigin reports whether the request asks for the origin's word on e
// (no-cache, Pragma: no-cache, max-age=0; RFC 9111 §5.2.1.4), as its
// policy reads it; with e nil, on whatever is stored.
func (x *exchange) asksOrigin(e *tiers.Entry) bool {
	return x.cc.wantsOrigin() && x.directivesFor(e).wantsOrigin()
}

// verdict is judge's verdict on e for the exchange's request, now.
func (x *exchange) verdict(e *tiers.Entry) use {
	return x.judge(e, x.h.o.Now()).use
}

// softPurged returns a copy of e, which a soft purge named while it was
// fresh: stale from now, and servable while it is revalidated (see
// staleWhileRevalidate) unless it forbids being served stale. Its own
// stale-if-error applies from now.
func softPurged(e *tiers.Entry, now time.Time) *tiers.Entry {
	c := *e
	c.Lifetime = e.Age(now)
	c.SoftPurged = true
	return &c
}

// servesStale reports whether stale, the exchange's stale copy, may be
// served instead of a fetch now: it is not purged, and stale-if-error or
// stale-while-revalidate allows it.
func (x *exchange) servesStale(stale *tiers.Entry, now time.Time) bool {
	return stale != nil && !x.h.o.Bans.Dead(stale) && (staleIfError(stale, x.cc, now) || staleWhileRevalidate(stale, now))
}

// servesStaleOnError reports whether stale may be served because the
// origin failed: it is not purged, and stale-if-error allows it.
func (x *exchange) servesStaleOnError(stale *tiers.Entry, now time.Time) bool {
	return stale != nil && !x.h.o.Bans.Dead(stale) && staleIfError(stale, x.cc, now)
}
