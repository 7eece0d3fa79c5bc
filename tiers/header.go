package tiers

import (
	"bytes"
	"net/http"
	"sort"
	"strconv"
	"strings"
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

// Canonical returns the first value of the field named name, which must
// be in canonical form already (as "Content-Encoding" is), or "". It is
// Get without the cost of canonicalising the name, for the hot path.
func (h Header) Canonical(name string) string {
	i := h.find(name)
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

// commonNames maps the canonical names of common response header fields
// to one shared copy of each. Packed points an entry's names at these
// rather than copy them into the entry: on a 1 KiB response with four
// headers they were 43 of the 1,732 bytes an entry took, and pushed the
// body's allocation into the next size class (see MemSize).
var commonNames = sharedCopies([]string{
	"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
	"Access-Control-Max-Age", "Cache-Control", "Cache-Tag", "Content-Disposition",
	"Content-Encoding", "Content-Language", "Content-Length", "Content-Location",
	"Content-Range", "Content-Security-Policy", "Content-Type", "Cross-Origin-Opener-Policy",
	"Cross-Origin-Resource-Policy", "Date", "Etag", "Expires", "Last-Modified", "Link",
	"Location", "Permissions-Policy", "Pragma", "Referrer-Policy", "Server",
	"Strict-Transport-Security", "Surrogate-Control", "Surrogate-Key", "Vary", "Via",
	"Warning", "X-Content-Type-Options", "X-Frame-Options", "X-Powered-By", "X-Request-Id",
	"X-Xss-Protection",
})

// commonValues maps common header values (content types and codings,
// Vary lists, usual Cache-Control lifetimes, security headers' usual
// settings) to one shared copy of each, as commonNames does for names:
// a stored JSON response's Content-Type, Content-Encoding, Vary and
// Cache-Control values are otherwise some 60 bytes of every entry. The
// set is fixed: it grows with nothing an origin sends, so what it holds
// is no entry's to count.
var commonValues = sharedCopies(func() []string {
	vs := []string{
		"application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8",
		"application/problem+json", "application/ld+json", "application/vnd.api+json",
		"application/javascript", "application/javascript; charset=utf-8", "text/javascript",
		"text/javascript; charset=utf-8", "application/xml", "text/xml", "text/xml; charset=utf-8",
		"application/octet-stream", "text/plain", "text/plain; charset=utf-8", "text/html",
		"text/html; charset=utf-8", "text/html; charset=UTF-8", "text/css", "text/css; charset=utf-8",
		"text/csv", "image/svg+xml", "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
		"font/woff2", "application/pdf", "application/wasm",
		"gzip", "br", "zstd", "deflate", "identity", "bytes", "none",
		"Accept-Encoding", "Accept-Encoding, Origin", "Origin, Accept-Encoding", "Origin",
		"Accept", "Accept, Accept-Encoding", "Accept-Encoding, Accept", "Cookie", "Accept-Language",
		"Accept, Origin", "Accept, Accept-Language, Origin", "Accept-Encoding, Accept-Language",
		"Authorization", "Accept-Encoding, Authorization", "Accept-Encoding, Cookie",
		"no-cache", "no-store", "private", "public", "must-revalidate", "no-cache, no-store, must-revalidate",
		"nosniff", "DENY", "SAMEORIGIN", "*", "true", "1; mode=block", "0",
		"same-origin", "same-site", "cross-origin", "strict-origin-when-cross-origin", "no-referrer",
		"max-age=31536000", "max-age=31536000; includeSubDomains", "max-age=63072000; includeSubDomains; preload",
		"nginx", "Apache", "cloudflare", "WSGIServer/0.2 CPython/3.12", "gunicorn", "uvicorn", "Express", "PHP",
	}
	for _, n := range []int{0, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 600, 900, 1200, 1800,
		3600, 7200, 10800, 14400, 21600, 43200, 86400, 172800, 604800, 2592000, 31536000} {
		a := "max-age=" + strconv.Itoa(n)
		vs = append(vs, a, "public, "+a, "private, "+a, a+", public", a+", private", "s-maxage="+strconv.Itoa(n),
			"public, "+a+", immutable", a+", must-revalidate", "public, "+a+", must-revalidate")
	}
	return vs
}())

// sharedCopies maps each of ss to one copy of its own, which the entries
// that hold an equal string share.
func sharedCopies(ss []string) map[string]string {
	m := make(map[string]string, len(ss))
	for _, s := range ss {
		m[s] = strings.Clone(s)
	}
	return m
}

// isShared reports whether s is the shared copy of a string in common,
// which costs an entry nothing.
func isShared(common map[string]string, s string) bool {
	c, ok := common[s]
	return ok && unsafe.StringData(c) == unsafe.StringData(s)
}

// ownNameBytes returns the length of the names that an entry's packed
// bytes hold: each name once per run of fields (a name repeats for each
// of its values), and none of the shared common names.
func (h Header) ownNameBytes() int {
	n := 0
	for i := 0; i < len(h.kv); i += 2 {
		if (i >= 2 && h.kv[i] == h.kv[i-2]) || isShared(commonNames, h.kv[i]) {
			continue
		}
		n += len(h.kv[i])
	}
	return n
}

// ownValueBytes returns the length of the values that an entry's packed
// bytes hold: all but the shared common values.
func (h Header) ownValueBytes() int {
	n := 0
	for i := 1; i < len(h.kv); i += 2 {
		if !isShared(commonValues, h.kv[i]) {
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

// Packed returns a copy of e in the smallest form to hold in memory for
// long: its body and strings (URL, Vary, Tags, the header's uncommon
// values and names) in one allocation, or in two (body, strings) where the
// allocator's size classes make two smaller, as for a body of exactly
// 16 KiB; its common header names shared copies (commonNames); its header
// slice exactly its length. e itself is unchanged.
func (e *Entry) Packed() *Entry {
	kv := e.Header.kv
	strs := len(e.URL)
	for i := 0; i < len(kv); i += 2 {
		if _, common := commonNames[kv[i]]; !common && (i == 0 || kv[i] != kv[i-2]) {
			strs += len(kv[i])
		}
		if _, common := commonValues[kv[i+1]]; !common {
			strs += len(kv[i+1])
		}
	}
	for _, s := range e.Vary {
		strs += len(s)
	}
	for _, s := range e.Tags {
		strs += len(s)
	}
	p := *e
	p.split = len(e.Body) > 0 && strs > 0 &&
		allocSize(len(e.Body))+allocSize(strs) < allocSize(len(e.Body)+strs)
	var a arena
	if p.split {
		p.Body = bytes.Clone(e.Body)
		a.buf = make([]byte, 0, strs)
	} else {
		a.buf = make([]byte, 0, len(e.Body)+strs)
		if len(e.Body) > 0 {
			a.buf = append(a.buf, e.Body...)
			p.Body = a.buf[:len(e.Body):len(e.Body)]
		}
	}
	p.URL = a.str(e.URL)
	p.Vary = a.strs(e.Vary)
	p.Tags = a.strs(e.Tags)
	if len(kv) > 0 {
		pkv := make([]string, len(kv))
		for i := 0; i < len(kv); i += 2 {
			c, common := commonNames[kv[i]]
			switch {
			case common:
				pkv[i] = c
			case i >= 2 && kv[i] == kv[i-2]:
				// Names repeat for each value: share one copy.
				pkv[i] = pkv[i-2]
			default:
				pkv[i] = a.str(kv[i])
			}
			if c, common := commonValues[kv[i+1]]; common {
				pkv[i+1] = c
			} else {
				pkv[i+1] = a.str(kv[i+1])
			}
		}
		p.Header = Header{kv: pkv}
	}
	return &p
}
