package proxy

import "strings"

// Covers reports whether rt, placed before later in the routes, matches
// every request path later matches, so that later never applies. It is
// conservative: when it cannot tell, it says false. It knows that a
// prefix covers the prefixes and globs that start with it, that a glob
// "/a/**" is the prefix "/a/", and that a pattern covers itself. A bypass
// route also matches paths whatever their case (see route): a later
// bypass route is covered only by an earlier bypass route.
func (rt Route) Covers(later Route) bool {
	a, b := rt.Path, later.Path
	if later.Bypass {
		if !rt.Bypass {
			return false
		}
		a, b = strings.ToLower(a), strings.ToLower(b)
	}
	if a == b {
		return true
	}
	if isGlob(a) {
		base, deep := strings.CutSuffix(a, "/**")
		if !deep || isGlob(base) || strings.ContainsRune(base, '\\') {
			return false
		}
		a = base + "/" // "/a/**" matches the paths under "/a/"
	}
	// Every path later matches starts with the literal part of its
	// pattern, up to its first wildcard or escape.
	lit := b
	if i := strings.IndexAny(b, `*?[\`); i >= 0 {
		lit = b[:i]
	}
	return strings.HasPrefix(lit, a)
}
