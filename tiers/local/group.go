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
// (tiers.SharedVaryMarker of the newest, listing every suffix held). A
// URL is then admitted, read and evicted whole, counted at the memory of
// all it holds. A group is a value: every change (a variant stored, one
// deleted) builds a new group and stores it in place of the old.
//
// The marker is the group's own and costs it little: it is a field of
// the group (no allocation of its own), its URL, Vary and Tags are those
// of the newest variant, which the group holds exactly as long as its
// marker, and its header lists suffixes the group copied into one
// allocation of its own. So it shares memory with nothing outside its
// group (a request's key, an older group, a variant the group no longer
// holds), which nothing would count: a marker that shared the variant's
// allocation kept the body alive after the variant was evicted (issue
// 21). The group counts what the marker allocates, not its MemSize,
// which would count the newest variant's strings twice.

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// maxVariants bounds the variants a group holds; past it the oldest is
// dropped. The suffixes come from clients' headers: without a bound one
// URL could take L1 whole, and every store of a variant copies the group.
const maxVariants = 32

// group is a varying URL held in L1: its variants and its marker. It is
// never modified once stored.
//
// marker is its first field: ristretto holds a group as a pointer to its
// marker, which is a pointer to the group (see groupOf).
type group struct {
	marker tiers.Entry
	vs     []member // oldest first; vs[i] is the marker's i'th variant (suffix)
	cost   int64    // the memory it holds, ristretto's record included
}

// The marker must be at offset 0 of a group for groupOf: this fails to
// compile otherwise.
var _ = [1]struct{}{}[unsafe.Offsetof(group{}.marker)]

// groupOf returns the group whose marker e is, or nil if e is a response
// (or nil). It rests on what Set ensures: the only Vary markers L1 holds
// are its groups' own, so a KindVary entry it reads is a group's marker,
// its first field.
func groupOf(e *tiers.Entry) *group {
	if e == nil || e.Kind != tiers.KindVary {
		return nil
	}
	return (*group)(unsafe.Pointer(e))
}

// member is one variant of a group; its suffix is the marker's (see
// group.suffix).
type member struct {
	e       *tiers.Entry
	expires int64 // end of its TTL, Unix nanoseconds
}

// suffix returns the suffix of g's i'th variant, as its marker lists it:
// the marker's header holds the VariantField alone, its values in the
// order of g.vs.
func (g *group) suffix(i int) string {
	_, s := g.marker.Header.Field(i)
	return s
}

// index returns the index in g.vs of the variant under suffix, or -1.
func (g *group) index(suffix string) int {
	for i := range g.vs {
		if g.suffix(i) == suffix {
			return i
		}
	}
	return -1
}

// lookup returns the variant of g stored under suffix, if its TTL has not
// ended at now (Unix nanoseconds). g may be nil.
func (g *group) lookup(suffix string, now int64) *tiers.Entry {
	if g == nil {
		return nil
	}
	i := g.index(suffix)
	if i < 0 || now >= g.vs[i].expires {
		return nil
	}
	return g.vs[i].e
}

// variant is a member with its suffix, as a new group is built from.
type variant struct {
	suffix string
	member
}

// with returns the group of g's variants with e stored under suffix until
// expires, at now: g's variants still within their TTL, but one under
// the same suffix, then e, the oldest dropped past maxVariants or while
// the group would cost more than maxCost. A g that varies on other
// headers than e (the origin changed its Vary) is dropped whole: its
// suffixes were selected by other headers. It returns nil if e alone
// costs more than maxCost. g may be nil.
func (g *group) with(suffix string, e *tiers.Entry, expires, now, maxCost int64) *group {
	var vs []variant
	if g != nil && slices.Equal(g.marker.Vary(), e.Vary()) {
		vs = make([]variant, 0, min(len(g.vs)+1, maxVariants))
		for i, m := range g.vs {
			if s := g.suffix(i); s != suffix && now < m.expires {
				vs = append(vs, variant{s, m})
			}
		}
	}
	vs = append(vs, variant{suffix, member{e: e, expires: expires}})
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
	if g.index(suffix) < 0 {
		return g, false
	}
	var vs []variant
	for i, m := range g.vs {
		if s := g.suffix(i); s != suffix && now < m.expires {
			vs = append(vs, variant{s, m})
		}
	}
	if len(vs) == 0 {
		return nil, true
	}
	return newGroup(vs), true
}

// newGroup returns the group of the variants in (oldest first, not
// empty), its marker made from the newest. The group copies the suffixes
// into one allocation of its own: the caller's (a request's key, an older
// group's) are not held. in is not modified.
func newGroup(in []variant) *group {
	suffixes, n := ownCopies(in)
	vs := make([]member, len(in))
	for i, v := range in {
		vs[i] = v.member
	}
	g := &group{marker: tiers.SharedVaryMarker(vs[len(vs)-1].e, suffixes, false), vs: vs}
	g.cost = int64(recordBytes + groupBytes + tiers.AllocSize(int(unsafe.Sizeof(member{}))*len(vs)) +
		g.marker.Header.AllocBytes() + tiers.AllocSize(n))
	for _, m := range vs {
		g.cost += int64(m.e.MemSize())
	}
	return g
}

// ownCopies returns copies of the suffixes of in, all in one new
// allocation, and its length.
func ownCopies(in []variant) ([]string, int) {
	n := 0
	for _, v := range in {
		n += len(v.suffix)
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range in {
		b.WriteString(v.suffix)
	}
	all := b.String()
	out := make([]string, len(in))
	for i, v := range in {
		out[i], all = all[:len(v.suffix)], all[len(v.suffix):]
	}
	return out, n
}

// groupBytes is what the allocator sets aside for a group struct, its
// marker's Entry included.
var groupBytes = tiers.AllocSize(int(unsafe.Sizeof(group{})))

// expires returns the end of the latest TTL of g's variants.
func (g *group) expires() int64 {
	var last int64
	for _, m := range g.vs {
		last = max(last, m.expires)
	}
	return last
}
