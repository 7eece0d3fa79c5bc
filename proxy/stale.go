package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// revalidateKeep is how long past its freshness a response with a
// validator (ETag or Last-Modified) is kept, so that it can be
// revalidated with a conditional request rather than fetched again.
const revalidateKeep = 10 * time.Minute

// retention returns how long past its freshness lifetime e is kept in the
// tiers: long enough for the stale-while-revalidate and stale-if-error
// windows it grants (RFC 5861), and for revalidation if it has a
// validator. An entry with none of these is dropped when it goes stale.
func retention(e *tiers.Entry) time.Duration {
	cc, _ := responseCacheControl(e.Header)
	var keep time.Duration
	if cc.staleWhileRevalidate > 0 {
		keep = time.Duration(cc.staleWhileRevalidate) * time.Second
	}
	if sie := time.Duration(cc.staleIfError) * time.Second; sie > keep {
		keep = sie
	}
	if hasValidator(e.Header) && keep < revalidateKeep {
		keep = revalidateKeep
	}
	return keep
}

func hasValidator(h fields) bool {
	return h.Get("Etag") != "" || h.Get("Last-Modified") != ""
}

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

// mayServeStale reports whether e may ever be served stale without
// revalidation (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10).
func mayServeStale(e *tiers.Entry) bool {
	cc, _ := responseCacheControl(e.Header)
	return !cc.mustRevalidate && !cc.proxyRevalidate && !cc.noCache && cc.sMaxAge < 0
}

// staleWhileRevalidate reports whether stale e may be served while it is
// revalidated in the background (RFC 5861 §3).
func staleWhileRevalidate(e *tiers.Entry, now time.Time) bool {
	cc, _ := responseCacheControl(e.Header)
	if cc.staleWhileRevalidate <= 0 || !mayServeStale(e) {
		return false
	}
	return -e.Remaining(now) <= time.Duration(cc.staleWhileRevalidate)*time.Second
}

// staleIfError reports whether stale e may be served because the origin
// failed: the response or the request allows it (RFC 5861 §4), and the
// response does not forbid serving it stale.
func staleIfError(e *tiers.Entry, reqCC cacheControl, now time.Time) bool {
	if !mayServeStale(e) {
		return false
	}
	ecc, _ := responseCacheControl(e.Header)
	limit := ecc.staleIfError
	if reqCC.staleIfError > limit {
		limit = reqCC.staleIfError
	}
	if limit <= 0 {
		return false
	}
	return -e.Remaining(now) <= time.Duration(limit)*time.Second
}

// freshen returns a copy of stale updated by a 304 response to a
// conditional request (RFC 9111 §4.3.4), or nil if the 304 does not
// select it (its strong validator differs).
func (h *Handler) freshen(stale *tiers.Entry, resp *http.Response, out *http.Request, reqCC cacheControl, rt *Route, reqTime time.Time, seq uint64) *tiers.Entry {
	if etag := resp.Header.Get("Etag"); etag != "" && etag != stale.Header.Get("Etag") && !weakEqual(etag, stale.Header.Get("Etag")) {
		return nil
	}
	respTime := h.now()
	hdr := stale.Header.Clone()
	for k, v := range resp.Header {
		switch k {
		case "Content-Length", "Set-Cookie", "Age", "X-Cache", "Cache-Status":
			continue
		}
		hdr[k] = v
	}
	pol := decide(out, reqCC, stale.Status, hdr, rt, h.defaultTTL)
	e := *stale
	e.Header = tiers.MakeHeader(hdr)
	e.StoredAt = respTime
	e.InitialAge = initialAge(resp.Header, reqTime, respTime)
	e.Lifetime = pol.lifetime
	e.Tags = parseTags(hdr)
	e.Seq = seq
	return e.Packed()
}

// refreshInBackground revalidates stale after it was served to r under
// stale-while-revalidate. The fill is shared with any concurrent miss.
func (h *Handler) refreshInBackground(r *http.Request, key string, rt *Route, stale *tiers.Entry) {
	bg := r.Clone(context.Background())
	go func() {
		if l, ok := h.shared.(revalidationLeaser); ok {
			// One background revalidation for the whole fleet: if
			// another instance holds the lease, it is refreshing.
			held, release, err := l.RevalidationLease(bg.Context(), key, leaseTTL)
			if err == nil && !held {
				return
			}
			if held {
				defer release()
			}
		}
		res, _, _ := h.flights.do(bg.Context(), key, h.fillTimeout, func(ctx context.Context) *fillResult {
			return h.fill(ctx, bg, key, rt, noDirectives(), sharedFull, stale)
		})
		if res != nil && res.stream != nil {
			// Nobody reads it: let go of the origin's connection.
			res.stream.close()
		}
	}()
}

// onlyIfCached answers a request with only-if-cached from the shared tier
// or with 504 (RFC 9111 §5.2.1.7); the local tier was already consulted.
func (h *Handler) onlyIfCached(w http.ResponseWriter, r *http.Request, key string, reqCC cacheControl) {
	if h.shared != nil {
		if e, _, _ := h.lookup(r.Context(), h.shared, key, r, reqCC, h.now()); e != nil {
			h.m.request("HIT-L2")
			h.writeEntry(w, r, e, xHitL2, h.status.hitL2, h.now())
			return
		}
	}
	h.m.request("MISS")
	w.Header()["X-Cache"] = xMiss
	w.Header()["Cache-Status"] = h.status.forward("miss", 0, false, false)
	w.WriteHeader(http.StatusGatewayTimeout)
}
