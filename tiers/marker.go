package tiers

import "net/http"

// VariantField is the header field of a Vary marker that lists its
// variants' suffixes (see SplitKey), for inspection and for a purge that
// names the URL; UnlistedField, when set, says some variant stored under
// the base key is not listed.
const (
	VariantField  = "Variant"
	UnlistedField = "Variant-Unlisted"
)

// VaryMarker returns the Vary marker of the varying response e: the
// entry stored under its URL's base key, listing the request headers it
// varies on (e.Vary) and, in its VariantField, the suffixes of the
// variants stored (unlisted: some are not listed). Its URL, times,
// sequence and tags are e's, so a purge that kills e kills it. It is
// packed (see Packed): it shares no memory with e or with variants, so
// holding it keeps neither alive.
func VaryMarker(e *Entry, variants []string, unlisted bool) *Entry {
	m := SharedVaryMarker(e, variants, unlisted)
	// Its own Extra, without e's stale windows (a marker has none).
	m.SetExtra(Extra{Vary: e.Vary(), Tags: e.Tags()})
	return m.Packed()
}

// SharedVaryMarker returns the marker VaryMarker returns, by value and
// unpacked: its URL and its Extra (Vary, Tags) are e's own, and its VariantField
// values are the strings of variants, shared, not copied. What it
// allocates itself is its header's slice alone (the field names are
// constants). Holding it keeps e's memory (a packed e's body included)
// and those strings alive: it is for a holder that holds e, and owns the
// strings, for as long as it holds the marker (tiers/local's group), and
// counts the marker's memory itself (its MemSize counts e's strings as
// the marker's).
func SharedVaryMarker(e *Entry, variants []string, unlisted bool) Entry {
	m := Entry{Kind: KindVary, URL: e.URL, StoredAt: e.StoredAt,
		InitialAge: e.InitialAge, Lifetime: e.Lifetime, Seq: e.Seq, x: e.x}
	hdr := make(http.Header, 2)
	if len(variants) > 0 {
		hdr[VariantField] = variants
	}
	if unlisted {
		hdr[UnlistedField] = []string{"1"}
	}
	m.Header = MakeHeader(hdr)
	return m
}
