package tiers

import (
	"net/http"
	"sort"
	"unsafe"
)

// Header holds the header fields of a stored response in a compact,
// read-only form: one slice of alternating names and values, sorted by
// name, a name repeated for each of its values. It costs 16 bytes a name
// and a value where an http.Header costs a map slot, a slice per name and
// the map's own overhead, about three times as much, and writing it into a
// response walks a slice rather than a map.
//
// The zero value is an empty Header. Like an Entry, a Header must never
// be modified once built.
type Header struct {
	kv []string
}

// MakeHeader returns h as a Header. The strings are shared, not copied.
func MakeHeader(h http.Header) Header {
	if len(h) == 0 {
		return Header{}
	}
	names := make([]string, 0, len(h))
	n := 0
	for k, vs := range h {
		if len(vs) > 0 {
			names = append(names, k)
			n += len(vs)
		}
	}
	sort.Strings(names)
	kv := make([]string, 0, 2*n)
	for _, k := range names {
		for _, v := range h[k] {
			kv = append(kv, k, v)
		}
	}
	return Header{kv: kv}
}

// Len returns the number of fields (name and value pairs).
func (h Header) Len() int { return len(h.kv) / 2 }

// Field returns the name and value of the i'th field, 0 <= i < Len.
func (h Header) Field(i int) (name, value string) { return h.kv[2*i], h.kv[2*i+1] }

// find returns the index in kv of the first field named name, or -1.
func (h Header) find(name string) int {
	lo, hi := 0, len(h.kv)/2
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.kv[2*m] < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if 2*lo < len(h.kv) && h.kv[2*lo] == name {
		return 2 * lo
	}
	return -1
}

// Get returns the first value of the field named name (in canonical
// form, as http.Header.Get would look it up), or "".
func (h Header) Get(name string) string {
	i := h.find(http.CanonicalHeaderKey(name))
	if i < 0 {
		return ""
	}
	return h.kv[i+1]
}

// Values returns the values of the field named name (canonical form), or
// nil. The result must not be modified.
func (h Header) Values(name string) []string {
	i := h.find(http.CanonicalHeaderKey(name))
	if i < 0 {
		return nil
	}
	return h.values(i)
}

// values returns the values of the field whose first pair starts at kv[i].
// A single value is returned as a slice of kv itself, capped so that an
// append copies; several are gathered into a new slice.
func (h Header) values(i int) []string {
	name := h.kv[i]
	if i+2 >= len(h.kv) || h.kv[i+2] != name {
		return h.kv[i+1 : i+2 : i+2]
	}
	var vs []string
	for ; i < len(h.kv) && h.kv[i] == name; i += 2 {
		vs = append(vs, h.kv[i+1])
	}
	return vs
}

// Has reports whether a field named name (canonical form) is present.
func (h Header) Has(name string) bool {
	return h.find(http.CanonicalHeaderKey(name)) >= 0
}

// CopyTo sets every field of h in dst, replacing what dst had under those
// names. The value slices it sets share h's memory (see values): dst's
// user may replace or append to them, never write into them. A field with
// one value, the usual case, costs no allocation.
func (h Header) CopyTo(dst http.Header) {
	for i := 0; i < len(h.kv); {
		name := h.kv[i]
		vs := h.values(i)
		dst[name] = vs
		i += 2 * len(vs)
	}
}

// Clone returns h as a new http.Header that may be modified.
func (h Header) Clone() http.Header {
	out := make(http.Header, len(h.kv)/2)
	for i := 0; i < len(h.kv); i += 2 {
		out[h.kv[i]] = append(out[h.kv[i]], h.kv[i+1])
	}
	return out
}

// strBytes returns the total length of h's names and values.
func (h Header) strBytes() int {
	n := 0
	for _, s := range h.kv {
		n += len(s)
	}
	return n
}

// repeatedNameBytes returns the length of the names that repeat the name
// before them: Packed stores those once.
func (h Header) repeatedNameBytes() int {
	n := 0
	for i := 2; i < len(h.kv); i += 2 {
		if h.kv[i] == h.kv[i-2] {
			n += len(h.kv[i])
		}
	}
	return n
}

// arena copies strings and bytes into one allocation, so that an entry
// built from many small allocations (an origin response's header lines,
// the URL, the body) holds one.
type arena struct {
	buf []byte
}

func (a *arena) str(s string) string {
	if s == "" {
		return ""
	}
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	return unsafe.String(&a.buf[start], len(s))
}

func (a *arena) strs(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = a.str(s)
	}
	return out
}

// Packed returns a copy of e whose body and strings (URL, Vary, Tags and
// the header's names and values) share one allocation, and whose header
// slice is exactly its length: the smallest form of e to hold in memory
// for long. e itself is unchanged.
func (e *Entry) Packed() *Entry {
	n := len(e.Body) + len(e.URL) + e.Header.strBytes()
	for _, s := range e.Vary {
		n += len(s)
	}
	for _, s := range e.Tags {
		n += len(s)
	}
	a := arena{buf: make([]byte, 0, n)}
	p := *e
	if len(e.Body) > 0 {
		a.buf = append(a.buf, e.Body...)
		p.Body = a.buf[:len(e.Body):len(e.Body)]
	}
	p.URL = a.str(e.URL)
	p.Vary = a.strs(e.Vary)
	p.Tags = a.strs(e.Tags)
	if len(e.Header.kv) > 0 {
		kv := make([]string, len(e.Header.kv))
		for i, s := range e.Header.kv {
			// Names repeat for each value: share one copy.
			if i >= 2 && i%2 == 0 && s == e.Header.kv[i-2] {
				kv[i] = kv[i-2]
				continue
			}
			kv[i] = a.str(s)
		}
		p.Header = Header{kv: kv}
	}
	return &p
}
