package tiers

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"unsafe"
)

// Header holds the header fields of a stored response in a compact,
// read-only form, sorted by name, a name repeated for each of its values.
// It is one slice of strings. The first holds the codes: a byte giving
// their width w (2, or 4 for a header of more than 32,766 strings of its
// own) and, above it, the number of dates; then per field the code of its
// name and the code of its value, w bytes each, little-endian; then the
// dates, dateBytes each. A code below the date flag (the second bit from
// the top) is an index in nameTable or valueTable; with the date flag
// alone, a value's index among the dates; with the own flag (the top
// bit), the index in the slice of the field's own string. The own strings
// follow the codes, in field order: a name not in nameTable once for its
// run of fields, and every value not in valueTable, not a date, or of a
// name with several values (which are then contiguous).
//
// A date is a value in HTTP's preferred form (IMF-fixdate, "Mon, 07 Dec
// 2026 12:51:10 GMT", as every response's Date is), held as its Unix
// seconds: five bytes where its string took 29 and a slot of 16. Read, it
// is formatted once a second of the process's dates (dateValues), so a
// hit copies it without allocating as it copies a coded value.
//
// So a field of a common name and value (Content-Type: application/json,
// Cache-Control: max-age=3600) costs four bytes; of a date, nine; of a
// value of its own (an ETag) 16 more, a slot of the slice; of a name of
// its own 16 more again. An http.Header costs a map slot and a slice per
// name, about ten times as much, and a slice of name and value pairs (this
// type until issue 21) 32 bytes a field. Every field is found without
// counting: lookups search the sorted names; a name's values are one
// slice a response's header map can share (CopyTo); writing a Header into
// a response walks it rather than a map.
//
// The zero value is an empty Header. Like an Entry, a Header must never
// be modified once built.
type Header struct {
	s []string
}

// narrowOwn is the own flag of two-byte codes, narrowDate their date
// flag; a four-byte code's are wideOwn and wideDate. Table indices stay
// below the date flag (see codesOf). A date's flag is half its code's
// own flag.
const (
	narrowOwn  = 0x8000
	narrowDate = narrowOwn >> 1
	wideOwn    = 0x80000000
	wideDate   = wideOwn >> 1

	// widthBits are the bits of a Header's first byte that give its
	// codes' width; the bits above count its dates, at most maxDates.
	widthBits = 7
	maxDates  = 8
	// dateBytes is the length of a date: its Unix seconds, little-endian,
	// from 1970 to the year 36812.
	dateBytes = 5
)

// MakeHeader returns h as a Header. The strings are shared, not copied.
func MakeHeader(h http.Header) Header {
	if len(h) == 0 {
		return Header{}
	}
	names := make([]string, 0, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var b headerBuilder
	for pass := range 2 {
		for _, k := range names {
			for j, v := range h[k] {
				b.field(pass, k, v, j == 0, len(h[k]) == 1)
			}
		}
		if pass == 0 {
			b.start()
		}
	}
	return b.header()
}

// headerBuilder builds a Header from its fields, given in order, twice:
// in pass 0 it counts them, in pass 1 it adds them. first says a field is
// the first of its name, single that its name has this value only.
type headerBuilder struct {
	fields, own int
	width       int
	codes       []byte
	s           []string
	i           int    // the next field
	name        uint32 // the code of the current run's name

	// dated are the values that look like dates (looksLikeDate), in
	// order, as pass 0 read them: a date's Unix seconds, or -1 where the
	// value is its own string after all (not an exact date, or past
	// maxDates); pass 1 reads them back from nextDated on, without
	// parsing again. Past len(dated), a value is its own.
	dated     [2 * maxDates]int64
	nDated    int
	nextDated int
	dates     int // of the dated, those held as dates
	written   int // of those, the ones pass 1 wrote
}

func (b *headerBuilder) field(pass int, name, value string, first, single bool) {
	_, common := nameCode[name]
	_, coded := valueCodeOf(value, single)
	if pass == 0 {
		b.fields++
		if !common && first {
			b.own++
		}
		if !coded && !b.countDate(value, single) {
			b.own++
		}
		return
	}
	if first {
		if c, ok := nameCode[name]; ok {
			b.name = uint32(c)
		} else {
			b.name = b.ownCode(name)
		}
	}
	vc, ok := valueCodeOf(value, single)
	v := uint32(vc)
	if !ok {
		if secs, date := b.date(value, single); date {
			v = b.dateCode(secs)
		} else {
			v = b.ownCode(value)
		}
	}
	at := 1 + 2*b.width*b.i
	b.put(at, b.name)
	b.put(at+b.width, v)
	b.i++
}

// countDate reads value in pass 0: whether it is a date the Header holds
// as one (a value of its name alone, an exact IMF-fixdate, one of the
// first maxDates, and of the first 2*maxDates values that look like
// dates).
func (b *headerBuilder) countDate(value string, single bool) bool {
	if !single || !looksLikeDate(value) || b.nDated == len(b.dated) {
		return false
	}
	secs, ok := parseDate(value)
	if !ok || b.dates == maxDates {
		secs, ok = -1, false
	}
	b.dated[b.nDated] = secs
	b.nDated++
	if ok {
		b.dates++
	}
	return ok
}

// date returns, in pass 1, what countDate decided for value: its Unix
// seconds and true if it is held as a date.
func (b *headerBuilder) date(value string, single bool) (int64, bool) {
	if !single || !looksLikeDate(value) || b.nextDated == b.nDated {
		return 0, false
	}
	secs := b.dated[b.nextDated]
	b.nextDated++
	return secs, secs >= 0
}

// dateCode writes secs as the next date and returns its code.
func (b *headerBuilder) dateCode(secs int64) uint32 {
	k := b.written
	b.written++
	at := len(b.codes) - dateBytes*(b.dates-k)
	for j := range dateBytes {
		b.codes[at+j] = byte(secs >> (8 * j))
	}
	if b.width == 2 {
		return narrowDate | uint32(k)
	}
	return wideDate | uint32(k)
}

// ownCode appends s to the own strings and returns its code.
func (b *headerBuilder) ownCode(s string) uint32 {
	b.s = append(b.s, s)
	if b.width == 2 {
		return narrowOwn | uint32(len(b.s)-1)
	}
	return wideOwn | uint32(len(b.s)-1)
}

func (b *headerBuilder) put(at int, c uint32) {
	for k := range b.width {
		b.codes[at+k] = byte(c >> (8 * k))
	}
}

func (b *headerBuilder) start() {
	if b.fields == 0 {
		return
	}
	b.width = 2
	if 1+b.own >= narrowOwn {
		b.width = 4
	}
	b.codes = make([]byte, 1+2*b.width*b.fields+dateBytes*b.dates)
	b.codes[0] = byte(b.width | b.dates<<3)
	b.s = make([]string, 1, 1+b.own)
}

func (b *headerBuilder) header() Header {
	if b.fields == 0 {
		return Header{}
	}
	b.s[0] = unsafe.String(&b.codes[0], len(b.codes))
	return Header{s: b.s}
}

// valueCodeOf returns the code of value in valueTable, unless it is not
// there or its name has other values (single false).
func valueCodeOf(value string, single bool) (uint16, bool) {
	c, ok := valueCode[value]
	return c, ok && single
}

// AllocBytes returns the memory MakeHeader allocated for h beside the
// strings it shares: its slice and its string of codes, as the allocator
// rounds them. (Packed puts a header's codes in its entry's allocation;
// MemSize counts a packed entry.)
func (h Header) AllocBytes() int {
	if h.Len() == 0 {
		return 0
	}
	return allocSize(16*len(h.s)) + allocSize(len(h.s[0]))
}

// Len returns the number of fields (name and value pairs).
func (h Header) Len() int {
	if len(h.s) == 0 {
		return 0
	}
	c0 := h.s[0][0]
	// (len - 1 - the dates) / (2*width), width 2 or 4
	return (len(h.s[0]) - 1 - dateBytes*int(c0>>3)) >> (c0 & widthBits >> 1) >> 1
}

// code returns the k'th code of h (the i'th field's name is the 2i'th,
// its value the next), and the own flag of h's codes.
func (h Header) code(k int) (c, own uint32) {
	codes := h.s[0]
	if codes[0]&widthBits == 2 {
		at := 1 + 2*k
		return uint32(codes[at]) | uint32(codes[at+1])<<8, narrowOwn
	}
	at := 1 + 4*k
	return uint32(codes[at]) | uint32(codes[at+1])<<8 | uint32(codes[at+2])<<16 | uint32(codes[at+3])<<24, wideOwn
}

// Field returns the name and value of the i'th field, 0 <= i < Len.
func (h Header) Field(i int) (name, value string) { return h.name(i), h.value(i) }

// name returns the name of the i'th field.
func (h Header) name(i int) string { return h.str(2*i, nameTable) }

// value returns the value of the i'th field.
func (h Header) value(i int) string { return h.str(2*i+1, valueTable) }

// str returns the string the k'th code names: in table, or h's own. The
// two-byte codes, the usual ones, are read inline: it runs a few dozen
// times a hit.
func (h Header) str(k int, table []string) string {
	codes := h.s[0]
	if codes[0]&widthBits == 2 {
		at := 1 + 2*k
		c := uint32(codes[at]) | uint32(codes[at+1])<<8
		if c < narrowDate {
			return table[c]
		}
		if c >= narrowOwn {
			return h.s[c-narrowOwn]
		}
		return dateValues(h.date(int(c - narrowDate)))[0]
	}
	c, own := h.code(k)
	switch {
	case c < own>>1:
		return table[c]
	case c >= own:
		return h.s[c&^own]
	}
	return dateValues(h.date(int(c - own>>1)))[0]
}

// date returns the k'th date of h, in Unix seconds.
func (h Header) date(k int) int64 {
	codes := h.s[0]
	at := len(codes) - dateBytes*(int(codes[0]>>3)-k)
	var secs int64
	for j := range dateBytes {
		secs |= int64(codes[at+j]) << (8 * j)
	}
	return secs
}

// find returns the index of the first field named name and the number of
// fields of that name, or -1. It searches the sorted names, as a lookup
// by code would first hash the name: on the hit path, with a handful of
// fields, the search is the cheaper.
func (h Header) find(name string) (int, int) {
	lo, hi := 0, h.Len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.name(m) < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == h.Len() || h.name(lo) != name {
		return -1, 0
	}
	_, n := h.run(lo)
	return lo, n
}

// Get returns the first value of the field named name (in canonical
// form, as http.Header.Get would look it up), or "".
func (h Header) Get(name string) string {
	return h.Canonical(http.CanonicalHeaderKey(name))
}

// Canonical returns the first value of the field named name, which must
// be in canonical form already (as "Content-Encoding" is), or "". It is
// Get without the cost of canonicalising the name, for the hot path.
func (h Header) Canonical(name string) string {
	i, _ := h.find(name)
	if i < 0 {
		return ""
	}
	return h.value(i)
}

// Values returns the values of the field named name (canonical form), or
// nil. The result shares memory with h or with every Header, capped so
// that an append copies: it must not be written.
func (h Header) Values(name string) []string {
	i, n := h.find(http.CanonicalHeaderKey(name))
	if i < 0 {
		return nil
	}
	return h.values(i, n)
}

// values returns the values of the n fields from the i'th on, which have
// one name: the one slot of valueTable of a coded value, or the run of
// own values (several values of a name are all its own, contiguous).
func (h Header) values(i, n int) []string {
	c, own := h.code(2*i + 1)
	if c < own>>1 {
		return valueTable[c : c+1 : c+1]
	}
	if c < own {
		return dateValues(h.date(int(c - own>>1)))
	}
	k := int(c &^ own)
	return h.s[k : k+n : k+n]
}

// Has reports whether a field named name (canonical form) is present.
func (h Header) Has(name string) bool {
	i, _ := h.find(http.CanonicalHeaderKey(name))
	return i >= 0
}

// run returns the name of the field at i and the number of fields from
// i on that have it: the fields of a name share its code.
func (h Header) run(i int) (string, int) {
	c, _ := h.code(2 * i)
	n, fields := 1, h.Len()
	for i+n < fields {
		if d, _ := h.code(2 * (i + n)); d != c {
			break
		}
		n++
	}
	return h.name(i), n
}

// runs calls f with each name of h and the index and number of its
// fields, in order.
func (h Header) runs(f func(name string, i, n int)) {
	for i := 0; i < h.Len(); {
		name, n := h.run(i)
		f(name, i, n)
		i += n
	}
}

// CopyTo sets every field of h in dst, replacing what dst had under those
// names. The value slices it sets share memory with h or with every
// Header, capped: dst's user may replace or append to them, never write
// into them. It allocates nothing.
func (h Header) CopyTo(dst http.Header) {
	for i, fields := 0, h.Len(); i < fields; {
		name, n := h.run(i)
		dst[name] = h.values(i, n)
		i += n
	}
}

// Clone returns h as a new http.Header that may be modified.
func (h Header) Clone() http.Header {
	out := make(http.Header, h.Len())
	h.runs(func(name string, i, n int) {
		out[name] = slices.Clone(h.values(i, n))
	})
	return out
}

// nameTable lists the canonical names of common response header fields, a
// Header's name codes (nameCode maps them back). A field of one of these
// names stores no name, only its code: on a 1 KiB response with four
// headers the names were 43 of the 1,732 bytes an entry took, and their
// strings 64 more. The table is fixed and in memory only (the encoding
// writes names): a code never leaves the process.
var nameTable = []string{
	"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
	"Access-Control-Max-Age", "Age", "Allow", "Cache-Control", "Cache-Tag", "Content-Disposition",
	"Content-Encoding", "Content-Language", "Content-Length", "Content-Location",
	"Content-Range", "Content-Security-Policy", "Content-Type", "Cross-Origin-Embedder-Policy",
	"Cross-Origin-Opener-Policy", "Cross-Origin-Resource-Policy", "Date", "Etag", "Expires",
	"Last-Modified", "Link", "Location", "Permissions-Policy", "Pragma", "Referrer-Policy",
	"Server", "Server-Timing", "Strict-Transport-Security", "Surrogate-Control", "Surrogate-Key",
	"Timing-Allow-Origin", "Variant", "Variant-Unlisted", "Vary", "Via", "Warning",
	"X-Content-Type-Options", "X-Frame-Options", "X-Powered-By", "X-Request-Id", "X-Xss-Protection",
}

// nameCode maps each name of nameTable to its code, its index there.
var nameCode = codesOf[byte](nameTable)

// codesOf maps each string of table to its index there, a code below
// narrowDate.
func codesOf[C byte | uint16](table []string) map[string]C {
	if len(table) >= narrowDate {
		panic("tiers: a table too long for its codes")
	}
	m := make(map[string]C, len(table))
	for i, v := range table {
		m[v] = C(i)
	}
	return m
}

// valueTable lists common header values (content types and codings,
// Vary lists, usual Cache-Control lifetimes, security headers' usual
// settings), a Header's value codes (valueCode maps them back): a stored
// JSON response's Content-Type, Content-Encoding, Vary and Cache-Control
// values are otherwise some 60 bytes and four slots of 16 of every entry.
// The table is fixed and in memory only: it grows with nothing an origin
// sends, so what it holds is no entry's to count. commonValues maps the
// same values to the table's copies, which Packed shares where a name's
// several values are common ones.
var valueTable = func() []string {
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
		"Accept, Cookie", "Accept, Cookie, Accept-Encoding", "Cookie, Accept-Encoding", "Origin, Cookie",
		"GET, HEAD, OPTIONS", "GET, POST, HEAD, OPTIONS", "GET, PUT, PATCH, DELETE, HEAD, OPTIONS",
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
}()

// valueCode maps each value of valueTable to its code, its index there.
var valueCode = codesOf[uint16](valueTable)

// commonValues maps each value of valueTable to the table's copy.
var commonValues = func() map[string]string {
	m := make(map[string]string, len(valueTable))
	for _, v := range valueTable {
		m[v] = v
	}
	return m
}()

// isShared reports whether s is the shared copy of a string in common,
// which costs an entry nothing.
func isShared(common map[string]string, s string) bool {
	c, ok := common[s]
	return ok && unsafe.StringData(c) == unsafe.StringData(s)
}

// ownBytes returns the length of the strings an entry's packed bytes
// hold for h: its codes, and its own strings but the shared copies of
// common values.
func (h Header) ownBytes() int {
	if h.Len() == 0 {
		return 0
	}
	n := len(h.s[0])
	for _, v := range h.s[1:] {
		if !isShared(commonValues, v) {
			n += len(v)
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
// long: its body and strings (URL, Vary, Tags, the header's codes and the
// values and names without a code) in one allocation, or in two where the
// allocator's size classes make two smaller: body and strings, as for a
// body of exactly 16 KiB, or the head of the body, exactly a size class,
// and its tail followed by the strings. Above 2 KiB the size classes are
// 256 to 768 bytes apart, so a body rounded up as one allocation wastes
// some 5% of a 3 KiB entry; its tail beside the strings, whose small
// classes are close together, wastes little. Of the three layouts Packed
// takes the one that takes fewest bytes (layout); e itself is unchanged.
// Its header slice is exactly its length.
func (e *Entry) Packed() *Entry {
	h := e.Header
	strs := len(e.URL)
	if h.Len() > 0 {
		strs += len(h.s[0])
		for _, v := range h.s[1:] {
			if _, common := commonValues[v]; !common {
				strs += len(v)
			}
		}
	}
	x := e.Extra()
	for _, s := range x.Vary {
		strs += len(s)
	}
	for _, s := range x.Tags {
		strs += len(s)
	}
	n := e.BodyLen()
	head, split := layout(n, strs)
	p, slots := newEntry(e, len(h.s))
	p.split = split
	var a arena
	if split {
		b := make([]byte, head)
		copy(b[copy(b, e.body):], e.tail)
		p.body = unsafe.String(unsafe.SliceData(b), head)
		a.buf = make([]byte, 0, n-head+strs)
		p.tail = a.bodyPart(e, head)
	} else {
		a.buf = make([]byte, 0, n+strs)
		p.body, p.tail = a.bodyPart(e, 0), ""
	}
	p.URL = a.str(e.URL)
	x.Vary = a.strs(x.Vary)
	x.Tags = a.strs(x.Tags)
	p.SetExtra(x)
	p.Header = h.packed(&a, slots)
	return p
}

// newEntry returns a copy of *e and a slice of n strings for its header,
// in one allocation where n is small, as it is for most responses (one
// string, the codes, for a header of coded fields and dates): the same
// bytes as the two apart (128 + 16n is a size class for n up to 8), and
// one object fewer for the collector to mark, which it does for every
// entry a full L1 holds, at every collection (TestPackedEntryOneObject).
func newEntry(e *Entry, n int) (*Entry, []string) {
	switch n {
	case 0:
		p := *e
		return &p, nil
	case 1:
		return withSlots(e, func(s *[1]string) []string { return s[:] })
	case 2:
		return withSlots(e, func(s *[2]string) []string { return s[:] })
	case 3:
		return withSlots(e, func(s *[3]string) []string { return s[:] })
	case 4:
		return withSlots(e, func(s *[4]string) []string { return s[:] })
	}
	p := *e
	return &p, make([]string, n)
}

// withSlots returns a copy of *e allocated with an array of strings A
// after it, and that array as a slice.
func withSlots[A any](e *Entry, slice func(*A) []string) (*Entry, []string) {
	p := &struct {
		e Entry
		s A
	}{e: *e}
	return &p.e, slice(&p.s)
}

// bodyPart appends e's body from byte from on to a and returns it.
func (a *arena) bodyPart(e *Entry, from int) string {
	start := len(a.buf)
	if from < len(e.body) {
		a.buf = append(a.buf, e.body[from:]...)
		from = len(e.body)
	}
	a.buf = append(a.buf, e.tail[from-len(e.body):]...)
	if len(a.buf) == start {
		return ""
	}
	return unsafe.String(&a.buf[start], len(a.buf)-start)
}

// minTailedBody is the shortest body Packed splits into a head and a
// tail: below it the size classes are at most 128 bytes apart.
const minTailedBody = 1 << 10

// layout returns how Packed holds a body of n bytes beside strs bytes of
// strings: split false, in one allocation (head n); split with head n,
// body and strings apart; split with head < n, the body's first head
// bytes, exactly a size class, apart, and the rest of it with the
// strings. It takes the layout that takes fewest bytes once each
// allocation is rounded to its size class, the one allocation or else
// the whole body on a tie.
func layout(n, strs int) (head int, split bool) {
	best, head := allocSize(n+strs), n
	if n > 0 && strs > 0 {
		if two := allocSize(n) + allocSize(strs); two < best {
			best, split = two, true
		}
	}
	if n < minTailedBody {
		return head, split
	}
	// Whole pages past the size classes, then every size class from n
	// down to minTailedBody: the largest first, so that the shortest
	// tail wins a tie. A head of n is no tail: the body and strings
	// apart, above.
	try := func(c int) {
		if c < n {
			if cost := c + allocSize(n-c+strs); cost < best {
				best, head, split = cost, c, true
			}
		}
	}
	if p := n &^ 8191; p > sizeClasses[len(sizeClasses)-1] {
		try(p)
	}
	for i := len(sizeClasses) - 1; i >= 0 && sizeClasses[i] >= minTailedBody; i-- {
		try(sizeClasses[i])
	}
	return head, split
}

// packed returns a copy of h whose codes and own strings are in a, but
// the shared copies of common values (commonValues), its slice s, of
// h's length.
func (h Header) packed(a *arena, s []string) Header {
	if h.Len() == 0 {
		return Header{}
	}
	s[0] = a.str(h.s[0])
	for i, v := range h.s[1:] {
		if c, common := commonValues[v]; common {
			s[1+i] = c
		} else {
			s[1+i] = a.str(v)
		}
	}
	return Header{s: s}
}
