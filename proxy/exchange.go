package proxy

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// exchange is one GET or HEAD request and the answer being made for it.
// ServeHTTP creates it; its methods are the steps, in the order below: the
// local tier, the shared tier, then a fill (collapse.go) from the fleet or
// the origin (fill.go).
type exchange struct {
	h    *Handler
	s    *settings // the Handler's live settings when the request came
	w    http.ResponseWriter
	r    *http.Request
	key  string       // the base key of the request's canonical URL
	path string       // the canonical path
	rt   *Route       // the route that matched, or nil
	cc   cacheControl // the request's cache directives
	ae   acceptance   // the codings the request accepts (coding.go)
	now  time.Time

	// fwd is why the cache could not answer, for Cache-Status:
	// fwdURIMiss, fwdVaryMiss, fwdStale, or fwdRequest (the request asked
	// for the origin).
	fwd fwdReason
	// stale is a stored copy that may not answer as it is: to revalidate,
	// or to serve if the origin fails and it allows that.
	stale *tiers.Entry
	// why is the Cache-Status detail of the answer, for the report.
	why Reason
	// policy is how a request for the origin's answer is treated: see
	// Options.ClientNoCache.
	policy ClientNoCachePolicy
}

// ServeHTTP answers r from the tiers or the origin.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.served(r) {
		h.misdirected(w, r)
		return
	}
	// net/url decoded Path: without "..", no reading of the path climbs.
	if strings.Contains(r.URL.Path, "..") && climbsAboveRoot(r.URL.EscapedPath()) {
		h.aboveRoot(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.passThrough(w, r, reasonMethod)
		return
	}
	t, s := requestTarget(r.URL), h.live.Load()
	rd := s.route(t.path)
	if rt := rd.rt; rt != nil && rt.IgnoreCookies {
		// The route says the cookie does not change its answers: the
		// origin does not see it, so that this is true (sharing.go).
		r = withoutCookie(r)
	}
	x := exchange{h: h, s: s, w: w, r: r, path: t.path, rt: rd.rt, cc: requestCacheControl(r.Header), ae: acceptedCodings(r)}
	x.policy = s.clientNoCache(x.rt)
	if x.policy == NoCacheIgnore {
		x.cc = noDirectives()
	}
	// Not looked up: a bypass route, a path whose readings disagree on
	// its route, a URL too long to name in a purge, or a request that
	// forbids storing its exchange.
	switch {
	case x.rt != nil && x.rt.Bypass:
		h.passThrough(w, r, reasonBypassRoute)
		return
	case rd.ambiguous:
		h.passThrough(w, r, reasonAmbiguousPath)
		return
	case t.len() > maxCachedURL:
		h.passThrough(w, r, reasonURLTooLong)
		return
	case x.cc.noStore:
		h.passThrough(w, r, reasonRequestNoStore)
		return
	}
	if h.hosts == nil {
		x.key = keyOf(h.keyPre, t) // baseKey, its first part built once
	} else {
		x.key = baseKey(h.o.KeyPrefix, h.keyHost(r), t)
	}
	x.now = h.o.Now()
	x.serve()
}

// serve answers the exchange from the nearest tier that can, else with a
// fill.
func (x *exchange) serve() {
	if x.fromLocal() {
		return
	}
	if x.cc.onlyIfCached {
		x.onlyIfCached()
		return
	}
	if x.fromShared() {
		return
	}
	x.miss()
}

// wantsOrigin reports whether the request asks for the origin's word
// (no-cache, Pragma: no-cache, max-age=0): what is stored is revalidated,
// not served (RFC 9111 §5.2.1.4).
func (x *exchange) wantsOrigin() bool { return x.cc.noCache || x.cc.maxAge == 0 }

// cannotRevalidate reports, under the NoCacheRevalidate policy, whether the
// entry found has no validator: then the request's no-cache and max-age=0
// are dropped, and it is answered from the cache as if they were absent.
func (x *exchange) cannotRevalidate(e *tiers.Entry) bool {
	if x.policy != NoCacheRevalidate || e == nil || hasValidator(e.Header) {
		return false
	}
	x.cc.noCache = false
	if x.cc.maxAge == 0 {
		x.cc.maxAge = -1
	}
	x.fwd = fwdURIMiss
	return true
}

// fromLocal answers from L1 if it holds a response for the request, or
// one it may serve stale while it is revalidated in the background; else
// it keeps a stale copy for later steps.
func (x *exchange) fromLocal() bool {
	x.fwd = fwdURIMiss
	if x.wantsOrigin() {
		x.fwd = fwdRequest
	}
	l := x.h.chain.localTier()
	if l == nil {
		return false
	}
	e, stale, fwd := x.lookup(x.r.Context(), l)
	if x.wantsOrigin() && x.cannotRevalidate(firstOf(e, stale)) {
		e, stale, fwd = x.lookup(x.r.Context(), l)
	}
	if x.wantsOrigin() {
		x.stale = firstOf(e, stale)
		return false
	}
	x.fwd, x.stale = fwd, stale
	if e != nil {
		x.writeEntry(e, hitL1, hitL1.status)
		return true
	}
	return x.serveStaleWhileRevalidating(stale)
}

// fromShared answers from L2 (promoting the entry into L1), or serves a
// copy stale in L2 within its stale-while-revalidate window; else it keeps
// the newer stale copy of the two tiers.
func (x *exchange) fromShared() bool {
	if x.h.o.Shared == nil {
		return false
	}
	e, stale, _ := x.lookup(x.r.Context(), x.h.o.Shared)
	if x.wantsOrigin() && x.cannotRevalidate(firstOf(e, stale)) {
		e, stale, _ = x.lookup(x.r.Context(), x.h.o.Shared)
	}
	if x.wantsOrigin() {
		e, stale = nil, firstOf(e, stale)
	}
	if e != nil {
		x.h.chain.promote(x.r.Context(), x.key, x.r, e)
		x.writeEntry(e, hitL2, hitL2.status)
		return true
	}
	if stale == nil || x.stale != nil && !stale.StoredAt.After(x.stale.StoredAt) {
		return false
	}
	x.stale = stale
	if !x.wantsOrigin() {
		x.fwd = fwdStale // what the cache holds is stale (RFC 9211 §2.2.1)
	}
	return !x.wantsOrigin() && x.serveStaleWhileRevalidating(stale)
}

// serveStaleWhileRevalidating serves stale if it is within its
// stale-while-revalidate window (RFC 5861 §3), and revalidates it in the
// background.
func (x *exchange) serveStaleWhileRevalidating(stale *tiers.Entry) bool {
	if stale == nil || !staleWhileRevalidate(stale, x.now) {
		return false
	}
	x.writeEntry(stale, staleRevalidating, staleRevalidating.status)
	x.refreshInBackground(stale)
	return true
}

// refreshInBackground revalidates stale after it was served under
// stale-while-revalidate: once for the whole fleet (the others keep
// serving it stale), and shared with any concurrent miss of this
// instance.
func (x *exchange) refreshInBackground(stale *tiers.Entry) {
	bg := *x
	bg.r = x.r.Clone(context.Background())
	bg.cc, bg.stale, bg.w = noDirectives(), stale, nil
	go func() {
		ctx := bg.r.Context()
		if l, ok := bg.h.o.Shared.(revalidationLeaser); ok {
			held, release, err := l.RevalidationLease(ctx, bg.key, leaseTTL)
			if err == nil && !held {
				return // another instance is refreshing it
			}
			if held {
				defer release()
			}
		}
		res, _, _ := bg.h.flights.do(ctx, bg.key, bg.h.o.FillTimeout, func(ctx context.Context) *fillResult {
			return bg.fill(ctx, sharedFull)
		})
		if res != nil && res.stream != nil {
			// Nobody reads it: let go of the origin's connection.
			res.stream.close()
		}
	}()
}

// onlyIfCached answers a request with only-if-cached from the shared tier
// or with 504 (RFC 9111 §5.2.1.7); the local tier was already consulted.
func (x *exchange) onlyIfCached() {
	if x.h.o.Shared != nil {
		if e, _, _ := x.lookup(x.r.Context(), x.h.o.Shared); e != nil {
			x.writeEntry(e, hitL2, hitL2.status)
			return
		}
	}
	x.h.count(x.r, x.path, x.rt, missed, reasonOnlyIfCached)
	x.w.Header()["X-Cache"] = missed.xcache
	x.w.Header()["Cache-Status"] = missed.forwarded(forward{fwd: fwdMiss, detail: reasonOnlyIfCached})
	x.w.WriteHeader(http.StatusGatewayTimeout)
}
