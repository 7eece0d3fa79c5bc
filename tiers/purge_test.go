package tiers

import (
	"errors"
	"strings"
	"testing"
)

func TestSelectorValidate(t *testing.T) {
	ok := []Selector{
		{Kind: BanURL, Value: "/a?b=1"},
		{Kind: BanPrefix, Value: "/"},
		{Kind: BanTag, Value: "player:42"},
		All,
		{Kind: BanURL, Value: "/" + strings.Repeat("a", MaxBanValue-1)},
	}
	for _, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("%v: %v", s, err)
		}
	}
	bad := []Selector{
		{Kind: BanURL, Value: "a"},
		{Kind: BanURL},
		{Kind: BanPrefix, Value: "players/"},
		{Kind: BanTag},
		{Kind: BanTag, Value: "a b"},
		{Kind: BanTag, Value: "a,b"},
		{Kind: BanAll, Value: "/x"},
		{Kind: 9, Value: "/x"},
		{},
	}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%v: valid", s)
		}
	}
	long := Selector{Kind: BanTag, Value: strings.Repeat("t", MaxBanValue+1)}
	if err := long.Validate(); !errors.Is(err, ErrBanTooLong) {
		t.Errorf("a tag of %d bytes: %v, want ErrBanTooLong", len(long.Value), err)
	}
}

func TestSelectorString(t *testing.T) {
	for s, want := range map[Selector]string{
		{Kind: BanURL, Value: "/a?b=1"}: "url=/a?b=1",
		{Kind: BanPrefix, Value: "/p/"}: "prefix=/p/",
		{Kind: BanTag, Value: "rank"}:   "tag=rank",
		All:                             "all",
	} {
		if got := s.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", s, got, want)
		}
	}
}

// A selector's wire form reads back as the selector, for every kind,
// soft or hard, with values that hold the separator; and it is the kind
// and value fields of its ban's wire form.
func TestSelectorWire(t *testing.T) {
	values := map[BanKind]string{BanURL: "/a?b=1|c", BanPrefix: "/p|", BanTag: "player:42", BanAll: ""}
	for _, kind := range BanKinds {
		for _, soft := range []bool{false, true} {
			sel := Selector{Kind: kind, Value: values[kind], Soft: soft}
			w := sel.Wire()
			got, err := ParseSelectorWire(w)
			if err != nil || got != sel {
				t.Errorf("ParseSelectorWire(%q) = %+v, %v; want %+v", w, got, err, sel)
			}
			b := Ban{Seq: 7, Selector: sel, ID: "r@e"}
			f := strings.SplitN(b.String(), "|", 5)
			if f[1]+"|"+f[4] != w {
				t.Errorf("ban %q: kind and value fields %q|%q, selector wire form %q", b.String(), f[1], f[4], w)
			}
		}
	}
	for _, w := range []string{"", "url", "nope|/x", "soft-|/x", "9|/x"} {
		if s, err := ParseSelectorWire(w); err == nil {
			t.Errorf("ParseSelectorWire(%q) = %+v, want an error", w, s)
		}
	}
}
