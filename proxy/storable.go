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
	reason   string // why not storable, for logs and tests
	lifetime time.Duration
	// shareable is true when the response explicitly allows a shared
	// cache to serve it to requests with Authorization (RFC 9111 §3.5).
	shareable bool
}

// decide applies RFC 9111 §3 (storing), §3.5 (Authorization) and §4.2.1
// (freshness lifetime) to a response to req. rt is the route that matched
// (nil if none) and defaultTTL the configured heuristic freshness.
func decide(req *http.Request, reqCC cacheControl, status int, h http.Header, rt *Route, defaultTTL time.Duration) policy {
	cc, targeted := responseCacheControl(h)
	shareable := cc.public || cc.sMaxAge >= 0 || cc.mustRevalidate
	p := policy{shareable: shareable}
	override := rt != nil && rt.Override
	switch {
	case req.Method != http.MethodGet && req.Method != http.MethodHead:
		p.reason = "method"
	case reqCC.noStore:
		p.reason = "request no-store"
	case len(h["Set-Cookie"]) > 0:
		p.reason = "set-cookie"
	case req.Header.Get("Authorization") != "" && !shareable:
		p.reason = "authorization"
	case varyStar(h):
		p.reason = "vary-star"
	case cookieRequest(req, h, rt) && !explicitlyFresh(cc, h, targeted):
		// The cookie may have changed the answer, and it is not in the
		// key: store it for others only on the origin's explicit word.
		p.reason = "cookie-request"
	case override && status != http.StatusOK:
		p.reason = "override-status"
	case override && cc.noStore && !cc.mustUnderstand:
		p.reason = "no-store"
	case override && cc.private:
		p.reason = "private"
	case override:
		// The route's rule replaces the origin's freshness, and only
		// that: private, no-store, Set-Cookie, Authorization and Cookie
		// were judged above.
		p.lifetime = rt.TTL
		if p.lifetime <= 0 {
			p.lifetime = defaultTTL
		}
		p.storable = p.lifetime > 0
		if !p.storable {
			p.reason = "no-ttl"
		}
		return p
	case !understoodStatus(status):
		p.reason = "status"
	case cc.mustUnderstand && !mustUnderstandStatus(status):
		p.reason = "must-understand"
	case cc.noStore && !cc.mustUnderstand:
		// must-understand, with a status understood, overrides no-store
		// (RFC 9111 §5.2.2.3).
		p.reason = "no-store"
	case cc.private:
		p.reason = "private"
	case cc.noCache && (cc.noCacheFields || !hasValidator(h)):
		// Stored, it would need a full fetch on every request anyway.
		p.reason = "no-cache"
	case cc.noCache:
		// Stored with no freshness: revalidated on every request.
		p.storable = true
		return p
	}
	if p.reason != "" {
		return p
	}
	lifetime, explicit := explicitLifetime(cc, h, targeted)
	if !explicit {
		if !heuristicStatus(status) && !cc.public {
			p.reason = "status-not-heuristic"
			return p
		}
		if rt != nil && rt.TTL > 0 {
			// The operator's rule for this route.
			lifetime = rt.TTL
		} else {
			lifetime = heuristicLifetime(h, defaultTTL)
		}
	}
	if lifetime <= 0 {
		if hasValidator(h) {
			// Already stale, but cheap to revalidate.
			p.storable = true
			return p
		}
		p.reason = "not-fresh"
		return p
	}
	p.lifetime, p.storable = lifetime, true
	return p
}

// cookieRequest reports whether req carries a Cookie that may have
// changed the response h: the response does not vary on Cookie (then the
// cookie is in its key), and the route does not say cookies are ignored.
func cookieRequest(req *http.Request, h http.Header, rt *Route) bool {
	if len(req.Header["Cookie"]) == 0 || rt != nil && rt.IgnoreCookies {
		return false
	}
	vary, _ := parseVary(h)
	for _, n := range vary {
		if n == "Cookie" {
			return false
		}
	}
	return true
}

// explicitlyFresh reports whether the origin gave a response explicit
// freshness for a shared cache: s-maxage, max-age, Expires, or public.
func explicitlyFresh(cc cacheControl, h http.Header, targeted bool) bool {
	if cc.public || cc.sMaxAge >= 0 || cc.maxAge >= 0 {
		return true
	}
	_, expires := h["Expires"]
	return expires && !targeted
}

func varyStar(h http.Header) bool {
	_, star := parseVary(h)
	return star
}
