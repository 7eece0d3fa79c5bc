package tiers

import (
	"net/http"
	"slices"
	"testing"
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
		t.Errorf("appending to CopyTo's values changed the Header: %q", h.kv)
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
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(p.Body)))
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
	for _, s := range append(slices.Clone(p.Vary), p.Tags...) {
		inside("Vary or tag", s)
	}
	// Uncommon values and names are copied in; common ones point at the
	// one shared copy of each (X-Empty is not common, Vary repeats).
	uncommon := 0
	for i, s := range p.Header.kv {
		switch {
		case i%2 == 1:
			if _, common := commonValues[s]; common {
				if !isShared(commonValues, s) {
					t.Errorf("common value %q is not the shared copy", s)
				}
			} else {
				inside("header value", s)
			}
		case isShared(commonNames, s):
		default:
			uncommon++
			inside("header name", s)
		}
	}
	if uncommon != 1 {
		t.Errorf("%d packed names are not shared copies, want 1 (X-Empty): %q", uncommon, p.Header.kv)
	}
	if &p.Body[0] == &e.Body[0] {
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
	if e.Header.ownNameBytes() != 0 {
		// Every name of benchEntry is a common one.
		t.Errorf("a packed benchEntry holds %d bytes of names, want 0", e.Header.ownNameBytes())
	}
	kv := 16 * len(e.Header.kv)
	vt := 16 * (len(e.Vary) + len(e.Tags))
	bytes := len(e.Body) + len(e.URL)
	for _, s := range e.Header.kv {
		if !isShared(commonNames, s) && !isShared(commonValues, s) {
			bytes += len(s)
		}
	}
	for _, s := range append(slices.Clone(e.Vary), e.Tags...) {
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
		e.Body = make([]byte, size)
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

// The Entry struct takes a size class of its own, 192 bytes: a field
// added in the wrong place (a bool after a slice pads 8 bytes) takes every
// entry into the 208-byte class, which MemSize would count.
func TestEntryBytes(t *testing.T) {
	if size := unsafe.Sizeof(Entry{}); size > 192 || entryBytes != 192 {
		t.Errorf("Entry is %d bytes (allocated %d), want at most 192", size, entryBytes)
	}
}
