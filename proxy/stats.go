package proxy

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
