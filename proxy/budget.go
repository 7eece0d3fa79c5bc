package proxy

import "sync/atomic"

// budget bounds the bytes that the fills in flight, and the request
// bodies being buffered (Options.RequestBuffering), hold at once
// (Options.MaxInflightBytes). It is safe for concurrent use.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes and reports whether they were within the bound.
// Concurrent takes near the bound may both be refused: a refusal only
// means streaming.
func (b *budget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

// give returns n bytes taken earlier.
func (b *budget) give(n int64) {
	if n != 0 {
		b.used.Add(-n)
	}
}
