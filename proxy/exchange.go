package proxy

import (
	"context"
	"net/http"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// exchange is one GET or HEAD request and the answer being made for it.
// ServeHTTP reads the request's facts once and they do not change after:
// the exchange is read, never written, by the steps that answer it, and a
// fill running for other requests too may share it. The steps, in order:
// the lookup (lookup.go: L1, then L2, every entry judged by judge.go),
// then, when nothing stored answers, a fill (collapse.go, fill.go: this
// instance's other requests, the fleet's fill lease, the origin). Each
// step returns what it decided; the answer is written by answer.go.
type exchange struct {
	h      *Handler
	s      *settings // the Handler's live settings when the request came
	w      http.ResponseWriter
	r      *http.Request
	key    string              // the base key of the request's canonical URL
	path   string              // the canonical path
	rt     *Route              // the route that matched, or nil
	cc     cacheControl        // the request's cache directives, as policy reads them
	ae     acceptance          // the codings the request accepts (coding.go)
	policy ClientNoCachePolicy // how the request's no-cache is treated: see Options.ClientNoCache
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
	policy, cc := s.clientNoCache(rd.rt), noDirectives()
	if policy != NoCacheIgnore {
		cc = requestCacheControl(r.Header)
	}
	// Not looked up: a bypass route, a path whose readings disagree on
	// its route, a URL too long to name in a purge, or a request that
	// forbids storing its exchange.
	switch {
	case rd.rt != nil && rd.rt.Bypass:
		h.passThrough(w, r, reasonBypassRoute)
		return
	case rd.ambiguous:
		h.passThrough(w, r, reasonAmbiguousPath)
		return
	case t.len() > maxCachedURL:
		h.passThrough(w, r, reasonURLTooLong)
		return
	case cc.noStore:
		h.passThrough(w, r, reasonRequestNoStore)
		return
	}
	x := &exchange{h: h, s: s, w: w, r: r, path: t.path, rt: rd.rt, cc: cc, ae: acceptedCodings(r), policy: policy}
	if h.hosts == nil {
		x.key = keyOf(h.keyPre, t) // baseKey, its first part built once
	} else {
		x.key = baseKey(h.o.KeyPrefix, h.keyHost(r), t)
	}
	x.serve()
}

// serve answers the exchange from the nearest tier that holds an entry
// for it, else with a fill. A stale entry within its
// stale-while-revalidate window answers too, and is revalidated in the
// background.
func (x *exchange) serve() {
	f := x.lookup(x.r.Context(), true)
	switch {
	case f.entry != nil:
		x.writeEntry(f.entry, f.how, f.as, f.as.status, reasonNone, f.at)
		if f.as == staleRevalidating {
			x.refreshInBackground(f.entry)
		}
	case x.cc.onlyIfCached:
		x.onlyIfCached()
	default:
		x.miss(f)
	}
}

// refreshInBackground revalidates stale after it was served under
// stale-while-revalidate: once for the whole fleet (the others keep
// serving it stale), and shared with any concurrent miss of this
// instance. The refresh is for every client: it runs as a request of the
// same URL without the client's cache directives, detached from its
// connection.
func (x *exchange) refreshInBackground(stale *tiers.Entry) {
	bg := &exchange{h: x.h, s: x.s, r: x.r.Clone(context.Background()), key: x.key, path: x.path,
		rt: x.rt, cc: noDirectives(), ae: x.ae, policy: x.policy}
	go func() {
		ctx := bg.r.Context()
		held, release, err := bg.h.chain.revalidationLease(ctx, bg.key)
		if err == nil && !held {
			return // another instance is refreshing it
		}
		if held {
			defer release()
		}
		res, _, _ := bg.h.flights.do(ctx, bg.key, bg.h.o.FillTimeout, func(ctx context.Context) *fillResult {
			return bg.fill(ctx, sharedFull, stale)
		})
		if res != nil && res.stream != nil {
			// Nobody reads it: let go of the origin's connection.
			res.stream.close()
		}
	}()
}

// onlyIfCached answers with 504 a request with only-if-cached that
// nothing stored answers (RFC 9111 §5.2.1.7).
func (x *exchange) onlyIfCached() {
	x.h.count(x.r, x.path, x.rt, missed, reasonOnlyIfCached)
	x.w.Header()["X-Cache"] = missed.xcache
	x.w.Header()["Cache-Status"] = missed.forwarded(forward{fwd: fwdMiss, detail: reasonOnlyIfCached})
	x.w.WriteHeader(http.StatusGatewayTimeout)
}
