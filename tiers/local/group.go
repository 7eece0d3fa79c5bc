package local

// Vary groups: how L1 holds a URL whose response varies.
//
// The proxy stores a varying response under a variant key (base key,
// tiers.VariantSep, the suffix the request's Vary headers select) and a
// Vary marker under the base key. Held as two items of ristretto's, the
// marker (read on every lookup, and again by every fill) and its variants
// (read only through it) met TinyLFU's admission apart: when L1 was full
// the marker, read more often, was admitted and its variant, large and
// read less, refused or evicted, and L1 filled with markers whose
// variants were gone (issue 21: 8,524 pages held where the same bytes of
// responses without Vary held 29,126).
//
// So L1 holds a varying URL as one item under its base key, a group: the
// variants stored by suffix and the marker L1 makes for them itself
// (tiers.VaryMarker of the newest, listing every suffix held). A URL is
// then admitted, read and evicted whole, counted at the memory of all it
// holds. A group is a value: every change (a variant stored, one deleted)
// builds a new group and stores it in place of the old.

import (
	"slices"
	"unsafe"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// maxVariants bounds the variants a group holds; past it the oldest is
// dropped. The suffixes come from clients' headers: without a bound one
// URL could take L1 whole, and every store of a variant copies the group.
const maxVariants = 32

// group is a varying URL held in L1: its variants and its marker. It is
// never modified once stored.
type group struct {
	marker *tiers.Entry
	vs     []member // oldest first; vs[i].suffix is the marker's i'th variant
	cost   int64    // the memory it holds, ristretto's record included
}

// member is one variant of a group.
type member struct {
	suffix  string // in the marker's memory (tiers.VariantField)
	e       *tiers.Entry
	expires int64 // end of its TTL, Unix nanoseconds
}

// lookup returns the variant of g stored under suffix, if its TTL has not
// ended at now (Unix nanoseconds). g may be nil.
func (g *group) lookup(suffix string, now int64) *tiers.Entry {
	if g == nil {
		return nil
	}
	for i := range g.vs {
		if m := &g.vs[i]; m.suffix == suffix {
			if now >= m.expires {
				return nil
			}
			return m.e
		}
	}
	return nil
}

// with returns the group of g's variants with e stored under suffix until
// expires, at now: g's variants still within their TTL, but one under
// the same suffix, then e, the oldest dropped past maxVariants or while
// the group would cost more than maxCost. A g that varies on other
// headers than e (the origin changed its Vary) is dropped whole: its
// suffixes were selected by other headers. It returns nil if e alone
// costs more than maxCost. g may be nil.
func (g *group) with(suffix string, e *tiers.Entry, expires, now, maxCost int64) *group {
	var vs []member
	if g != nil && slices.Equal(g.marker.Vary, e.Vary) {
		vs = make([]member, 0, min(len(g.vs)+1, maxVariants))
		for _, m := range g.vs {
			if m.suffix != suffix && now < m.expires {
				vs = append(vs, m)
			}
		}
	}
	vs = append(vs, member{suffix: suffix, e: e, expires: expires})
	for {
		if len(vs) > maxVariants {
			vs = vs[1:]
			continue
		}
		ng := newGroup(vs)
		if ng.cost <= maxCost {
			return ng
		}
		if len(vs) == 1 {
			return nil
		}
		vs = vs[1:]
	}
}

// without returns g without the variant under suffix, and without those
// whose TTL has ended at now, nil if none is left; and whether g held
// suffix.
func (g *group) without(suffix string, now int64) (*group, bool) {
	if !slices.ContainsFunc(g.vs, func(m member) bool { return m.suffix == suffix }) {
		return g, false
	}
	vs := slices.DeleteFunc(slices.Clone(g.vs), func(m member) bool { return m.suffix == suffix || now >= m.expires })
	if len(vs) == 0 {
		return nil, true
	}
	return newGroup(vs), true
}

// newGroup returns the group of the variants in (oldest first, not
// empty), its marker made from the newest. in is not modified.
func newGroup(in []member) *group {
	suffixes := make([]string, len(in))
	for i, m := range in {
		suffixes[i] = m.suffix
	}
	marker := tiers.VaryMarker(in[len(in)-1].e, suffixes, false)
	// The members keep the marker's copies of their suffixes: the
	// caller's (a request's key, the old marker's) are not held.
	vs := make([]member, len(in))
	for i, s := range marker.Header.Values(tiers.VariantField) {
		vs[i] = member{suffix: s, e: in[i].e, expires: in[i].expires}
	}
	g := &group{marker: marker, vs: vs}
	g.cost = int64(recordBytes + groupBytes + tiers.AllocSize(int(unsafe.Sizeof(member{}))*len(vs)) + marker.MemSize())
	for _, m := range vs {
		g.cost += int64(m.e.MemSize())
	}
	return g
}

// groupBytes is what the allocator sets aside for a group struct.
var groupBytes = tiers.AllocSize(int(unsafe.Sizeof(group{})))

// expires returns the end of the latest TTL of g's variants.
func (g *group) expires() int64 {
	var last int64
	for _, m := range g.vs {
		last = max(last, m.expires)
	}
	return last
}
