package proxy

import (
	"net/http"
	"time"
)

// Storability (RFC 9111 §3): whether a response may be stored at all, and
// for how long, as this shared cache and its routes decide.

// heuristicStatus reports whether a status is heuristically cacheable
// (RFC 9110 §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// mustUnderstandStatus reports whether this cache knows the caching rules
// of a status well enough to honour must-understand (RFC 9111 §5.2.2.3).
func mustUnderstandStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus reports whether this cache understands a final status
// well enough to store a response with it (RFC 9111 §3). It never stores
// partial content or a 304, which it does not combine.
func understoodStatus(code int) bool {
	return code >= 200 && code <= 599 && code != 206 && code != 304
}

// policy is the outcome of the storability and freshness rules for one
// response.
type policy struct {
	storable bool
	reason   Reason // why not storable
	lifetime time.Duration
}

// storeRule is what, beside the response itself, decides whether it is
// stored and for how long: the request it answers as the origin was sent
// it, that request's directives, the route that matched (nil if none) and
// the configured heuristic freshness.
type storeRule struct {
	req        *http.Request
	cc         cacheControl
	rt         *Route
	defaultTTL time.Duration
	statusTTL  map[int]time.Duration // the Handler's, under the route's
}

// statusLifetime returns the lifetime the configuration gives a response
// of status without explicit freshness: the route's, else the Handler's.
func (s storeRule) statusLifetime(status int) (time.Duration, bool) {
	if s.rt != nil {
		if d, ok := s.rt.StatusTTL[status]; ok {
			return d, true
		}
	}
	d, ok := s.statusTTL[status]
	return d, ok
}

// responseHead is the part of a response that storability reads.
type responseHead struct {
	status   int
	h        http.Header
	cc       cacheControl // Cache-Control, or CDN-Cache-Control if targeted
	targeted bool
}

// decide applies RFC 9111 §3 (storing), the sharing rule (sharing.go:
// §3.5 for Authorization, and this cache's rule for other credentials)
// and §4.2.1 (freshness lifetime) to a response with status and header h.
// A route's options apply only after the sharing rule: they change
// freshness, never whether a response may be shared.
func decide(s storeRule, status int, h http.Header) policy {
	cc, targeted := responseCacheControl(h)
	r := responseHead{status: status, h: h, cc: cc, targeted: targeted}
	var p policy
	if p.reason = s.refusal(r); p.reason != reasonNone {
		return p
	}
	if s.rt != nil && s.rt.Override {
		return s.overridden(r, p)
	}
	if p.reason = refusedByResponse(r); p.reason != reasonNone {
		return p
	}
	if cc.noCache {
		// Stored with no freshness: revalidated on every request.
		p.storable = true
		return p
	}
	return s.fresh(r, p)
}

// refusal returns why a response may not be stored whatever its route:
// the request's method or directives, a cookie set, Vary: *, credentials
// the origin did not allow to share (sharing.go), or a type its route
// does not expect.
func (s storeRule) refusal(r responseHead) Reason {
	switch {
	case s.req.Method != http.MethodGet && s.req.Method != http.MethodHead:
		return reasonMethod
	case s.cc.noStore:
		return reasonRequestNoStore
	case len(r.h["Set-Cookie"]) > 0:
		return reasonSetCookie
	case varyStar(r.h):
		return reasonVaryStar
	}
	if why := shareRefusal(requestCredentials(s.req, s.rt, r.h), r); why != reasonNone {
		return why
	}
	if s.rt != nil && !s.rt.expectsType(r.h.Get("Content-Type")) {
		return reasonContentType
	}
	return reasonNone
}

// overridden applies an override route: its TTL replaces the origin's
// freshness, and only that (private and no-store still apply).
func (s storeRule) overridden(r responseHead, p policy) policy {
	ttl, listed := s.statusLifetime(r.status)
	switch {
	case r.status != http.StatusOK && !listed:
		p.reason = reasonStatus
	case r.cc.noStore && !r.cc.mustUnderstand:
		p.reason = reasonNoStore
	case r.cc.private:
		p.reason = reasonPrivate
	case listed:
		p.lifetime, p.storable = ttl, true
	default:
		if p.lifetime = s.rt.TTL; p.lifetime <= 0 {
			p.lifetime = s.defaultTTL
		}
		if p.storable = p.lifetime > 0; !p.storable {
			p.reason = reasonNoFreshness
		}
	}
	return p
}

// refusedByResponse returns why the response's own status or directives
// forbid storing it.
func refusedByResponse(r responseHead) Reason {
	cc := r.cc
	switch {
	case !understoodStatus(r.status):
		return reasonStatus
	case cc.mustUnderstand && !mustUnderstandStatus(r.status):
		return reasonMustUnderstand
	case cc.noStore && !cc.mustUnderstand:
		// must-understand, with a status understood, overrides no-store
		// (RFC 9111 §5.2.2.3).
		return reasonNoStore
	case cc.private:
		return reasonPrivate
	case cc.noCache && (cc.noCacheFields || !hasValidator(r.h)):
		// Stored, it would need a full fetch on every request anyway.
		return reasonNoCache
	}
	return reasonNone
}

// fresh gives a storable response its freshness lifetime: explicit, else
// the route's TTL, else a heuristic; one with none is stored only if it
// can be revalidated.
func (s storeRule) fresh(r responseHead, p policy) policy {
	lifetime, explicit := explicitLifetime(r.cc, r.h, r.targeted)
	ttl, listed := s.statusLifetime(r.status)
	switch {
	case !explicit && listed:
		lifetime = ttl // the operator's rule for this status
	case !explicit:
		if !heuristicStatus(r.status) && !r.cc.public {
			p.reason = reasonStatus
			return p
		}
		if s.rt != nil && s.rt.TTL > 0 {
			lifetime = s.rt.TTL // the operator's rule for this route
		} else {
			lifetime = heuristicLifetime(r.h, s.defaultTTL)
		}
	}
	if lifetime <= 0 {
		// Already stale, but cheap to revalidate if it has a validator.
		p.storable = hasValidator(r.h)
		if !p.storable {
			p.reason = reasonNoFreshness
		}
		return p
	}
	p.lifetime, p.storable = lifetime, true
	return p
}

func varyStar(h http.Header) bool {
	_, star := parseVary(h)
	return star
}

// storeRule returns the rule deciding whether the response to out, the
// request sent to the origin for this exchange, is stored.
func (x *exchange) storeRule(out *http.Request) storeRule {
	return storeRule{req: out, cc: x.cc, rt: x.rt, defaultTTL: x.s.defaultTTL, statusTTL: x.h.o.StatusTTL}
}
