package proxy

import (
	"context"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// The lookup: everything between a request's key and a stored entry that
// answers it, judged. It reads L1 (while the fleet lets it be used), then
// L2, promoting into L1 what L2 answers with; follows a Vary marker to
// the request's variant (chain.get); and judges every entry it reads once
// (judge.go). What it found is a value, found, that the exchange answers
// from (exchange.go) or hands to a fill (collapse.go).

// found is what the tiers hold for a request, as the judge sees it.
type found struct {
	// entry answers the request as it is, as as says: hitL1, hitL2, or
	// staleRevalidating (a stale entry within its
	// stale-while-revalidate window, served while it is revalidated);
	// how is how its body is sent, as the judge decided.
	entry *tiers.Entry
	how   delivery
	as    *outcome
	// stale is the newest stored entry that may not answer as it is: the
	// fill revalidates it, and serves it where the origin fails and it
	// allows that.
	stale *tiers.Entry
	// fwd is why the cache could not answer, for Cache-Status:
	// fwdURIMiss, fwdVaryMiss, fwdStale, fwdMiss (stored, but not for
	// this request), or fwdRequest (the request asked for the origin).
	fwd fwdReason
	// at is when the entries were judged.
	at time.Time
}

// lookup returns what the tiers hold for the exchange's request. It stops
// at the first tier that answers it: with a fresh entry, or, with swr,
// with a stale one it may serve while it is revalidated (a revalidation
// itself looks for fresh entries only). Else it returns the newer stale
// copy of the two tiers. Tier errors count as misses.
func (x *exchange) lookup(ctx context.Context, swr bool) found {
	c, now := x.h.chain, x.h.o.Now()
	f := found{at: now, fwd: fwdURIMiss}
	if x.asksOrigin(nil) {
		f.fwd = fwdRequest
	}
	if l := c.localTier(); l != nil {
		j, fwd := x.find(ctx, l, now)
		f.fwd = fwd
		if f.settle(j, hitL1, swr, now) {
			return f
		}
	}
	if c.shared == nil {
		return f
	}
	j, fwd := x.find(ctx, c.shared, now)
	if j.use == usable {
		c.promote(ctx, x.key, x.r, j.e)
	}
	if j.use == stored && f.stale != nil && j.e.StoredAt <= f.stale.StoredAt {
		return f // L1's stale copy is as new
	}
	if j.use == stored {
		f.fwd = fwd
	}
	f.settle(j, hitL2, swr, now)
	return f
}

// settle records in f the entry judged j, read from a tier: as the answer
// if it is fresh (as hit) or, with swr, within its stale-while-revalidate
// window while the request does not ask for the origin; else as the
// stale copy. It reports whether f now answers the request.
func (f *found) settle(j judgement, hit *outcome, swr bool, now time.Time) bool {
	switch {
	case j.use == usable:
		f.entry, f.how, f.as = j.e, j.how, hit
	case j.use != stored:
		return false
	case swr && f.fwd != fwdRequest && staleWhileRevalidate(j.e, now):
		f.entry, f.how, f.as = j.e, j.how, staleRevalidating
	default:
		f.stale = j.e
		return false
	}
	return true
}

// find reads the entry for the exchange's request from t and judges it
// (a soft-purged entry is a stale copy, see judge), with the
// Cache-Status forward reason if it does not answer.
func (x *exchange) find(ctx context.Context, t Tier, now time.Time) (judgement, fwdReason) {
	e, fwd := x.h.chain.get(ctx, t, x.key, x.r)
	if e == nil {
		return judgement{use: purged}, x.forwarded(nil, fwd)
	}
	j := x.judge(e, now)
	switch j.use {
	case usable:
		return j, fwdNone
	case stored:
		return j, x.forwarded(e, fwdStale)
	case purged:
		// As if it were not stored (RFC 9211 §2.2.1).
		if len(e.Vary()) > 0 {
			fwd = fwdVaryMiss
		}
		return j, x.forwarded(nil, fwd)
	}
	return j, x.forwarded(nil, fwdMiss)
}

// forwarded is fwd, the reason a tier could not answer with e (nil if it
// held none the request may use), unless the request asked for the
// origin's word: then that is the reason.
func (x *exchange) forwarded(e *tiers.Entry, fwd fwdReason) fwdReason {
	if x.asksOrigin(e) {
		return fwdRequest
	}
	return fwd
}
