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
