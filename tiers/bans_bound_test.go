package tiers

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBansPruneIsIncremental: bans leave the table as they age, oldest
// first, a few at each Apply, and a renewed name stays with its newest
// ban.
func TestBansPruneIsIncremental(t *testing.T) {
	var b Bans
	t0 := time.Unix(1_700_000_000, 0)
	const keep = time.Hour
	for i := range 100 {
		at := t0.Add(time.Duration(i) * time.Minute)
		b.Apply(at, keep, Ban{Seq: uint64(i + 1), Selector: Selector{Kind: BanURL, Value: "/u/" + strconv.Itoa(i)}, At: at})
	}
	// At t0+99m, the bans of t0 .. t0+39m are pruned: 60 remain.
	if got := b.Len(); got != 60 {
		t.Errorf("Len = %d, want 60", got)
	}
	// /u/50 is banned again: its old ban is no longer the oldest-but-one.
	at := t0.Add(100 * time.Minute)
	b.Apply(at, keep, Ban{Seq: 101, Selector: Selector{Kind: BanURL, Value: "/u/50"}, At: at})
	at = t0.Add(150 * time.Minute)
	b.Apply(at, keep, Ban{Seq: 102, Selector: Selector{Kind: BanURL, Value: "/v"}, At: at})
	// At t0+150m, the bans up to t0+90m are pruned: left are /u/91 ..
	// /u/99, /u/50 (renewed at t0+100m) and /v.
	if got := b.Len(); got != 11 {
		t.Errorf("Len = %d after renewal, want 11", got)
	}
	if !b.Dead(&Entry{URL: "/u/50", Seq: 100}) {
		t.Error("the renewed ban was pruned with the ban it replaced")
	}
	if b.Dead(&Entry{URL: "/u/45", Seq: 1}) {
		t.Error("a pruned ban still kills")
	}
	if b.Applied() != 102 {
		t.Errorf("Applied = %d", b.Applied())
	}
}

// TestBansBoundCollapses: past MaxBans the oldest bans collapse into the
// all-ban: entries filled before the oldest ban kept are dead, newer ones
// are alive unless a kept ban names them.
func TestBansBoundCollapses(t *testing.T) {
	b := Bans{MaxBans: 1000}
	now := time.Now()
	for i := 1; i <= 1500; i++ {
		b.Apply(now, 25*time.Hour, Ban{Seq: uint64(i), Selector: Selector{Kind: BanURL, Value: "/u/" + strconv.Itoa(i)}, At: now})
	}
	if got := b.Len(); got != 1001 { // 1000 bans and the all-ban
		t.Errorf("Len = %d, want 1001", got)
	}
	// Bans 1..500 collapsed into an all-ban at 500: every entry filled
	// before 500 is dead, whatever its URL.
	for _, tc := range []struct {
		e    Entry
		dead bool
	}{
		{Entry{URL: "/u/1", Seq: 0}, true},         // named by a collapsed ban
		{Entry{URL: "/elsewhere", Seq: 499}, true}, // older than the collapse
		{Entry{URL: "/elsewhere", Seq: 500}, false},
		{Entry{URL: "/u/300", Seq: 500}, false}, // its ban was before its fill
		{Entry{URL: "/u/900", Seq: 899}, true},  // a kept ban
		{Entry{URL: "/u/900", Seq: 900}, false},
		{Entry{URL: "/u/1500", Seq: 1499}, true},
		{Entry{URL: "/elsewhere", Seq: 1500}, false},
	} {
		if got := b.Dead(&tc.e); got != tc.dead {
			t.Errorf("Dead(%s, seq %d) = %v, want %v", tc.e.URL, tc.e.Seq, got, tc.dead)
		}
	}
}

// TestBansByteBound: long bans fill MaxBytes before MaxBans.
func TestBansByteBound(t *testing.T) {
	b := Bans{MaxBytes: 10 * BanCost(strings.Repeat("x", 1000))}
	now := time.Now()
	for i := 1; i <= 20; i++ {
		v := "/" + strconv.Itoa(i) + strings.Repeat("x", 1000-len(strconv.Itoa(i))-1)
		b.Apply(now, time.Hour, Ban{Seq: uint64(i), Selector: Selector{Kind: BanURL, Value: v}, At: now})
	}
	if got := b.Len(); got != 11 {
		t.Errorf("Len = %d, want 10 bans and the all-ban", got)
	}
	if !b.Dead(&Entry{URL: "/other", Seq: 9}) || b.Dead(&Entry{URL: "/other", Seq: 10}) {
		t.Error("collapse is not at the newest ban dropped (10)")
	}
}

// TestBansTooLongWidened: a ban longer than MaxBanValue, as an older
// instance may record, is widened, never dropped.
func TestBansTooLongWidened(t *testing.T) {
	long := "/q?x=" + strings.Repeat("a", MaxBanValue)
	var b Bans
	now := time.Now()
	b.Apply(now, time.Hour, Ban{Seq: 1, Selector: Selector{Kind: BanURL, Value: long}, At: now})
	if !b.Dead(&Entry{URL: long}) {
		t.Error("entry of the long URL not dead")
	}
	if !b.Dead(&Entry{URL: long[:MaxBanValue] + "zz"}) {
		t.Error("not widened to the prefix of MaxBanValue bytes")
	}
	if b.Dead(&Entry{URL: "/q?x=b"}) {
		t.Error("widened beyond the prefix")
	}
	b.Apply(now, time.Hour, Ban{Seq: 2, Selector: Selector{Kind: BanTag, Value: strings.Repeat("t", MaxBanValue+1)}, At: now})
	if !b.Dead(&Entry{URL: "/anything", Seq: 1}) {
		t.Error("a long tag ban is not a ban of everything")
	}
}

// TestBansAllDropsOlder: an all-ban makes every held ban redundant.
func TestBansAllDropsOlder(t *testing.T) {
	var b Bans
	now := time.Now()
	for i := 1; i <= 100; i++ {
		b.Apply(now, time.Hour, Ban{Seq: uint64(i), Selector: Selector{Kind: BanPrefix, Value: "/p/" + strconv.Itoa(i)}, At: now})
	}
	b.Apply(now, time.Hour, Ban{Seq: 101, Selector: All, At: now})
	if b.Len() != 1 {
		t.Errorf("Len = %d after an all-ban, want 1", b.Len())
	}
	b.Apply(now, time.Hour, Ban{Seq: 102, Selector: Selector{Kind: BanPrefix, Value: "/p/"}, At: now})
	if !b.Dead(&Entry{URL: "/p/1", Seq: 101}) || b.Dead(&Entry{URL: "/q", Seq: 101}) || !b.Dead(&Entry{URL: "/q", Seq: 100}) {
		t.Error("wrong verdicts after an all-ban and a prefix ban")
	}
}

// TestBansAgainstModel applies random bans, in random batches, and checks
// Dead against the definition (some ban after the fill matches) for
// random entries: exactly while nothing is collapsed or pruned, and
// never less dead once the table is bounded.
func TestBansAgainstModel(t *testing.T) {
	for _, maxBans := range []int{1 << 30, 50} {
		t.Run(strconv.Itoa(maxBans), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(maxBans)))
			b := Bans{MaxBans: maxBans}
			now := time.Now()
			var all []Ban
			name := func() string { return "/" + strconv.Itoa(rng.IntN(30)) }
			var seq uint64
			for range 200 {
				var batch []Ban
				for range rng.IntN(5) + 1 {
					seq++
					bn := Ban{Seq: seq, Selector: Selector{Value: name()}, At: now}
					switch r := rng.IntN(100); {
					case r < 50:
						bn.Kind = BanURL
					case r < 75:
						bn.Kind = BanPrefix
					case r < 98:
						bn.Kind = BanTag
					default:
						bn.Kind, bn.Value = BanAll, ""
					}
					batch = append(batch, bn)
				}
				rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				b.Apply(now, 0, batch...)
				all = append(all, batch...)
				for range 50 {
					e := &Entry{URL: name() + name(), Seq: rng.Uint64N(seq + 2), x: &Extra{Tags: []string{name()}}}
					want := false
					for i := range all {
						if e.Seq < all[i].Seq && all[i].Matches(e) {
							want = true
						}
					}
					got := b.Dead(e)
					if got != want && (maxBans > len(all) || want) {
						t.Fatalf("Dead(%+v) = %v, want %v", e, got, want)
					}
				}
			}
			if b.Applied() != seq {
				t.Errorf("Applied = %d, want %d", b.Applied(), seq)
			}
			if b.Len() > maxBans+1 {
				t.Errorf("Len = %d past the bound %d", b.Len(), maxBans)
			}
		})
	}
}

// TestBansConcurrentReaders runs readers against a writer (for -race).
func TestBansConcurrentReaders(t *testing.T) {
	b := Bans{MaxBans: 100}
	now := time.Now()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			e := &Entry{URL: "/u/7", Seq: 3, x: &Extra{Tags: []string{"t"}}}
			for {
				select {
				case <-stop:
					return
				default:
					b.Dead(e)
					b.Len()
				}
			}
		})
	}
	for i := 1; i <= 2000; i++ {
		b.Apply(now, time.Hour, Ban{Seq: uint64(i), Selector: Selector{Kind: BanKind(i%3 + 1), Value: "/u/" + strconv.Itoa(i%150)}, At: now})
	}
	close(stop)
	wg.Wait()
	if !b.Dead(&Entry{URL: "/u/7", Seq: 3}) {
		t.Error("entry older than the collapse alive")
	}
}

// FuzzBanRoundTrip: whatever ParseBan accepts, String writes back to the
// same ban.
func FuzzBanRoundTrip(f *testing.F) {
	f.Add("42|url|1700000000123|p-1|/a|b?c=d")
	f.Add("1|all|0||")
	f.Add("7|tag|-5|x|player:42")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBan(s)
		if err != nil {
			return
		}
		again, err := ParseBan(b.String())
		if err != nil {
			t.Fatalf("ParseBan(%q) of String: %v", b.String(), err)
		}
		if again != b {
			t.Fatalf("round trip: %+v != %+v", again, b)
		}
	})
}

// TestBansNewBanOutlivesItsApply: a ban whose At is already past the
// retention (its recorder's clock is behind) still kills until the next
// Apply, as it did when pruning copied the table.
func TestBansNewBanOutlivesItsApply(t *testing.T) {
	var b Bans
	now := time.Now()
	b.Apply(now, time.Hour, Ban{Seq: 1, Selector: Selector{Kind: BanURL, Value: "/a"}, At: now.Add(-2 * time.Hour)})
	if !b.Dead(&Entry{URL: "/a"}) {
		t.Error("a ban was pruned by the Apply that added it")
	}
	b.Apply(now, time.Hour, Ban{Seq: 2, Selector: Selector{Kind: BanURL, Value: "/b"}, At: now})
	if b.Dead(&Entry{URL: "/a"}) || b.Len() != 1 {
		t.Error("the old ban was not pruned at the next Apply")
	}
}
