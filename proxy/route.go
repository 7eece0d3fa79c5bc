package proxy

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// routing is the route decision for a request's path.
type routing struct {
	rt *Route // the route that applies, or nil
	// ambiguous says the readings of the path disagree on a route that
	// changes what is stored: the request is passed through, not cached.
	ambiguous bool
}

// route decides the route of the canonical path p for every reading an
// origin may make of it (pathReadings): a bypass route applies when it is
// any reading's match; any other route applies only when it is every
// reading's match. When the readings disagree, the decision is
// ambiguous.
func (s *settings) route(p string) routing {
	if len(s.routes) == 0 {
		return routing{}
	}
	var buf [3]string
	readings := pathReadings(p, buf[:0])
	first := s.match(readings[0])
	agree := true
	for _, rp := range readings[1:] {
		rt := s.match(rp)
		if rt != nil && rt.Bypass {
			return routing{rt: rt}
		}
		agree = agree && rt == first
	}
	if !agree && (first == nil || !first.Bypass) {
		return routing{ambiguous: true}
	}
	return routing{rt: first}
}

// match returns the first route matching path rp, a bypass route
// matching it whatever the case of either (an origin may read paths
// without regard to case, and a bypass must not be evaded by spelling).
func (s *settings) match(rp string) *Route {
	var lower string
	for i := range s.routes {
		rt := &s.routes[i]
		if routeMatch(rt.Path, rp) {
			return rt
		}
		if rt.Bypass {
			if lower == "" {
				lower = strings.ToLower(rp)
			}
			if routeMatch(strings.ToLower(rt.Path), lower) {
				return rt
			}
		}
	}
	return nil
}

// pathReadings appends to buf the readings an origin may make of the
// canonical path p, whose dot segments are already removed: p as sent
// (origins that decode nothing); p with its escapes decoded but its dot
// segments kept (WSGI, Django: "%2F" is a "/", and "/a/../b" names a page
// under "/a/"); and p decoded with dot segments removed, backslashes read
// as "/" and runs of "/" merged (routePath: nginx, many routers). A plain
// path has one reading.
func pathReadings(p string, buf []string) []string {
	buf = append(buf, p)
	rp := routePath(p)
	if rp == p {
		return buf
	}
	if strings.Contains(p, "%") {
		if d, err := url.PathUnescape(p); err == nil && d != p && d != rp {
			buf = append(buf, d)
		}
	}
	return append(buf, rp)
}

// Validate reports what is wrong with a route, if anything.
func (rt Route) Validate() error {
	if rt.Path == "" || rt.Path[0] != '/' {
		return fmt.Errorf("path %q must start with \"/\"", rt.Path)
	}
	if isGlob(rt.Path) {
		if _, err := path.Match(strings.TrimSuffix(rt.Path, "/**"), "/"); err != nil {
			return fmt.Errorf("path %q: %v", rt.Path, err)
		}
	}
	if rt.TTL < 0 {
		return errors.New("TTL must not be negative")
	}
	if rt.StaleIfError < 0 || rt.StaleWhileRevalidate < 0 {
		return errors.New("StaleIfError and StaleWhileRevalidate must not be negative")
	}
	if err := ValidateStatusTTL(rt.StatusTTL); err != nil {
		return fmt.Errorf("StatusTTL: %w", err)
	}
	if !rt.ClientNoCache.valid() {
		return fmt.Errorf("ClientNoCache %q: want honour, revalidate or ignore", rt.ClientNoCache)
	}
	for _, name := range rt.Credentials {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("Credentials: %q is not a header name", name)
		}
	}
	return nil
}

// ValidateStatusTTL reports whether m is a valid StatusTTL: statuses from
// 200 to 499 but 206 and 304, lifetimes above zero. A 5xx is refused: a
// stored error would replace the copy that stale-if-error serves.
func ValidateStatusTTL(m map[int]time.Duration) error {
	for code, d := range m {
		switch {
		case code < 200 || code > 499 || code == 206 || code == 304:
			return fmt.Errorf("status %d: want 200 to 499 but 206 and 304 (a stored 5xx would hide the stale copy stale-if-error serves)", code)
		case d <= 0:
			return fmt.Errorf("status %d: lifetime %v must be greater than 0", code, d)
		}
	}
	return nil
}

// clientNoCache returns the policy for a client's no-cache on route rt.
func (s *settings) clientNoCache(rt *Route) ClientNoCachePolicy {
	switch {
	case rt != nil && rt.ClientNoCache != NoCacheDefault:
		return rt.ClientNoCache
	case rt != nil && rt.Override:
		return NoCacheIgnore
	case s.noCachePolicy != NoCacheDefault:
		return s.noCachePolicy
	}
	return NoCacheHonour
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// routeMatch matches a request path against a route pattern: a prefix,
// or a path.Match glob where a trailing "/**" matches any depth.
func routeMatch(pattern, p string) bool {
	if !isGlob(pattern) {
		return strings.HasPrefix(p, pattern)
	}
	base, deep := strings.CutSuffix(pattern, "/**")
	if !deep {
		ok, _ := path.Match(pattern, p)
		return ok
	}
	// Match the leading segments against base.
	segs := strings.Count(base, "/")
	cut := p
	for i, n := 0, 0; i < len(p); i++ {
		if p[i] == '/' {
			if n++; n > segs {
				cut = p[:i]
				break
			}
		}
	}
	ok, _ := path.Match(base, cut)
	return ok && len(p) > len(cut)
}

// checkHost accepts a host name (or address), with an optional port.
func checkHost(hn string) error {
	if hn == "" || strings.ContainsAny(hn, "/?#@ \t") {
		return errors.New("want a host name such as api.example.com")
	}
	return nil
}

// same reports whether two routes are the same rule.
// Used when a reload keeps a route's counters; not on the request path.
func (rt Route) same(o Route) bool { return reflect.DeepEqual(rt, o) }

// expectsType reports whether the route stores a response of media type
// contentType: any, unless its pattern names a file extension the
// platform knows (see Route.AnyContentType), when the type must be one
// the extension names. A response without a Content-Type passes.
func (rt *Route) expectsType(contentType string) bool {
	if rt.AnyContentType || contentType == "" {
		return true
	}
	ext := routeExtension(rt.Path)
	if ext == "" {
		return true
	}
	want, _, _ := strings.Cut(mime.TypeByExtension(ext), ";")
	if want == "" {
		return true // an extension nobody maps: nothing to compare with
	}
	got, _, _ := strings.Cut(contentType, ";")
	got = strings.ToLower(strings.TrimSpace(got))
	if got == strings.ToLower(want) || sameKind(got, want) {
		return true
	}
	exts, _ := mime.ExtensionsByType(got)
	return slices.Contains(exts, ext)
}

// routeExtension returns the lower-cased file extension a route pattern
// ends in ("/assets/*.css" → ".css"), or "".
func routeExtension(pattern string) string {
	pattern = strings.TrimSuffix(pattern, "/**")
	last := pattern[strings.LastIndexByte(pattern, '/')+1:]
	ext := path.Ext(last)
	if ext == "" || strings.ContainsAny(ext, "*?[") {
		return ""
	}
	return strings.ToLower(ext)
}

// sameKind reports whether two media types name one kind of content under
// different registrations (text/javascript and application/javascript).
func sameKind(a, b string) bool {
	kind := func(t string) string {
		switch t {
		case "text/javascript", "application/javascript", "application/x-javascript", "application/ecmascript", "text/ecmascript":
			return "js"
		case "text/xml", "application/xml":
			return "xml"
		case "image/x-icon", "image/vnd.microsoft.icon":
			return "ico"
		}
		return t
	}
	return kind(a) == kind(b)
}

// configuredStale returns the stale windows the configuration gives
// responses on route rt (nil: none matched) that state none: the route's,
// else the Handler's.
func (h *Handler) configuredStale(rt *Route) (swr, sie time.Duration) {
	swr, sie = h.o.StaleWhileRevalidate, h.o.StaleIfError
	if rt != nil && rt.StaleWhileRevalidate > 0 {
		swr = rt.StaleWhileRevalidate
	}
	if rt != nil && rt.StaleIfError > 0 {
		sie = rt.StaleIfError
	}
	return swr, sie
}
