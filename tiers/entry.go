// Package tiers is the vocabulary shared by the cache tiers: the immutable
// Entry that every tier stores, its compact versioned binary encoding, and
// the Redis-free rules about how long an entry may live in each tier.
//
// The tiers themselves live in subpackages: tiers/local (in-process,
// ristretto) and tiers/shared (Redis). Neither is imported from here.
package tiers

import (
	"slices"
	"time"
	"unsafe"
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
// responses. Header values and the body may be served as they are; they
// must never be written.
//
// The body is read only through the entry (BodyLen, WriteBody,
// BodyReader, AppendBody) and set only with SetBody: a packed entry may
// hold it in two pieces (see Packed), and a reader of one piece would
// read it truncated. The pieces are unexported so that no code can.
type Entry struct {
	Kind Kind
	// split says the body (its head, if it has a tail) and the strings
	// are two allocations (Packed chose it to waste less to size-class
	// rounding), not one.
	split bool
	// SoftPurged marks a copy the proxy made of an entry a soft purge
	// named (Bans.Stale) while it was still fresh: stale from the time
	// it was judged, servable while it is revalidated. It is never set
	// on an entry stored in a tier, and never encoded. (It sits beside
	// Kind and split, in what would be padding: see entryBytes.)
	SoftPurged bool
	// Note is the holder's own tag on this copy, kept in memory only:
	// never encoded, and no part of the entry's meaning. (The proxy notes
	// there where its cacheability report counts the entry's URL.) It
	// sits in what would be padding: the Entry keeps its size class.
	Note   uint32
	Status int

	// Header holds the stored response headers, without hop-by-hop
	// headers, Set-Cookie or Age.
	Header Header
	// body is the body, or its head when tail is not empty; tail is the
	// rest, at the start of the strings' allocation (see Packed). Two
	// strings take 32 bytes where a []byte and a string would take 40:
	// the Entry keeps its 128-byte size class (TestEntryBytes).
	body, tail string

	// StoredAt is when the response was received from the origin
	// (response_time in RFC 9111 §4.2.3).
	StoredAt Instant
	// InitialAge is the corrected initial age at StoredAt
	// (corrected_initial_age in RFC 9111 §4.2.3).
	InitialAge time.Duration
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1).
	Lifetime time.Duration
	// URL is the normalised path and query the entry was stored for.
	URL string
	// x holds what most API responses do not have (see Extra); nil:
	// none of it.
	x *Extra
	// Seq is the purge sequence number the filling instance knew when
	// the fill started. An entry is dead if any purge with a larger
	// sequence number matches it.
	Seq uint64
}

// Instant is a time as Unix nanoseconds: 8 bytes where a time.Time
// takes 24 (wall clock, monotonic reading, location), for the time every
// entry records (StoredAt); with Extra, it keeps an Entry in the 128-byte
// size class. Times between the years 1678 and 2262 are represented.
type Instant int64

// At returns t as an Instant.
func At(t time.Time) Instant { return Instant(t.UnixNano()) }

// Time returns i as a time.Time, in the local time zone.
func (i Instant) Time() time.Time { return time.Unix(0, int64(i)) }

// Extra is the part of an entry that most responses an API cache stores
// do not have: a Vary list (an origin's Vary: Accept-Encoding alone is
// none, see the proxy's selectingHeaders), surrogate keys, stale windows
// granted by configuration. An Entry holds it behind a pointer, nil when
// it is all zero: 8 bytes of the Entry where these fields took 64 (on a
// 64 MiB L1 of 2 KiB JSON pages, 2% more pages).
type Extra struct {
	// Vary lists the canonical names of the request headers the
	// response varies on. For a KindVary marker it is the list that
	// selects the variant.
	Vary []string
	// Tags are the surrogate keys the origin gave the response
	// (Cache-Tag, Surrogate-Key).
	Tags []string
	// StaleIfError and StaleWhileRevalidate are the stale windows (RFC
	// 5861) the cache's configuration granted the response when it was
	// stored, because the response stated none of its own; zero: none.
	// A window the response states in its Cache-Control applies instead.
	// Recorded on the entry, they are the same for every instance that
	// reads it, whatever its configuration.
	StaleIfError, StaleWhileRevalidate time.Duration
}

// zero reports whether x holds nothing.
func (x Extra) zero() bool {
	return len(x.Vary) == 0 && len(x.Tags) == 0 && x.StaleIfError == 0 && x.StaleWhileRevalidate == 0
}

// Extra returns e's extra part (the zero Extra if it has none). Its
// slices are e's: they must not be written.
func (e *Entry) Extra() Extra {
	if e.x == nil {
		return Extra{}
	}
	return *e.x
}

// SetExtra sets e's extra part to x. It is for building an entry, before
// it is handed to anyone: it never writes the Extra e held before (which
// a copy of e may share), it replaces it.
func (e *Entry) SetExtra(x Extra) {
	if x.zero() {
		e.x = nil
		return
	}
	e.x = &x
}

// Vary returns the request headers e varies on (see Extra.Vary).
func (e *Entry) Vary() []string {
	if e.x == nil {
		return nil
	}
	return e.x.Vary
}

// Tags returns e's surrogate keys (see Extra.Tags).
func (e *Entry) Tags() []string {
	if e.x == nil {
		return nil
	}
	return e.x.Tags
}

// StaleWindows returns the stale-while-revalidate and stale-if-error
// windows configuration granted e (see Extra).
func (e *Entry) StaleWindows() (swr, sie time.Duration) {
	if e.x == nil {
		return 0, 0
	}
	return e.x.StaleWhileRevalidate, e.x.StaleIfError
}

// Age returns the current age of e at now (RFC 9111 §4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	resident := time.Duration(now.UnixNano() - int64(e.StoredAt))
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

// MemSize returns an estimate of the heap bytes e occupies: its struct,
// the header's slice, the Vary and Tags slices, and the bytes of its body
// and strings, each allocation rounded up as the allocator rounds it. It
// is exact, within a few bytes, for an entry as Packed returns it (its
// body and strings in one or two allocations, the second holding the
// body's tail if it has one) or as Decode does (all in one); for other
// entries, whose strings may be separate allocations, it is a lower
// bound. What a tier spends to hold e (its record of it) is
// the tier's to add: see tiers/local.
func (e *Entry) MemSize() int {
	n := entryBytes + allocSize(16*len(e.Header.s))
	if e.x != nil {
		n += extraBytes + allocSize(16*len(e.x.Vary)) + allocSize(16*len(e.x.Tags))
	}
	strs := e.stringBytes()
	if e.split {
		return n + allocSize(len(e.body)) + allocSize(len(e.tail)+strs)
	}
	return n + allocSize(len(e.body)+strs)
}

// entryBytes is what the allocator sets aside for an Entry struct: 128
// bytes, a size class of its own (TestEntryBytes). A field added past it
// moves every entry to the 144-byte class.
var entryBytes = allocSize(int(unsafe.Sizeof(Entry{})))

// extraBytes is what the allocator sets aside for an Extra.
var extraBytes = allocSize(int(unsafe.Sizeof(Extra{})))

// stringBytes returns the length of the strings that a packed e holds
// in its own memory: its URL, Vary, Tags, header values and the header
// names that are not shared copies (see Packed).
func (e *Entry) stringBytes() int {
	n := len(e.URL) + e.Header.ownBytes()
	for _, s := range e.Vary() {
		n += len(s)
	}
	for _, s := range e.Tags() {
		n += len(s)
	}
	return n
}

// AllocSize returns the bytes the Go allocator sets aside for an
// allocation of n bytes: n rounded up to its size class, or to whole
// pages beyond the largest class. A tier uses it to count its own
// records as MemSize counts an entry.
func AllocSize(n int) int { return allocSize(n) }

// allocSize is AllocSize.
func allocSize(n int) int {
	if n == 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	i, _ := slices.BinarySearch(sizeClasses, n)
	return sizeClasses[i]
}

// sizeClasses are the Go runtime's small-object size classes
// (runtime/sizeclasses.go, unchanged since Go 1.14 but for the 24-byte
// class added in 1.16).
var sizeClasses = []int{
	8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
	240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768,
	896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200,
	3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240,
	10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
	27264, 28672, 32768,
}
