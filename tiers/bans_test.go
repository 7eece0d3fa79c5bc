package tiers

import (
	"fmt"
	"testing"
	"time"
)

func TestBansDead(t *testing.T) {
	now := time.Now()
	e := func(url string, seq uint64, tags ...string) *Entry {
		e := &Entry{URL: url, Seq: seq}
		e.SetExtra(Extra{Tags: tags})
		return e
	}
	cases := []struct {
		name string
		ban  Ban
		e    *Entry
		dead bool
	}{
		{"url exact", Ban{Seq: 5, Selector: Selector{Kind: BanURL, Value: "/a?x=1"}}, e("/a?x=1", 4), true},
		{"url other", Ban{Seq: 5, Selector: Selector{Kind: BanURL, Value: "/a?x=1"}}, e("/a?x=2", 4), false},
		{"url filled after", Ban{Seq: 5, Selector: Selector{Kind: BanURL, Value: "/a"}}, e("/a", 5), false},
		{"prefix", Ban{Seq: 5, Selector: Selector{Kind: BanPrefix, Value: "/players/"}}, e("/players/42", 1), true},
		{"prefix other", Ban{Seq: 5, Selector: Selector{Kind: BanPrefix, Value: "/players/"}}, e("/rank", 1), false},
		{"prefix shorter url", Ban{Seq: 5, Selector: Selector{Kind: BanPrefix, Value: "/players/"}}, e("/p", 1), false},
		{"tag", Ban{Seq: 5, Selector: Selector{Kind: BanTag, Value: "player:42"}}, e("/x", 1, "rank", "player:42"), true},
		{"tag other", Ban{Seq: 5, Selector: Selector{Kind: BanTag, Value: "player:42"}}, e("/x", 1, "player:4"), false},
		{"all", Ban{Seq: 5, Selector: All}, e("/anything", 4), true},
		{"all filled after", Ban{Seq: 5, Selector: All}, e("/anything", 5), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b Bans
			tc.ban.At = now
			b.Apply(now, time.Hour, tc.ban)
			if got := b.Dead(tc.e); got != tc.dead {
				t.Errorf("Dead = %v, want %v", got, tc.dead)
			}
			if got := tc.ban.Matches(tc.e); tc.dead && !got {
				t.Errorf("Matches = false for a dead entry")
			}
			if b.Applied() != 5 {
				t.Errorf("Applied = %d", b.Applied())
			}
		})
	}
}

func TestBansPrune(t *testing.T) {
	var b Bans
	t0 := time.Now()
	b.Apply(t0, time.Hour, Ban{Seq: 1, Selector: Selector{Kind: BanURL, Value: "/old"}, At: t0})
	b.Apply(t0.Add(2*time.Hour), time.Hour, Ban{Seq: 2, Selector: Selector{Kind: BanURL, Value: "/new"}, At: t0.Add(2 * time.Hour)})
	if b.Len() != 1 {
		t.Errorf("Len = %d after prune, want 1", b.Len())
	}
	if !b.Dead(&Entry{URL: "/new", Seq: 1}) {
		t.Error("kept ban not applied")
	}
}

func TestBanStringRoundTrip(t *testing.T) {
	in := Ban{Seq: 42, Selector: Selector{Kind: BanURL, Value: "/a|b?c=d"}, At: time.UnixMilli(1700000000123), ID: "p-1"}
	out, err := ParseBan(in.String())
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: %+v != %+v", out, in)
	}
	for _, bad := range []string{"", "1|url", "x|url|1|id|v", "1|nope|1|id|v", "1|url|x|id|v"} {
		if _, err := ParseBan(bad); err == nil {
			t.Errorf("ParseBan(%q) succeeded", bad)
		}
	}
}

// BenchmarkBansDead is the check every cache hit makes. current-seq is
// an entry filled after the last ban (one atomic load); the others walk
// the tries, in a table of 1,000 or 100,000 bans.
func BenchmarkBansDead(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		var t Bans
		now := time.Now()
		var bans []Ban
		for i := 1; i <= n; i++ {
			kind := []BanKind{BanURL, BanPrefix, BanTag}[i%3]
			bans = append(bans, Ban{Seq: uint64(i), Selector: Selector{Kind: kind, Value: fmt.Sprintf("/p/%d", i)}, At: now})
		}
		t.Apply(now, time.Hour, bans...)
		e := &Entry{URL: "/players/42?x=1", Seq: 10, x: &Extra{Tags: []string{"player:42"}}}
		b.Run(fmt.Sprintf("%d/stale-seq", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t.Dead(e)
			}
		})
		dead := &Entry{URL: fmt.Sprintf("/p/%d", n-1), Seq: 10} // a URL ban
		b.Run(fmt.Sprintf("%d/dead", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !t.Dead(dead) {
					b.Fatal("alive")
				}
			}
		})
		fresh := &Entry{URL: "/players/42", Seq: uint64(n)}
		b.Run(fmt.Sprintf("%d/current-seq", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				t.Dead(fresh)
			}
		})
	}
}

// TestSoftBans: a soft ban makes what it names stale, never dead; a fill
// newer than it is neither; a hard ban still kills; the sequence applied
// counts both; and the wire form carries the flag.
func TestSoftBans(t *testing.T) {
	var b Bans
	now := time.Now()
	old := &Entry{URL: "/a", x: &Extra{Tags: []string{"t"}}, Seq: 0}
	other := &Entry{URL: "/b", Seq: 0}
	b.Apply(now, time.Hour, Ban{Seq: 1, Selector: Selector{Kind: BanURL, Value: "/a", Soft: true}, At: now})
	if b.Dead(old) || !b.Stale(old) {
		t.Errorf("soft URL ban: dead %v, stale %v; want stale only", b.Dead(old), b.Stale(old))
	}
	if b.Stale(other) || b.Dead(other) {
		t.Error("a soft ban of /a names /b")
	}
	if b.Applied() != 1 {
		t.Errorf("applied %d, want 1", b.Applied())
	}
	fresh := &Entry{URL: "/a", Seq: 1}
	if b.Stale(fresh) {
		t.Error("a fill started after the soft ban is stale")
	}
	b.Apply(now, time.Hour, Ban{Seq: 2, Selector: Selector{Kind: BanTag, Value: "t", Soft: true}, At: now},
		Ban{Seq: 3, Selector: Selector{Kind: BanAll, Soft: true}, At: now})
	if !b.Stale(other) || b.Dead(other) || b.Applied() != 3 {
		t.Errorf("soft all: stale %v dead %v applied %d", b.Stale(other), b.Dead(other), b.Applied())
	}
	b.Apply(now, time.Hour, Ban{Seq: 4, Selector: Selector{Kind: BanURL, Value: "/a"}, At: now})
	if !b.Dead(old) || !b.Dead(fresh) {
		t.Error("a hard ban after soft ones does not kill")
	}
	for _, sel := range []Selector{{Kind: BanURL, Value: "/a|b", Soft: true}, {Kind: BanAll, Soft: true}, {Kind: BanTag, Value: "x"}} {
		want := Ban{Seq: 9, Selector: sel, At: time.UnixMilli(now.UnixMilli()), ID: "id"}
		got, err := ParseBan(want.String())
		if err != nil || got.Selector != want.Selector || got.Seq != 9 {
			t.Errorf("ParseBan(%q) = %+v, %v", want.String(), got, err)
		}
	}
	if s := (Selector{Kind: BanTag, Value: "x", Soft: true}).String(); s != "soft tag=x" {
		t.Errorf("String = %q", s)
	}
}
