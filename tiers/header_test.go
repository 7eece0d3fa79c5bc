package tiers

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestHeader(t *testing.T) {
	h := MakeHeader(http.Header{
		"Vary":          {"Accept", "Accept-Language"},
		"Content-Type":  {"text/plain"},
		"Etag":          {`"v1"`},
		"X-Empty-Names": {},
	})
	if h.Len() != 4 {
		t.Fatalf("Len = %d, want 4 (a name without values is dropped)", h.Len())
	}
	var names []string
	for i := range h.Len() {
		n, _ := h.Field(i)
		names = append(names, n)
	}
	if want := []string{"Content-Type", "Etag", "Vary", "Vary"}; !slices.Equal(names, want) {
		t.Errorf("field names %q, want sorted %q", names, want)
	}
	if got := h.Get("etag"); got != `"v1"` {
		t.Errorf("Get(etag) = %q", got)
	}
	if got := h.Get("Missing"); got != "" || h.Has("Missing") || h.Values("Missing") != nil {
		t.Errorf("a missing name is found: %q", got)
	}
	if got := h.Values("vary"); !slices.Equal(got, []string{"Accept", "Accept-Language"}) {
		t.Errorf("Values(vary) = %q", got)
	}
	if !h.Has("Content-Type") || h.Has("X-Empty-Names") {
		t.Error("Has is wrong")
	}

	dst := http.Header{"Content-Type": {"old"}, "Other": {"kept"}}
	h.CopyTo(dst)
	want := http.Header{
		"Content-Type": {"text/plain"}, "Etag": {`"v1"`},
		"Vary": {"Accept", "Accept-Language"}, "Other": {"kept"},
	}
	if len(dst) != len(want) {
		t.Fatalf("CopyTo gave %v, want %v", dst, want)
	}
	for k, v := range want {
		if !slices.Equal(dst[k], v) {
			t.Errorf("CopyTo: %s = %q, want %q", k, dst[k], v)
		}
	}
	// The shared value slices are capped: an append copies, never writes
	// into the Header.
	dst.Add("Content-Type", "appended")
	dst.Add("Etag", "appended")
	if h.Get("Etag") != `"v1"` || h.Values("Vary")[0] != "Accept" {
		t.Errorf("appending to CopyTo's values changed the Header: %q", h.s)
	}
	if n, v := h.Field(1); n != "Etag" || v != `"v1"` {
		t.Errorf("field 1 is %s: %q after appends to the copy", n, v)
	}

	c := h.Clone()
	c.Set("Etag", "changed")
	if h.Get("Etag") != `"v1"` {
		t.Error("modifying a Clone changed the Header")
	}
	if !slices.Equal(c["Vary"], []string{"Accept", "Accept-Language"}) {
		t.Errorf("Clone's Vary = %q", c["Vary"])
	}

	var zero Header
	if zero.Len() != 0 || zero.Get("X") != "" || len(zero.Clone()) != 0 {
		t.Error("the zero Header is not empty")
	}
	zero.CopyTo(dst) // no panic, nothing set
}

// CopyTo on a Header whose names have one value each allocates nothing:
// it runs on every hit.
func TestHeaderCopyToAllocs(t *testing.T) {
	h := benchEntry().Header
	dst := make(http.Header, 16)
	if n := testing.AllocsPerRun(100, func() { h.CopyTo(dst) }); n != 0 {
		t.Errorf("CopyTo allocates %v times", n)
	}
}

func TestPacked(t *testing.T) {
	e := responseEntry()
	before := Encode(e)
	p := e.Packed()
	if diff := equalEntries(e, p); diff != "" {
		t.Fatalf("Packed differs: %s", diff)
	}
	if !slices.Equal(Encode(e), before) {
		t.Fatal("Packed changed its receiver")
	}
	// Every byte of p lives in one allocation, starting with the body.
	lo := uintptr(unsafe.Pointer(unsafe.StringData(p.body)))
	hi := lo + uintptr(e.Size())
	inside := func(what, s string) {
		if s == "" {
			return
		}
		a := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		if a < lo || a+uintptr(len(s)) > hi {
			t.Errorf("%s %q is not in the packed allocation", what, s)
		}
	}
	inside("URL", p.URL)
	for _, s := range append(slices.Clone(p.Vary()), p.Tags()...) {
		inside("Vary or tag", s)
	}
	// The codes and own strings are copied in, but common values, which
	// have codes, or point at the one shared copy of each among a name's
	// several values (X-Empty is not common, Vary repeats).
	inside("codes", p.Header.s[0])
	var names []string
	for _, v := range p.Header.s[1:] {
		if _, common := commonValues[v]; common {
			if !isShared(commonValues, v) {
				t.Errorf("common value %q is not the shared copy", v)
			}
			continue
		}
		inside("header string", v)
		if _, ok := nameCode[v]; ok || strings.HasPrefix(v, "X-") {
			names = append(names, v)
		}
	}
	if !slices.Equal(names, []string{"X-Empty"}) {
		t.Errorf("packed names %q, want [X-Empty] once", names)
	}
	if unsafe.StringData(p.body) == unsafe.StringData(e.body) {
		t.Error("Packed shares the body with its receiver")
	}
}

// MemSize of a packed entry counts its allocations as the allocator
// rounds them: the entry, its slices, its own strings (not the shared
// common names and values) and its body. The part that lives in the
// cache's own structures (the
// fixed per-item overhead) is checked in tiers/local.
func TestMemSizeCountsAllocations(t *testing.T) {
	e := benchEntry().Packed()
	kv := 16 * len(e.Header.s)
	vt := extraBytes + 16*(len(e.Vary())+len(e.Tags()))
	bytes := e.BodyLen() + len(e.URL) + len(e.Header.s[0])
	for _, s := range e.Header.s[1:] {
		if !isShared(commonValues, s) {
			bytes += len(s)
		}
	}
	for _, s := range append(slices.Clone(e.Vary()), e.Tags()...) {
		bytes += len(s)
	}
	lower := int(unsafe.Sizeof(Entry{})) + kv + vt + bytes
	if got := e.MemSize(); got < lower || got > lower+lower/8+3*16 {
		t.Errorf("MemSize = %d, want within size-class rounding above %d", got, lower)
	}
	// A body of exactly a size class is not pushed into the next class
	// by the strings beside it: 16 KiB and a few dozen bytes would take
	// 18 KiB in one allocation. The heap is measured in tiers/local.
	for _, size := range []int{1 << 10, 4 << 10, 16 << 10} {
		e := benchEntry()
		e.SetBody(make([]byte, size))
		p := e.Packed()
		if over := p.MemSize() - size; over > 1000 {
			t.Errorf("a packed entry of a %d-byte body costs %d bytes more than its body, want at most 1000", size, over)
		}
		if diff := equalEntries(e, p); diff != "" {
			t.Errorf("Packed of a %d-byte body differs: %s", size, diff)
		}
	}
	for n, want := range map[int]int{0: 0, 1: 8, 17: 24, 1025: 1152, 1152: 1152, 33000: 40960} {
		if got := allocSize(n); got != want {
			t.Errorf("allocSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestHeaderCanonical(t *testing.T) {
	h := MakeHeader(http.Header{"Content-Encoding": {"gzip"}, "Etag": {`"1"`}})
	if got := h.Canonical("Content-Encoding"); got != "gzip" {
		t.Errorf("Canonical(Content-Encoding) = %q", got)
	}
	if got := h.Canonical("Vary"); got != "" {
		t.Errorf("Canonical(Vary) = %q, want empty", got)
	}
}

// The Entry struct takes a size class of its own, 128 bytes: a field
// added in the wrong place (a bool after a slice pads 8 bytes), or one of
// Extra's moved back, takes every entry into a larger class, which MemSize
// would count.
func TestEntryBytes(t *testing.T) {
	if size := unsafe.Sizeof(Entry{}); size > 128 || entryBytes != 128 {
		t.Errorf("Entry is %d bytes (allocated %d), want at most 128", size, entryBytes)
	}
}

// A packed entry whose header has up to four strings holds them in the
// Entry's own allocation, right after it (newEntry), and takes the bytes
// MemSize counts, as a larger one does apart.
func TestPackedEntryOneObject(t *testing.T) {
	for extra := range 6 {
		// Codes alone, then an ETag's value, an uncommon name and its
		// value, both...: 1 to 6 strings.
		h := http.Header{"Content-Type": {"application/json"}, "Date": {"Mon, 07 Dec 2026 12:51:10 GMT"}}
		if extra%2 == 1 {
			h.Set("Etag", `"v1"`)
		}
		for i := range extra / 2 {
			h.Set("X-Own-"+strconv.Itoa(i), "value "+strconv.Itoa(i))
		}
		e := &Entry{Kind: KindResponse, Status: http.StatusOK, Header: MakeHeader(h), URL: "/api/items/?page=1"}
		e.SetBody([]byte(strings.Repeat("x", 3000)))
		n := len(e.Header.s)
		if n != 1+extra {
			t.Fatalf("header of %d strings, want %d", n, 1+extra)
		}
		p := e.Packed()
		start, slots := uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&p.Header.s[0]))
		inline := slots == start+unsafe.Sizeof(Entry{})
		if want := n <= 4; inline != want {
			t.Errorf("%d header strings: held in the Entry's allocation %v, want %v", n, inline, want)
		}
		if p.BodyLen() != 3000 || p.Header.Get("X-Own-0") != h.Get("X-Own-0") || p.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%d header strings: packed entry lost its body or header", n)
		}
		if got, want := allocSize(int(unsafe.Sizeof(Entry{}))+16*n), entryBytes+allocSize(16*n); inline && got != want {
			t.Errorf("%d header strings: Entry and slice together take %d B, MemSize counts %d", n, got, want)
		}
	}
}

// FuzzHeader checks a Header against the http.Header it was made of, the
// model: fields sorted by name, a name's values in order and together,
// lookups, CopyTo, Clone, Packed and the encoding's round trip agree with
// it, whatever mix of common names (codes) and uncommon ones (stored
// after the values), repeated or not.
func FuzzHeader(f *testing.F) {
	f.Add("Content-Type", "X-A", "x-b", "Vary", uint8(3), "v", uint16(0), uint8(0), int64(0), "")
	f.Add("Etag", "Etag", "X-Long-Uncommon-Name", "Date", uint8(0), "", uint16(7), uint8(0), int64(0), "")
	f.Add("X-A", "X-B", "X-A", "X-C", uint8(255), "gzip", uint16(40), uint8(0), int64(0), "")
	f.Add("Cache-Control", "Content-Type", "X-A", "Vary", uint8(0b01100101), "own", uint16(0xffff), uint8(0), int64(0), "")
	f.Add("Date", "Last-Modified", "Expires", "X-A", uint8(0b01010101), "v", uint16(0), uint8(0b1111), int64(1796637070), "")
	f.Add("Date", "Expires", "X-A", "X-B", uint8(0b01011001), "v", uint16(0), uint8(0b0011), int64(-1), "")
	f.Add("Date", "Expires", "X-A", "X-B", uint8(0b01010101), "v", uint16(0), uint8(0b0111), int64(1<<40), "Sun")
	f.Add("Date", "Expires", "X-A", "X-B", uint8(0b01010101), "v", uint16(0), uint8(0b0111), int64(1796637070), "Mon")
	f.Fuzz(func(t *testing.T, n1, n2, n3, n4 string, counts uint8, value string, common uint16, dates uint8, secs int64, day string) {
		// A name's first value is a common one (it has a code if it is
		// the name's only value) where common's bit for it is set, else
		// a date where dates' bit is: secs in IMF-fixdate form, its day
		// name replaced by day if day has three bytes (an exact date or
		// a near one, held as its own string).
		date := time.Unix(secs, 0).UTC().Format(http.TimeFormat)
		if len(day) == 3 {
			date = day + date[3:]
		}
		model := http.Header{}
		for i, n := range []string{n1, n2, n3, n4} {
			for j := range int(counts>>(2*i)) & 3 {
				v := value + strconv.Itoa(j)
				switch {
				case j == 0 && common&(1<<i) != 0:
					v = valueTable[int(common>>4)%len(valueTable)]
				case j == 0 && dates&(1<<i) != 0:
					v = date
				}
				model[n] = append(model[n], v)
			}
		}
		h := MakeHeader(model)
		names := slices.Sorted(maps.Keys(model))
		fields := 0
		for _, n := range names {
			fields += len(model[n])
		}
		if h.Len() != fields {
			t.Fatalf("Len = %d, want %d", h.Len(), fields)
		}
		i := 0
		for _, n := range names {
			for _, v := range model[n] {
				if gn, gv := h.Field(i); gn != n || gv != v {
					t.Fatalf("Field(%d) = %q: %q, want %q: %q", i, gn, gv, n, v)
				}
				i++
			}
			if got := h.Canonical(n); got != model[n][0] {
				t.Fatalf("Canonical(%q) = %q, want %q", n, got, model[n][0])
			}
			if n == http.CanonicalHeaderKey(n) {
				if got := h.Values(n); !slices.Equal(got, model[n]) {
					t.Fatalf("Values(%q) = %q, want %q", n, got, model[n])
				}
			}
		}
		if h.Canonical("X-Not-There") != "" || h.Canonical("Warning") != "" && model["Warning"] == nil {
			t.Fatal("a name not in the model is found")
		}
		dst := http.Header{}
		h.CopyTo(dst)
		if !maps.EqualFunc(dst, h.Clone(), slices.Equal) {
			t.Fatalf("CopyTo %q and Clone %q differ", dst, h.Clone())
		}
		for n, vs := range dst {
			if !slices.Equal(vs, model[n]) {
				t.Fatalf("CopyTo: %q = %q, want %q", n, vs, model[n])
			}
		}
		if len(dst) != len(model) {
			t.Fatalf("CopyTo set %d names, want %d", len(dst), len(model))
		}
		e := &Entry{Kind: KindResponse, StoredAt: At(t0), Header: h}
		if diff := equalEntries(e, e.Packed()); diff != "" {
			t.Fatalf("Packed differs: %s", diff)
		}
		d, err := Decode(Encode(e))
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if diff := equalEntries(e, d); diff != "" {
			t.Fatalf("round trip differs: %s", diff)
		}
	})
}

// A header of more own strings than two-byte codes index takes four-byte
// codes; either way every field is found without counting, so building,
// packing and encoding one take linear time (with a count past the
// 32,767th string, this test took 25 s under -race).
func TestHeaderWideCodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model http.Header
		wide  bool
	}{
		{"narrow", http.Header{"Date": {"Mon"}, "X-Many": nil}, false},
		{"many values", http.Header{"Date": {"Mon"}, "X-Many": nil}, true},
		{"many names", http.Header{"Date": {"Mon"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 100
			if tc.wide {
				n = 33000
			}
			for i := range n {
				if tc.name == "many names" {
					tc.model.Set("X-N"+strconv.Itoa(i), "gzip")
				} else {
					tc.model.Add("X-Many", strconv.Itoa(i))
				}
			}
			h := MakeHeader(tc.model)
			if wide := h.s[0][0] == 4; wide != tc.wide {
				t.Errorf("four-byte codes: %v, want %v", wide, tc.wide)
			}
			if h.Len() != n+1 {
				t.Fatalf("Len = %d, want %d", h.Len(), n+1)
			}
			for k, vs := range tc.model {
				if got := h.Values(k); !slices.Equal(got, vs) {
					t.Fatalf("Values(%s): %d values, want %d", k, len(got), len(vs))
				}
			}
			if !maps.EqualFunc(h.Clone(), tc.model, slices.Equal) {
				t.Error("Clone differs from the model")
			}
			e := &Entry{Kind: KindResponse, StoredAt: At(t0), Header: h}
			d, err := Decode(Encode(e.Packed()))
			if err != nil {
				t.Fatal(err)
			}
			if diff := equalEntries(e, d); diff != "" {
				t.Fatalf("packed and decoded differs: %s", diff)
			}
		})
	}
}

// A Django REST framework list page, stored gzip by the proxy, keeps as
// strings of its own only what no table can hold: its Content-Length here
// (the proxy stores none) and the slice's first slot, its codes; its Date
// is a date, five bytes of the codes.
func TestHeaderDRFPageIsCodes(t *testing.T) {
	h := MakeHeader(http.Header{
		"Allow":                      {"GET, HEAD, OPTIONS"},
		"Cache-Control":              {"max-age=60"},
		"Content-Encoding":           {"gzip"},
		"Content-Length":             {"1742"},
		"Content-Type":               {"application/json"},
		"Cross-Origin-Opener-Policy": {"same-origin"},
		"Date":                       {"Mon, 07 Dec 2026 11:00:00 GMT"},
		"Referrer-Policy":            {"same-origin"},
		"Vary":                       {"Accept, Cookie, Accept-Encoding"},
		"X-Content-Type-Options":     {"nosniff"},
		"X-Frame-Options":            {"DENY"},
	})
	if len(h.s) != 2 || h.Len() != 11 {
		t.Errorf("%d fields in %d slots %q, want 11 in 2", h.Len(), len(h.s), h.s[1:])
	}
	if got := h.Get("Date"); got != "Mon, 07 Dec 2026 11:00:00 GMT" {
		t.Errorf("Date %q", got)
	}
}

// Dates: an exact IMF-fixdate of a name's one value is held as a date, up
// to maxDates of them, and read back byte for byte, in narrow and wide
// codes; a near date (a wrong day name, another zone, before 1970, a
// name's second value) is its own string; a hit copies a date without
// allocating once its second is formatted.
func TestHeaderDates(t *testing.T) {
	date := func(secs int64) string { return time.Unix(secs, 0).UTC().Format(http.TimeFormat) }
	now := int64(1796637070) // Mon, 07 Dec 2026 12:31:10 GMT
	for _, wide := range []bool{false, true} {
		model := http.Header{
			"Date":          {date(now)},
			"Last-Modified": {date(now - 86400)},
			"Expires":       {"Tue, 07 Dec 2026 12:31:10 GMT"}, // wrong day name
			"X-Before-1970": {date(-1)},
			"X-Zone":        {"Mon, 07 Dec 2026 12:31:10 UTC"},
			"X-Two":         {date(now), date(now + 1)},
		}
		for i := range 10 {
			model["X-D"+strconv.Itoa(i)] = []string{date(now + int64(i))}
		}
		if wide {
			for i := range 33000 {
				model.Add("X-Many", strconv.Itoa(i))
			}
		}
		h := MakeHeader(model)
		if got := h.s[0][0] & widthBits; (got == 4) != wide {
			t.Errorf("wide %v: width %d", wide, got)
		}
		if got := int(h.s[0][0] >> 3); got != maxDates {
			t.Errorf("wide %v: %d dates, want %d", wide, got, maxDates)
		}
		// Own strings: the 13 names not in nameTable, the three near
		// dates, the two of X-Two, the dates past maxDates (12 exact ones
		// in all), and X-Many's name and values.
		own := 13 + 3 + 2 + (12 - maxDates)
		if wide {
			own += 1 + 33000
		}
		if len(h.s)-1 != own {
			t.Errorf("wide %v: %d own strings, want %d", wide, len(h.s)-1, own)
		}
		for k, vs := range model {
			if got := h.Values(k); !slices.Equal(got, vs) {
				t.Fatalf("wide %v: %s = %q, want %q", wide, k, got, vs)
			}
		}
		d, err := Decode(Encode(&Entry{Kind: KindResponse, Header: h}))
		if err != nil || !maps.EqualFunc(d.Header.Clone(), model, slices.Equal) {
			t.Fatalf("wide %v: decoded %v, %v", wide, err, d.Header.Clone())
		}
	}
	h := MakeHeader(http.Header{"Date": {date(now)}, "Content-Type": {"application/json"}})
	dst := http.Header{}
	h.CopyTo(dst)
	if n := testing.AllocsPerRun(100, func() { h.CopyTo(dst) }); n != 0 {
		t.Errorf("CopyTo of a date: %v allocations", n)
	}
	if dst.Get("Date") != date(now) || cap(dst["Date"]) != 1 {
		t.Errorf("CopyTo: Date %q (cap %d)", dst["Date"], cap(dst["Date"]))
	}
}
