package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Freshness and reuse (RFC 9111 §4): whether a stored response may answer
// a request now, how long it stays fresh, how long past that it is kept,
// and when it may be served stale.

// use says whether a stored entry may answer a request.
type use int

const (
	usable    use = iota // fresh enough, or stale as the request allows
	stored               // stale: usable only after revalidation
	forbidden            // not for this request at all
	purged               // killed by a purge since its fill (judge)
)

// usability decides whether e may answer r at now: a request with
// Authorization gets only responses that say a shared cache may serve
// them (RFC 9111 §3.5); otherwise e must be fresh enough for the
// request's directives, or stale within its max-stale (RFC 9111 §4.2.4).
// (Whether its coding suits the request is deliveryOf's word: see judge.)
func usability(e *tiers.Entry, r *http.Request, reqCC cacheControl, now time.Time) use {
	if _, auth := r.Header["Authorization"]; auth && !answersAuthorized(e) {
		return forbidden
	}
	age := e.Age(now)
	remaining := e.Lifetime - age
	if reqCC.maxAge >= 0 && age > time.Duration(reqCC.maxAge)*time.Second {
		return stored
	}
	if reqCC.minFresh >= 0 && remaining < time.Duration(reqCC.minFresh)*time.Second {
		return stored
	}
	if remaining > 0 {
		return usable
	}
	if reqCC.maxStale < 0 || !mayServeStale(e) {
		return stored
	}
	if reqCC.maxStale == unlimited || -remaining <= time.Duration(reqCC.maxStale)*time.Second {
		return usable
	}
	return stored
}

// authorizationShareable reports whether a response says a shared cache
// may use it for a request with Authorization (RFC 9111 §3.5).
func authorizationShareable(cc cacheControl) bool {
	return cc.public || cc.sMaxAge >= 0 || cc.mustRevalidate
}

// answersAuthorized reports whether stored e may answer a request with
// Authorization (RFC 9111 §3.5), whoever it was fetched for.
func answersAuthorized(e *tiers.Entry) bool {
	return authorizationShareable(parseCacheControl(e.Header))
}

// revalidateKeep is how long past its freshness a response with a
// validator (ETag or Last-Modified) is kept, so that it can be
// revalidated with a conditional request rather than fetched again.
const revalidateKeep = 10 * time.Minute

// staleWindows returns e's stale-while-revalidate and stale-if-error
// windows (RFC 5861): those its Cache-Control states, else those the
// configuration recorded on it when it was stored (a route's, or the
// defaults). Zero or less: none. Every question about serving e stale
// reads them here.
func staleWindows(e *tiers.Entry) (swr, sie time.Duration) {
	cc, _ := responseCacheControl(e.Header)
	swr, sie = e.StaleWindows()
	if cc.staleWhileRevalidate >= 0 {
		swr = time.Duration(cc.staleWhileRevalidate) * time.Second
	}
	if cc.staleIfError >= 0 {
		sie = time.Duration(cc.staleIfError) * time.Second
	}
	return swr, sie
}

// retention returns how long past its freshness lifetime e is kept in the
// tiers: long enough for its stale-while-revalidate and stale-if-error
// windows (staleWindows), and for revalidation if it has a validator. An
// entry with none of these is dropped when it goes stale.
func retention(e *tiers.Entry) time.Duration {
	swr, sie := staleWindows(e)
	keep := max(swr, sie, 0)
	if hasValidator(e.Header) && keep < revalidateKeep {
		keep = revalidateKeep
	}
	return keep
}

// mayServeStale reports whether e may ever be served stale without
// revalidation (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10).
func mayServeStale(e *tiers.Entry) bool {
	cc, _ := responseCacheControl(e.Header)
	return !cc.mustRevalidate && !cc.proxyRevalidate && !cc.noCache && cc.sMaxAge < 0
}

// staleWhileRevalidate reports whether stale e may be served while it is
// revalidated in the background (RFC 5861 §3).
func staleWhileRevalidate(e *tiers.Entry, now time.Time) bool {
	if e.SoftPurged {
		// Named by a soft purge while fresh (judge): served stale while
		// it is revalidated, unless it may never be served stale.
		return mayServeStale(e)
	}
	swr, _ := staleWindows(e)
	if swr <= 0 || !mayServeStale(e) {
		return false
	}
	return -e.Remaining(now) <= swr
}

// staleIfError reports whether stale e may be served because the origin
// failed: the response or the request allows it (RFC 5861 §4), and the
// response does not forbid serving it stale.
func staleIfError(e *tiers.Entry, reqCC cacheControl, now time.Time) bool {
	if !mayServeStale(e) {
		return false
	}
	_, limit := staleWindows(e)
	limit = max(limit, time.Duration(reqCC.staleIfError)*time.Second)
	if limit <= 0 {
		return false
	}
	return -e.Remaining(now) <= limit
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
