package proxy

// Stats is a snapshot of a Handler's counters since it was created.
type Stats struct {
	// Requests counts client requests by X-Cache result:
	// "HIT-L1", "HIT-L2", "MISS", "BYPASS", "STALE", "REVALIDATED".
	Requests map[string]int64 `json:"requests"`
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
