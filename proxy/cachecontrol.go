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
	noTransform                        bool // no-transform: no intermediary may change the content (RFC 9110 §7.7)
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
	case "no-transform":
		cc.noTransform = true
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

// requestCacheControl parses a request's cache directives; a request with
// Pragma: no-cache and no Cache-Control is treated as no-cache
// (RFC 9111 §5.4).
func requestCacheControl(hdr http.Header) cacheControl {
	// Most requests have no Cache-Control: look it up as net/http stores
	// it rather than have Values canonicalize the name on every request.
	if _, ok := hdr["Cache-Control"]; ok {
		return parseCacheControl(hdr)
	}
	cc := noDirectives()
	for _, p := range hdr["Pragma"] {
		if strings.Contains(strings.ToLower(p), "no-cache") {
			cc.noCache = true
		}
	}
	return cc
}

// wantsOrigin reports whether a request's directives ask for the origin's
// word on what is stored (no-cache, Pragma: no-cache, max-age=0): it is
// revalidated, not served (RFC 9111 §5.2.1.4).
func (cc cacheControl) wantsOrigin() bool { return cc.noCache || cc.maxAge == 0 }
