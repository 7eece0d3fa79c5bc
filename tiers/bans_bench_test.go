package tiers

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBansApply adds one URL ban to a table already holding n: the
// cost of every purge an instance applies. It used to copy the table
// (13ms at 10k bans, 187ms at 100k, 5.6s at 1M on the machine).
func BenchmarkBansApply(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			t := &Bans{MaxBans: 2 * n, MaxBytes: 1 << 40}
			now := time.Now()
			bans := make([]Ban, n)
			for i := range bans {
				bans[i] = Ban{Seq: uint64(i + 1), Selector: Selector{Kind: BanURL, Value: fmt.Sprintf("/players/%d?sort=score", i)}, At: now}
			}
			t.Apply(now, 25*time.Hour, bans...)
			seq := uint64(n)
			b.ReportAllocs()
			for b.Loop() {
				seq++
				t.Apply(now, 25*time.Hour, Ban{Seq: seq, Selector: Selector{Kind: BanURL, Value: "/rank?page=" + strconv.FormatUint(seq, 10)}, At: now})
			}
		})
	}
	// A full table: each ban collapses the oldest into the all-ban.
	b.Run("full-100000", func(b *testing.B) {
		var t Bans
		now := time.Now()
		bans := make([]Ban, DefaultMaxBans)
		for i := range bans {
			bans[i] = Ban{Seq: uint64(i + 1), Selector: Selector{Kind: BanURL, Value: fmt.Sprintf("/players/%d?sort=score", i)}, At: now}
		}
		t.Apply(now, 25*time.Hour, bans...)
		seq := uint64(len(bans))
		b.ReportAllocs()
		for b.Loop() {
			seq++
			t.Apply(now, 25*time.Hour, Ban{Seq: seq, Selector: Selector{Kind: BanURL, Value: "/rank?page=" + strconv.FormatUint(seq, 10)}, At: now})
		}
		if t.Len() != DefaultMaxBans+1 {
			b.Fatalf("Len = %d", t.Len())
		}
	})
}
