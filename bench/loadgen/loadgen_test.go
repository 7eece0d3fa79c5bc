package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

func draw(t *testing.T, dist string, n uint64, seed uint64, count int) []uint64 {
	t.Helper()
	g, err := newKeyGen(dist, n, 1.01, seed)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, count)
	for i := range out {
		out[i] = g.Uint64()
	}
	return out
}

func TestKeyGenDeterministic(t *testing.T) {
	for _, dist := range []string{"seq", "uniform", "zipf"} {
		t.Run(dist, func(t *testing.T) {
			a := draw(t, dist, 1_000_000, 7, 10_000)
			b := draw(t, dist, 1_000_000, 7, 10_000)
			if !slices.Equal(a, b) {
				t.Fatal("same seed, different sequences")
			}
			for _, k := range a {
				if k >= 1_000_000 {
					t.Fatalf("key %d out of range", k)
				}
			}
			if dist == "seq" {
				return
			}
			if c := draw(t, dist, 1_000_000, 8, 10_000); slices.Equal(a, c) {
				t.Fatal("different seeds, same sequence")
			}
		})
	}
}

func TestZipfShape(t *testing.T) {
	keys := draw(t, "zipf", 1_000_000, 1, 200_000)
	counts := map[uint64]int{}
	for _, k := range keys {
		counts[k]++
	}
	// P(k) ∝ 1/(k+1)^s: rank 0 is drawn about 2^1.01 ≈ 2.01 times as
	// often as rank 1 and 10^1.01 ≈ 10.2 times as often as rank 9.
	for _, c := range []struct {
		rank uint64
		want float64
	}{{1, math.Pow(2, 1.01)}, {9, math.Pow(10, 1.01)}} {
		got := float64(counts[0]) / float64(counts[c.rank])
		if math.Abs(got-c.want)/c.want > 0.15 {
			t.Errorf("count(0)/count(%d) = %.2f, want about %.2f", c.rank, got, c.want)
		}
	}
}

func TestKeyGenErrors(t *testing.T) {
	for _, c := range []struct {
		dist string
		n    uint64
		s    float64
	}{{"zipf", 10, 1.0}, {"zipf", 0, 1.01}, {"pareto", 10, 1.01}} {
		if _, err := newKeyGen(c.dist, c.n, c.s, 1); err == nil {
			t.Errorf("newKeyGen(%q, %d, %g): no error", c.dist, c.n, c.s)
		}
	}
}

func TestTemplate(t *testing.T) {
	for _, c := range []struct{ tmpl, want string }{
		{"http://h/blob/{key}?size=1024", "http://h/blob/42?size=1024"},
		{"http://h/cache?url=%2Fblob%2F{key}", "http://h/cache?url=%2Fblob%2F42"},
		{"http://h/one", "http://h/one"},
	} {
		if got := parseTemplate(c.tmpl).expand(42); got != c.want {
			t.Errorf("expand(%q) = %q, want %q", c.tmpl, got, c.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1e6, 1e9, 1e12, math.MaxInt64} {
		i := bucketOf(v)
		if i < prev {
			t.Errorf("bucketOf(%d) = %d, below the previous %d", v, i, prev)
		}
		if i >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, beyond %d buckets", v, i, nBuckets)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Errorf("bucketOf(%d) = %d whose range is [%d, %d]", v, i, lo, hi)
		}
		if float64(hi-lo) > float64(v)/64 {
			t.Errorf("bucket of %d is %d wide: more than 1/64 of it", v, hi-lo)
		}
		prev = i
	}
}

func TestPercentileExact(t *testing.T) {
	// 1..100 ns are recorded exactly; nearest rank: p50 is the 50th value,
	// p99.9 rounds up to the 100th.
	var h hist
	for v := 100; v >= 1; v-- {
		h.record(time.Duration(v))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}, {0.1, 1}} {
		if got := h.percentile(c.p); got != c.want {
			t.Errorf("p%g = %d, want %d", c.p, got, c.want)
		}
	}
	if got := h.mean(); got != 50 { // 50.5 truncated
		t.Errorf("mean = %d, want 50", got)
	}
}

func TestPercentileApprox(t *testing.T) {
	// 9,990 requests at 1 ms and 10 at 100 ms: p99 is 1 ms, p99.9 is
	// 1 ms (the 9,990th value), p99.91 is 100 ms.
	var a, b hist
	for range 9990 {
		a.record(time.Millisecond)
	}
	for range 10 {
		b.record(100 * time.Millisecond)
	}
	a.merge(&b)
	near := func(got, want time.Duration) bool { return math.Abs(float64(got-want)) <= float64(want)/100 }
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, time.Millisecond}, {99, time.Millisecond}, {99.9, time.Millisecond}, {99.91, 100 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := a.percentile(c.p); !near(got, c.want) {
			t.Errorf("p%g = %v, want %v within 1%%", c.p, got, c.want)
		}
	}
	if a.n != 10000 || a.max != int64(100*time.Millisecond) || a.min != int64(time.Millisecond) {
		t.Errorf("after merge: n=%d min=%d max=%d", a.n, a.min, a.max)
	}
	var empty hist
	if empty.percentile(99) != 0 {
		t.Error("empty histogram: p99 not 0")
	}
}

func TestLFUAndLRUHits(t *testing.T) {
	for _, c := range []struct {
		name     string
		trace    []uint64
		capacity int
		lfu, lru uint64
	}{
		{"no room", []uint64{1, 1, 1}, 0, 0, 0},
		{"fits", []uint64{1, 2, 1, 2, 3, 3}, 3, 3, 3},
		// Capacity 1, LFU: 1 is admitted and hit once (count 2); 2
		// reaches count 1 then 2, never more than 1's count, so is not
		// admitted; 2's third access (count 3 > 2) evicts 1; its fourth
		// hits. LRU admits every miss: 1 hits once, 2 three times.
		{"frequency wins", []uint64{1, 1, 2, 2, 2, 2}, 1, 2, 4},
		// A scan of one-off keys never displaces the hot key from the
		// LFU; it flushes it from the LRU.
		{"scan", []uint64{7, 7, 7, 1, 2, 3, 4, 7}, 1, 3, 2},
		// Capacity 2, LRU: 3 evicts 1 (least recent), so 1 misses and
		// evicts 2, and 3 hits. LFU: 3 (count 1) is not admitted, 1
		// hits, and 3's second access (count 2) displaces 2, a miss.
		{"recency", []uint64{1, 2, 3, 1, 3}, 2, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := lfuHits(c.trace, c.capacity); got != c.lfu {
				t.Errorf("lfuHits = %d, want %d", got, c.lfu)
			}
			if got := lruHits(c.trace, c.capacity); got != c.lru {
				t.Errorf("lruHits = %d, want %d", got, c.lru)
			}
		})
	}
}

func TestSimulate(t *testing.T) {
	g, _ := newKeyGen("zipf", 100_000, 1.01, 3)
	res := simulate(g, 50_000, []int{100, 1_000, 1_000_000})
	if res.Requests != 50_000 || res.Distinct == 0 || res.Distinct > 50_000 {
		t.Fatalf("requests %d distinct %d", res.Requests, res.Distinct)
	}
	if want := float64(res.Requests-res.Distinct) / float64(res.Requests); res.Unbounded != want {
		t.Errorf("unbounded = %v, want %v", res.Unbounded, want)
	}
	// More room never hurts, and a cache larger than the key space is the
	// unbounded cache.
	if !(res.LFU[0].HitRatio < res.LFU[1].HitRatio && res.LFU[1].HitRatio < res.LFU[2].HitRatio) {
		t.Errorf("LFU hit ratios not increasing with capacity: %+v", res.LFU)
	}
	if res.LFU[2].HitRatio != res.Unbounded {
		t.Errorf("LFU larger than the key space: %v, unbounded %v", res.LFU[2].HitRatio, res.Unbounded)
	}
	// On a skewed trace, LRU of the same size does no better than LFU.
	for i := range res.LRU {
		if res.LRU[i].Capacity != res.LFU[i].Capacity || res.LRU[i].HitRatio > res.LFU[i].HitRatio {
			t.Errorf("LRU %+v against LFU %+v", res.LRU[i], res.LFU[i])
		}
	}
	if res.LRU[0].HitRatio == 0 || res.LRU[2].HitRatio != res.Unbounded {
		t.Errorf("LRU hit ratios %+v, unbounded %v", res.LRU, res.Unbounded)
	}
	// The same arguments give the same answer.
	g2, _ := newKeyGen("zipf", 100_000, 1.01, 3)
	if again := simulate(g2, 50_000, []int{1_000}); again.LFU[0] != res.LFU[1] {
		t.Errorf("not deterministic: %+v then %+v", res.LFU[1], again.LFU[0])
	}
}

func TestSkipContinuesTrace(t *testing.T) {
	whole := draw(t, "zipf", 1000, 5, 300)
	g, _ := newKeyGen("zipf", 1000, 1.01, 5)
	for range 100 {
		g.Uint64()
	}
	for i := 100; i < 300; i++ {
		if k := g.Uint64(); k != whole[i] {
			t.Fatalf("key %d after skipping 100: %d, want %d", i, k, whole[i])
		}
	}
}
