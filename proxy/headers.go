package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1), removed from
// requests and responses that cross the proxy, and never stored.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// fields reads a response's header fields: an http.Header for a response
// from the origin, a tiers.Header for a stored one.
type fields interface {
	Get(name string) string
	Values(name string) []string
}

// removeHopHeaders deletes hop-by-hop headers from h, including those
// named by its Connection fields.
func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// storedHeader returns the headers of an origin response as they are
// stored: without hop-by-hop headers, Set-Cookie and Age, and with
// Content-Length set to the stored body's length.
func storedHeader(h http.Header, bodyLen int) http.Header {
	out := h.Clone()
	if out == nil {
		out = make(http.Header)
	}
	removeHopHeaders(out)
	out.Del("Set-Cookie")
	out.Del("Age")
	out.Del("X-Cache")
	out["Content-Length"] = []string{strconv.Itoa(bodyLen)}
	return out
}

// X-Cache values, allocated once: header values are shared between
// responses and never modified.
var (
	xHitL1  = []string{"HIT-L1"}
	xHitL2  = []string{"HIT-L2"}
	xMiss   = []string{"MISS"}
	xBypass = []string{"BYPASS"}
	// xStale marks a stale response served under stale-while-revalidate
	// or stale-if-error; xRevalidated one the origin confirmed with a
	// 304. nginx's $upstream_cache_status uses the same words.
	xStale       = []string{"STALE"}
	xRevalidated = []string{"REVALIDATED"}
)

// cacheStatus builds the values of the Cache-Status header (RFC 9211) for
// the cache named name. Hit values are built once; a hit allocates none.
type cacheStatus struct {
	name              string
	hitL1, hitL2      []string
	bypass            []string
	staleRevalidating []string // served stale, refreshed in the background
	staleOnError      []string // served stale, the origin failed
}

func newCacheStatus(name string) *cacheStatus {
	return &cacheStatus{
		name:              name,
		hitL1:             []string{name + "; hit; detail=l1"},
		hitL2:             []string{name + "; hit; detail=l2"},
		bypass:            []string{name + "; fwd=bypass"},
		staleRevalidating: []string{name + "; hit; detail=stale-while-revalidate"},
		staleOnError:      []string{name + "; fwd=stale; detail=stale-if-error"},
	}
}

// forward returns the Cache-Status of a response that was forwarded to
// the origin for the reason fwd (uri-miss, vary-miss, stale, request,
// miss), with the origin's status and whether it was stored or shared
// with another request's fill.
func (c *cacheStatus) forward(fwd string, status int, stored, collapsed bool) []string {
	s := c.name + "; fwd=" + fwd
	if status != 0 {
		s += "; fwd-status=" + strconv.Itoa(status)
	}
	if stored {
		s += "; stored"
	}
	if collapsed {
		s += "; collapsed"
	}
	return []string{s}
}

// ageValues caches the Age header values for the first ages in seconds,
// so that a hit on a young entry allocates nothing for its Age.
var ageValues = func() [][]string {
	v := make([][]string, 3600)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

// ageHeader returns the Age header value for age (RFC 9111 §5.1).
func ageHeader(age time.Duration) []string {
	s := int64(age / time.Second)
	if s < 0 {
		s = 0
	}
	if s < int64(len(ageValues)) {
		return ageValues[s]
	}
	return []string{strconv.FormatInt(s, 10)}
}
