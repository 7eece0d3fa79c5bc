package proxy

import (
	"net/http"
	"strings"
)

// Sharing: whether a response fetched for one client may answer others.
// It is the one rule every route option goes through, stated once:
//
//	A response fetched for a request that carried credentials
//	(Authorization, Cookie, or a header its route names in Credentials)
//	that the response does not vary on is stored for other clients only
//	when the origin explicitly allowed sharing it: public, or a positive
//	s-maxage, max-age or future Expires (and for Authorization, RFC 9111
//	§3.5's public, s-maxage or must-revalidate as well).
//
// A route can remove a credential before the origin sees it (cookies:
// ignore removes Cookie), and then the origin's answer cannot depend on
// it; no route option can turn the origin's refusal to share into
// permission: override and ttl replace freshness only, after this rule.

// credentials are the identifying headers a request carried to the
// origin that a response does not vary on: what the origin may have
// answered for one client alone.
type credentials struct {
	authorization bool
	// other is the first other identifying header present (Cookie, or
	// one the route names), for the refusal's reason.
	other string
}

// any reports whether the request carried any credential.
func (c credentials) any() bool { return c.authorization || c.other != "" }

// requestCredentials returns the credentials out, the request as the
// origin saw it, carried that a response with header h does not vary on.
// A header the response varies on is in the entry's key: only a request
// with the same value is ever answered with it.
func requestCredentials(out *http.Request, rt *Route, h http.Header) credentials {
	var c credentials
	var vary []string
	varies := func(name string) bool {
		if vary == nil {
			vary, _ = parseVary(h)
			if vary == nil {
				vary = []string{}
			}
		}
		for _, n := range vary {
			if strings.EqualFold(n, name) {
				return true
			}
		}
		return false
	}
	if _, ok := out.Header["Authorization"]; ok && !varies("Authorization") {
		c.authorization = true
	}
	if len(out.Header["Cookie"]) > 0 && !varies("Cookie") {
		c.other = "Cookie"
	}
	if rt != nil && c.other == "" {
		for _, name := range rt.Credentials {
			if len(out.Header.Values(name)) > 0 && !varies(name) {
				c.other = http.CanonicalHeaderKey(name)
				break
			}
		}
	}
	return c
}

// shareRefusal returns why a response r to a request with credentials c
// may not be stored for others, or reasonNone if it may. It reads only
// what the origin said, never the route.
func shareRefusal(c credentials, r responseHead) Reason {
	if !c.any() {
		return reasonNone
	}
	permitted := originSharesExplicitly(r)
	if c.authorization && (!permitted || !authorizationShareable(r.cc)) {
		return reasonAuthorization
	}
	switch {
	case permitted:
		return reasonNone
	case c.other == "Cookie":
		return reasonCookieRequest
	}
	return reasonCredentialRequest
}

// originSharesExplicitly reports whether the origin gave r an explicit
// permission to be shared: public, or a positive lifetime of its own
// (s-maxage, max-age, or an Expires later than its Date). A lifetime of
// zero or an Expires in the past says "expire now", not "share".
func originSharesExplicitly(r responseHead) bool {
	if r.cc.public {
		return true
	}
	lifetime, explicit := explicitLifetime(r.cc, r.h, r.targeted)
	return explicit && lifetime > 0
}

// withoutCookie returns r with its Cookie removed, for a route that says
// the cookie does not change its answers: removed before the origin sees
// it, that is true, whatever the origin does. r itself is not modified.
func withoutCookie(r *http.Request) *http.Request {
	if _, ok := r.Header["Cookie"]; !ok {
		return r
	}
	c := new(http.Request)
	*c = *r
	c.Header = r.Header.Clone()
	delete(c.Header, "Cookie")
	return c
}
