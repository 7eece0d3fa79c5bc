package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// cacheControl holds the directives of Cache-Control fields (RFC 9111 §5.2)
// that this cache acts on. A delta-seconds value of -1 means absent.
type cacheControl struct {
	noStore, noCache, private, public  bool
	mustRevalidate, proxyRevalidate    bool
	onlyIfCached, mustUnderstand       bool
	maxAge, sMaxAge, minFresh          int64
	maxStale                           int64 // -1 absent, maxInt64 for "max-stale" without value
	staleWhileRevalidate, staleIfError int64
	noCacheFields                      bool // no-cache="field,...": not stored (the fields are not stripped)
	invalidMaxAge, invalidSMaxAge      bool
}

const unlimited = int64(1<<63 - 1)

// noDirectives returns the cacheControl of a message without any.
func noDirectives() cacheControl {
	return cacheControl{maxAge: -1, sMaxAge: -1, minFresh: -1, maxStale: -1,
		staleWhileRevalidate: -1, staleIfError: -1}
}

// parseCacheControl parses every Cache-Control field line of h. Unknown
// directives are ignored; a directive's argument may be quoted.
func parseCacheControl(h fields) cacheControl {
	cc := noDirectives()
	for _, line := range h.Values("Cache-Control") {
		for _, d := range splitDirectives(line) {
			name, arg, hasArg := strings.Cut(d, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			if cc.setFlag(name) {
				// A qualified private="field" is treated as private
				// (RFC 9111 §5.2.2.7 allows it); a qualified no-cache
				// is remembered, since it is stored differently.
				if name == "no-cache" && hasArg && arg != "" {
					cc.noCacheFields = true
				}
				continue
			}
			switch name {
			case "max-age":
				cc.maxAge = firstDelta(cc.maxAge, arg, &cc.invalidMaxAge)
			case "s-maxage":
				cc.sMaxAge = firstDelta(cc.sMaxAge, arg, &cc.invalidSMaxAge)
			case "min-fresh":
				cc.minFresh = firstDelta(cc.minFresh, arg, new(bool))
			case "max-stale":
				if !hasArg {
					cc.maxStale = unlimited
				} else {
					cc.maxStale = firstDelta(cc.maxStale, arg, new(bool))
				}
			case "stale-while-revalidate":
				cc.staleWhileRevalidate = firstDelta(cc.staleWhileRevalidate, arg, new(bool))
			case "stale-if-error":
				cc.staleIfError = firstDelta(cc.staleIfError, arg, new(bool))
			}
		}
	}
	return cc
}

// setFlag sets the directive name if it is one without an argument (or
// whose argument this cache does not need), and reports whether it was.
func (cc *cacheControl) setFlag(name string) bool {
	switch name {
	case "no-store":
		cc.noStore = true
	case "no-cache":
		cc.noCache = true
	case "private":
		cc.private = true
	case "public":
		cc.public = true
	case "must-revalidate":
		cc.mustRevalidate = true
	case "proxy-revalidate":
		cc.proxyRevalidate = true
	case "only-if-cached":
		cc.onlyIfCached = true
	case "must-understand":
		cc.mustUnderstand = true
	default:
		return false
	}
	return true
}

// firstDelta parses a delta-seconds argument (RFC 9111 §1.2.2). The first
// occurrence of a directive wins; an invalid value sets *invalid.
func firstDelta(cur int64, arg string, invalid *bool) int64 {
	if cur >= 0 {
		return cur
	}
	if arg == "" {
		*invalid = true
		return -1
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] < '0' || arg[i] > '9' {
			*invalid = true
			return -1
		}
	}
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n > 1<<31 {
		// The RFC says to treat a larger delta as 2^31 seconds.
		return 1 << 31
	}
	return n
}

// splitDirectives splits a Cache-Control field line on commas that are not
// inside a quoted string.
func splitDirectives(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

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

// heuristicLifetime returns the heuristic freshness (RFC 9111 §4.2.2) of a
// response without explicit freshness, at most limit: a tenth of the time
// since its Last-Modified, or limit for a response with only an ETag. A
// response with neither has nothing to base a heuristic on, and nothing to
// revalidate with: it gets none, and is not stored.
func heuristicLifetime(h http.Header, limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	if lm, err := parseHTTPDate(h.Get("Last-Modified")); err == nil {
		date, err := parseHTTPDate(h.Get("Date"))
		if err != nil || !date.After(lm) {
			return 0
		}
		return min(date.Sub(lm)/10, limit)
	}
	if h.Get("Etag") != "" {
		return limit
	}
	return 0
}

func varyStar(h http.Header) bool {
	_, star := parseVary(h)
	return star
}

// explicitLifetime returns the freshness lifetime a response states
// (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires minus Date.
// An invalid Expires means already expired.
func explicitLifetime(cc cacheControl, h http.Header, targeted bool) (time.Duration, bool) {
	switch {
	case cc.sMaxAge >= 0:
		return time.Duration(cc.sMaxAge) * time.Second, true
	case cc.invalidSMaxAge:
		return 0, true
	case cc.maxAge >= 0:
		return time.Duration(cc.maxAge) * time.Second, true
	case cc.invalidMaxAge:
		return 0, true
	}
	exp, ok := h["Expires"]
	if !ok || targeted {
		return 0, false
	}
	if len(exp) != 1 {
		return 0, true
	}
	expires, err := parseHTTPDate(exp[0])
	if err != nil {
		return 0, true
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		// No usable Date: the caller substitutes the response time.
		return time.Until(expires), true
	}
	return expires.Sub(date), true
}

// initialAge returns corrected_initial_age (RFC 9111 §4.2.3) for a response
// requested at reqTime and received at respTime.
func initialAge(h http.Header, reqTime, respTime time.Time) time.Duration {
	var apparent time.Duration
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		if d := respTime.Sub(date); d > 0 {
			apparent = d
		}
	}
	var ageValue time.Duration
	if a := h.Get("Age"); a != "" {
		a, _, _ = strings.Cut(a, ",")
		if n, err := strconv.ParseUint(strings.TrimSpace(a), 10, 64); err == nil {
			// RFC 9111 §1.2.2: too large a delta means 2^31 seconds.
			ageValue = time.Duration(min(n, 1<<31)) * time.Second
		} else if errors.Is(err, strconv.ErrRange) {
			ageValue = (1 << 31) * time.Second
		}
	}
	corrected := ageValue + respTime.Sub(reqTime)
	if apparent > corrected {
		return apparent
	}
	return corrected
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) strictly: the fixed
// layouts only (Go's http.ParseTime accepts 1-digit hours and runs of
// spaces); the names are matched case-insensitively.
func parseHTTPDate(v string) (time.Time, error) {
	for _, layout := range []string{"Mon, 02 Jan 2006 15:04:05 GMT", "Monday, 02-Jan-06 15:04:05 GMT", time.ANSIC} {
		s := v
		if layout != time.ANSIC && len(s) > 3 && strings.EqualFold(s[len(s)-3:], "GMT") {
			s = s[:len(s)-3] + "GMT"
		}
		t, err := time.Parse(layout, s)
		if err == nil && sameAfterWeekday(t.Format(layout), s) {
			return t, nil
		}
	}
	return time.Time{}, errors.New("invalid HTTP-date")
}

// responseCacheControl returns the directives that govern this cache:
// those of CDN-Cache-Control (RFC 9213) if present and valid, else
// Cache-Control.
func responseCacheControl(h fields) (cacheControl, bool) {
	if v := h.Values("Cdn-Cache-Control"); v != nil {
		if cc, ok := parseTargeted(strings.Join(v, ",")); ok {
			return cc, true
		}
	}
	return parseCacheControl(h), false
}

// parseTargeted parses a targeted cache-control field as an sf-dictionary
// (RFC 8941 §4.2.2), reduced to the members this cache acts on.
func parseTargeted(v string) (cacheControl, bool) {
	cc := noDirectives()
	for _, m := range strings.Split(v, ",") {
		m = strings.Trim(m, " \t")
		key, val, hasVal := strings.Cut(m, "=")
		key, _, _ = strings.Cut(key, ";")
		if key == "" || !(key[0] == '*' || key[0] >= 'a' && key[0] <= 'z') ||
			strings.IndexFunc(key, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.*", r))
			}) >= 0 {
			return cc, false
		}
		val, _, _ = strings.Cut(val, ";")
		num := int64(-1)
		if hasVal {
			if val == "" {
				return cc, false
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err == nil && n >= 0 {
				num = n
			} else if val[0] == '"' || val[0] >= '0' && val[0] <= '9' || val[0] == '-' {
				num = -2 // a string or non-integer: wrong type for delta directives
			}
		}
		if cc.setFlag(key) {
			continue
		}
		switch key {
		case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
			if num < 0 {
				return cc, false
			}
			num = min(num, 1<<31)
			switch key {
			case "max-age":
				cc.maxAge = num
			case "s-maxage":
				cc.sMaxAge = num
			case "stale-while-revalidate":
				cc.staleWhileRevalidate = num
			default:
				cc.staleIfError = num
			}
		}
	}
	return cc, true
}

// sameAfterWeekday compares two dates case-insensitively, ignoring the
// day-name (which time.Parse does not check either).
func sameAfterWeekday(a, b string) bool {
	_, a, _ = strings.Cut(a, " ")
	_, b, _ = strings.Cut(b, " ")
	return strings.EqualFold(a, b)
}
