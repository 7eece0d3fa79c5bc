package proxy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// route returns the first route matching the canonical path p, or nil.
// Routes match the path with its escapes decoded, dot segments removed
// and slashes merged (see routePath); a bypass route also matches
// whatever the case of the path, since an origin may read paths without
// regard to case, and a bypass must not be evaded by spelling.
func (s *settings) route(p string) *Route {
	if len(s.routes) == 0 {
		return nil
	}
	rp := routePath(p)
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
	if !validClientNoCache(rt.ClientNoCache) {
		return fmt.Errorf("ClientNoCache %q: want honour, revalidate or ignore", rt.ClientNoCache)
	}
	return nil
}

func validClientNoCache(v string) bool {
	return v == "" || v == "honour" || v == "revalidate" || v == "ignore"
}

// clientNoCache returns the policy for a client's no-cache on route rt.
func (s *settings) clientNoCache(rt *Route) string {
	switch {
	case rt != nil && rt.ClientNoCache != "":
		return rt.ClientNoCache
	case rt != nil && rt.Override:
		return "ignore"
	case s.noCachePolicy != "":
		return s.noCachePolicy
	}
	return "honour"
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
