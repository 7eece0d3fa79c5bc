// Package tiers is the vocabulary shared by the cache tiers: the immutable
// Entry that every tier stores, its compact versioned binary encoding, and
// the Redis-free rules about how long an entry may live in each tier.
//
// The tiers themselves live in subpackages: tiers/local (in-process,
// ristretto) and tiers/shared (Redis). Neither is imported from here.
package tiers

import (
	"net/http"
	"time"
)

// Kind says what an Entry holds.
type Kind uint8

const (
	// KindResponse is a stored response: status, headers and body.
	KindResponse Kind = 1
	// KindVary is a marker stored under a URL's base key when the
	// response varies: it lists the request headers (Vary) whose values
	// select the variant key under which the response itself is stored.
	KindVary Kind = 2
)

// Entry is one stored response, or a Vary marker.
//
// An Entry is an immutable snapshot: once built and handed to a tier it is
// never modified, so it may be shared by any number of goroutines and
// responses. Header value slices and Body may be served as they are; they
// must never be appended to or written.
type Entry struct {
	Kind   Kind
	Status int

	// Header holds the stored response headers, without hop-by-hop
	// headers, Set-Cookie or Age.
	Header http.Header
	Body   []byte

	// StoredAt is when the response was received from the origin
	// (response_time in RFC 9111 §4.2.3).
	StoredAt time.Time
	// InitialAge is the corrected initial age at StoredAt
	// (corrected_initial_age in RFC 9111 §4.2.3).
	InitialAge time.Duration
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1).
	Lifetime time.Duration

	// Vary lists the canonical names of the request headers the
	// response varies on. For a KindVary marker it is the list that
	// selects the variant.
	Vary []string
	// URL is the normalised path and query the entry was stored for.
	URL string
	// Tags are the surrogate keys the origin gave the response
	// (Cache-Tag, Surrogate-Key).
	Tags []string
	// Seq is the purge sequence number the filling instance knew when
	// the fill started. An entry is dead if any purge with a larger
	// sequence number matches it.
	Seq uint64
}

// Age returns the current age of e at now (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	resident := now.Sub(e.StoredAt)
	if resident < 0 {
		resident = 0
	}
	return e.InitialAge + resident
}

// Remaining returns how much longer e stays fresh at now. It is zero or
// negative once e is stale.
func (e *Entry) Remaining(now time.Time) time.Duration {
	return e.Lifetime - e.Age(now)
}

// Fresh reports whether e is still fresh at now.
func (e *Entry) Fresh(now time.Time) bool {
	return e.Remaining(now) > 0
}

// Size returns an upper bound, within a few dozen bytes, of the length of
// e's encoding. It is the cost of e in a memory-bounded tier.
func (e *Entry) Size() int {
	return encodedSize(e)
}

// MemSize returns an estimate of the heap bytes e occupies once decoded:
// its encoded size plus the overhead of the struct, the header map and
// the slice and string headers. It is the cost of e in a memory-bounded
// in-process tier, so that the bound holds for the memory really used.
func (e *Entry) MemSize() int {
	const (
		structBytes   = 256 // Entry, its pointer in the cache, the cache's item
		perHeader     = 96  // map slot, key string header, value slice header
		perValue      = 16  // value string header
		perListString = 16  // Vary and Tags string headers
	)
	n := structBytes + encodedSize(e) + perListString*(len(e.Vary)+len(e.Tags))
	for _, vs := range e.Header {
		n += perHeader + perValue*len(vs)
	}
	return n
}
