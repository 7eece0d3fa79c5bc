package proxy

import (
	"net/http"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Conditional requests (RFC 9110 §13, RFC 9111 §4.3): validating a stored
// response with the origin, and answering a client's own conditionals.

// setValidators makes out a conditional request for the stored response
// whose headers are stored (RFC 9111 §4.3.1).
func setValidators(out http.Header, stored fields) {
	if etag := stored.Get("Etag"); etag != "" {
		out.Set("If-None-Match", etag)
	}
	if lm := stored.Get("Last-Modified"); lm != "" {
		out.Set("If-Modified-Since", lm)
	}
}

// freshen returns a copy of stale updated by a 304 response to a
// conditional request (RFC 9111 §4.3.4), and the storability of the
// updated response as decide sees it (the 304 answered this request, with
// its credentials); or nil if the 304 does not select it (its strong
// validator differs).
func (x *exchange) freshen(stale *tiers.Entry, o originReply) (*tiers.Entry, policy) {
	resp := o.resp
	if etag := resp.Header.Get("Etag"); etag != "" && etag != stale.Header.Get("Etag") && !weakEqual(etag, stale.Header.Get("Etag")) {
		return nil, policy{}
	}
	respTime := x.h.o.Now()
	hdr := stale.Header.Clone()
	for k, v := range resp.Header {
		switch k {
		case "Content-Length", "Set-Cookie", "Age", "X-Cache", "Cache-Status":
			continue
		case "Content-Encoding", "Vary":
			// The stored body's own: the proxy may have compressed
			// it (compress.go), which the origin does not know.
			if _, ok := hdr[k]; ok {
				continue
			}
		case "Etag":
			if len(v) > 0 && weakEqual(v[0], stale.Header.Get("Etag")) {
				continue // keep the stored form: weak if transformed
			}
		}
		hdr[k] = v
	}
	pol := decide(x.storeRule(o.out), stale.Status, hdr)
	e := *stale
	e.Header = tiers.MakeHeader(hdr)
	e.StoredAt = tiers.At(respTime)
	e.InitialAge = initialAge(resp.Header, o.reqTime, respTime)
	e.Lifetime = pol.lifetime
	// Stored anew: under the configuration of now, as newEntry.
	extra := stale.Extra()
	extra.StaleWhileRevalidate, extra.StaleIfError = x.h.configuredStale(x.rt)
	if tags := x.h.parseTags(resp.Header); tags != nil {
		extra.Tags = tags // the 304 names them anew
	}
	e.SetExtra(extra)
	x.h.removeTagHeaders(hdr)
	e.SoftPurged = false // the origin confirmed it: fresh again
	e.Seq = o.seq
	return e.Packed(), pol
}

// notModified evaluates the request's If-None-Match, or if absent its
// If-Modified-Since, against a stored 200 response (RFC 9110 §13.2.2).
func notModified(r *http.Request, stored tiers.Header) bool {
	if inm := r.Header["If-None-Match"]; len(inm) > 0 {
		etag := stored.Get("Etag")
		if etag == "" {
			return false
		}
		for _, line := range inm {
			for _, t := range strings.Split(line, ",") {
				t = strings.TrimSpace(t)
				if t == "*" || weakEqual(t, etag) {
					return true
				}
			}
		}
		return false
	}
	ims := r.Header["If-Modified-Since"]
	if len(ims) == 0 {
		return false
	}
	since, err := http.ParseTime(ims[0])
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(stored.Get("Last-Modified"))
	if err != nil {
		// RFC 9111 §4.3.2: without Last-Modified, use Date.
		if lm, err = http.ParseTime(stored.Get("Date")); err != nil {
			return false
		}
	}
	return !lm.After(since)
}

// weakEqual compares two entity tags with the weak comparison function.
func weakEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}
