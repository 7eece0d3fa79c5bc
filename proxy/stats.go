package proxy

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Stats is a snapshot of a Handler's counters since it was created.
type Stats struct {
	// Requests counts client requests by X-Cache result: "HIT-L1",
	// "HIT-L2", "STALE", "REVALIDATED" (answered from the cache), "MISS"
	// (fetched and stored), "PASS" (fetched, not storable), "BYPASS" (not
	// looked up).
	Requests map[string]int64 `json:"requests"`
	// HitRatio is the share of the cacheable traffic answered from the
	// cache: HIT-L1, HIT-L2, STALE and REVALIDATED, of those and MISS.
	// PASS and BYPASS are not the cache's to answer.
	HitRatio float64 `json:"hit_ratio"`
	// HitRatioAll is the share of all requests answered from the cache.
	HitRatioAll float64 `json:"hit_ratio_all"`
	// OriginRequests counts requests sent to the origin.
	OriginRequests int64 `json:"origin_requests"`
	// OriginErrors counts origin requests that failed (no response).
	OriginErrors int64 `json:"origin_errors"`
	// Collapsed counts requests answered by another request's fill.
	Collapsed int64 `json:"collapsed"`
	// FleetCollapsed counts fills answered by another instance's fill
	// (its fill lease) rather than by the origin.
	FleetCollapsed int64 `json:"fleet_collapsed"`
	// OriginHeld counts fills not sent to the origin because their key's
	// fetches were failing (Options.OriginBackoff): each was answered
	// with its stale copy (Cache-Status detail origin-backoff).
	OriginHeld int64 `json:"origin_held"`
	// OriginBackoffKeys is how many keys this instance holds back from
	// the origin now.
	OriginBackoffKeys int `json:"origin_backoff_keys"`
	// Stored counts entries written to the tiers.
	Stored int64 `json:"stored"`
	// SharedErrors counts failed calls to the shared tier.
	SharedErrors int64 `json:"shared_errors"`
	// OriginUp is false after the last origin request failed to get
	// any response, true after one succeeded.
	OriginUp bool `json:"origin_up"`
	// OriginLastError is the last origin failure, if any.
	OriginLastError string `json:"origin_last_error,omitempty"`
}

// HitRatios returns, for requests counted by X-Cache result as in
// Stats.Requests, the share of the cacheable traffic answered from the
// cache and the share of all traffic; ok is false before the first
// cacheable request.
func HitRatios(requests map[string]int64) (cacheable, all float64, ok bool) {
	hits := requests["HIT-L1"] + requests["HIT-L2"] + requests["STALE"] + requests["REVALIDATED"]
	var total int64
	for _, n := range requests {
		total += n
	}
	if n := hits + requests["MISS"]; n > 0 {
		cacheable, ok = float64(hits)/float64(n), true
	}
	if total > 0 {
		all = float64(hits) / float64(total)
	}
	return cacheable, all, ok
}

// Trace collects, for one request, what an access log needs from inside
// the proxy. Attach one with WithTrace; the Handler fills it in.
type Trace struct {
	mu     sync.Mutex
	origin time.Duration
}

// OriginDuration returns the time the request's own fills spent waiting
// for the origin.
func (t *Trace) OriginDuration() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.origin
}

func (t *Trace) addOrigin(d time.Duration) {
	t.mu.Lock()
	t.origin += d
	t.mu.Unlock()
}

type traceKey struct{}

// WithTrace returns ctx carrying a new Trace, for a request served by a
// Handler.
func WithTrace(ctx context.Context) (context.Context, *Trace) {
	t := new(Trace)
	return context.WithValue(ctx, traceKey{}, t), t
}

// traceOf returns the Trace of r, or nil.
func traceOf(r *http.Request) *Trace {
	t, _ := r.Context().Value(traceKey{}).(*Trace)
	return t
}
