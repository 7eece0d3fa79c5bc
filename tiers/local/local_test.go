package local

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/tiers"
)

func newCache(t testing.TB, maxBytes int64) *Cache {
	t.Helper()
	c, err := New(Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func entry(body string) *tiers.Entry {
	e := &tiers.Entry{
		Kind:     tiers.KindResponse,
		Status:   http.StatusOK,
		Header:   tiers.MakeHeader(http.Header{"Content-Type": {"text/plain"}}),
		StoredAt: tiers.At(time.Now()),
		Lifetime: time.Minute,
		URL:      "/x",
	}
	e.SetBody([]byte(body))
	return e
}

// held returns the number and total size of the entries ristretto really
// holds, independently of the Cache's counters.
func held(c *Cache) (n, size int64) {
	c.c.IterValues(func(e *tiers.Entry) bool {
		n++
		size += costOf(e)
		return false
	})
	return n, size
}

func checkAccounting(t *testing.T, c *Cache) {
	t.Helper()
	c.Wait()
	n, size := held(c)
	if c.Len() != n || c.Bytes() != size {
		t.Errorf("Len, Bytes = %d, %d; cache holds %d entries, %d bytes", c.Len(), c.Bytes(), n, size)
	}
}

func TestNewValidates(t *testing.T) {
	for _, opts := range []Options{{}, {MaxBytes: -1}, {MaxBytes: 1 << 20, NumCounters: -1}} {
		c, err := New(opts)
		if err == nil {
			c.Close()
			t.Errorf("New(%+v) succeeded, want error", opts)
			continue
		}
		field := "MaxBytes"
		if opts.NumCounters < 0 {
			field = "NumCounters"
		}
		if !strings.Contains(err.Error(), field) {
			t.Errorf("New(%+v) error %q does not name %s", opts, err, field)
		}
	}
}

func TestSetGetMiss(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	e := entry("hello")
	if err := c.Set(ctx, "k", e, time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	c.Wait()

	got, ok, err := c.Get(ctx, "k")
	if err != nil || !ok || got != e {
		t.Fatalf("Get(k) = %p, %v, %v; want %p, true, nil", got, ok, err, e)
	}
	got, ok, err = c.Get(ctx, "other")
	if err != nil || ok || got != nil {
		t.Fatalf("Get(other) = %v, %v, %v; want a miss", got, ok, err)
	}
	if c.Len() != 1 || c.Bytes() != costOf(e) {
		t.Errorf("Len, Bytes = %d, %d; want 1, %d", c.Len(), c.Bytes(), costOf(e))
	}
}

func TestSetNotStored(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<10)
	if err := c.Set(ctx, "zero", entry("a"), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "negative", entry("a"), -time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "huge", entry(strings.Repeat("x", 2<<10)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "nil", nil, time.Minute); err == nil {
		t.Error("Set of a nil entry succeeded")
	}
	c.Wait()
	for _, k := range []string{"zero", "negative", "huge", "nil"} {
		if _, ok, _ := c.Get(ctx, k); ok {
			t.Errorf("Get(%s) hit, want miss", k)
		}
	}
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("Len, Bytes = %d, %d; want 0, 0", c.Len(), c.Bytes())
	}
}

func TestTTLExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCache(t, 1<<20)
	if err := c.Set(ctx, "short", entry("a"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "long", entry("b"), time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	if _, ok, _ := c.Get(ctx, "long"); !ok {
		t.Fatal("Get(long) missed right after Set")
	}

	await.Until(t, 5*time.Second, "short entry to expire", func() bool {
		_, ok, _ := c.Get(ctx, "short")
		return !ok
	})
	if _, ok, _ := c.Get(ctx, "long"); !ok {
		t.Error("Get(long) missed after short expired")
	}
}

// TestExpiredReclaimed: an entry past its TTL that is never read again
// leaves the cache, and its bytes are released, within ReclaimWithin
// (the issue: -l1-ttl did not bound memory, an idle instance held its
// full -l1-max-bytes).
func TestExpiredReclaimed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCache(t, 1<<20)
	long := entry("b")
	for i := range 10 {
		if err := c.Set(ctx, fmt.Sprint("short", i), entry(strings.Repeat("a", 1000)), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(ctx, "long", long, time.Hour); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	if c.Len() != 11 {
		t.Fatalf("Len = %d after 11 Sets, want 11", c.Len())
	}
	start := time.Now()
	await.Until(t, time.Second+ReclaimWithin+5*time.Second, "the expired entries' bytes released, unread", func() bool {
		return c.Len() == 1 && c.Bytes() == costOf(long)
	})
	t.Logf("released %v after Set (TTL 1s)", time.Since(start).Round(100*time.Millisecond))
	if _, ok, _ := c.Get(ctx, "long"); !ok {
		t.Error("Get(long) missed")
	}
	checkAccounting(t, c)
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, k, entry(k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	c.Wait()
	if err := c.Delete(ctx, "a", "b", "absent"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for k, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok, _ := c.Get(ctx, k); ok != want {
			t.Errorf("Get(%s) ok = %v, want %v", k, ok, want)
		}
	}
	checkAccounting(t, c)
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
}

func TestClear(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	for i := range 100 {
		if err := c.Set(ctx, fmt.Sprint(i), entry("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	c.Wait()
	c.Clear()
	c.Wait()
	if _, ok, _ := c.Get(ctx, "1"); ok {
		t.Error("Get hit after Clear")
	}
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("after Clear: Len, Bytes = %d, %d; want 0, 0", c.Len(), c.Bytes())
	}
	// The cache stays usable.
	if err := c.Set(ctx, "again", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	if _, ok, _ := c.Get(ctx, "again"); !ok {
		t.Error("Get missed after Set following Clear")
	}
	checkAccounting(t, c)
}

func TestReplaceAccounting(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	small, big := entry("s"), entry(strings.Repeat("b", 500))
	for _, e := range []*tiers.Entry{small, big, small, small} {
		if err := c.Set(ctx, "k", e, time.Minute); err != nil {
			t.Fatal(err)
		}
		c.Wait()
	}
	if got, _, _ := c.Get(ctx, "k"); got != small {
		t.Errorf("Get returned %p, want the last entry set %p", got, small)
	}
	if c.Len() != 1 || c.Bytes() != costOf(small) {
		t.Errorf("Len, Bytes = %d, %d; want 1, %d", c.Len(), c.Bytes(), costOf(small))
	}
	checkAccounting(t, c)
}

func TestBoundedBytes(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 64 << 10
	c := newCache(t, maxBytes)
	body := strings.Repeat("x", 1000)
	var total int64
	for i := range 1000 {
		e := entry(body)
		total += costOf(e)
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), e, time.Minute); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			c.Wait() // let evictions keep up, as live traffic would
		}
	}
	c.Wait()
	if total <= 4*maxBytes {
		t.Fatalf("test inserted only %d bytes", total)
	}
	n, size := held(c)
	if size > maxBytes {
		t.Errorf("cache holds %d bytes, more than MaxBytes %d", size, maxBytes)
	}
	if n == 0 {
		t.Error("cache holds nothing")
	}
	if c.Bytes() > maxBytes {
		t.Errorf("Bytes = %d, more than MaxBytes %d", c.Bytes(), maxBytes)
	}
	checkAccounting(t, c)
}

func TestNumCounters(t *testing.T) {
	for _, tt := range []struct {
		opts Options
		want int64
	}{
		{Options{MaxBytes: 1}, 16_384},
		{Options{MaxBytes: 1 << 20}, 16_384},
		{Options{MaxBytes: 64 << 20}, 1 << 20},
		{Options{MaxBytes: 1 << 30}, 16_777_216},
		{Options{MaxBytes: 1 << 30, NumCounters: 500}, 500},
	} {
		if got := numCounters(tt.opts); got != tt.want {
			t.Errorf("numCounters(%+v) = %d, want %d", tt.opts, got, tt.want)
		}
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	c, err := New(Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	c.Close()
	if _, ok, err := c.Get(ctx, "k"); ok || err != nil {
		t.Errorf("Get after Close = %v, %v; want a miss", ok, err)
	}
	if err := c.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Errorf("Set after Close: %v", err)
	}
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Errorf("after Close: Len, Bytes = %d, %d; want 0, 0", c.Len(), c.Bytes())
	}
}

func TestConcurrentAccounting(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 32<<10) // small enough to evict
	bodies := []string{"s", strings.Repeat("m", 300), strings.Repeat("l", 900)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprintf("k%d", (i*7+g)%64)
				switch i % 5 {
				case 0:
					c.Delete(ctx, k)
				case 1:
					c.Get(ctx, k)
				default:
					c.Set(ctx, k, entry(bodies[(i+g)%len(bodies)]), time.Minute)
				}
			}
		})
	}
	wg.Wait()
	checkAccounting(t, c)
	// ristretto replaces an entry in place, without evicting for the
	// difference: the bound may be overshot by the growth of the entries
	// being replaced concurrently, at most one per writer.
	if slack := 4 * costOf(entry(bodies[2])); c.Bytes() > c.MaxBytes()+slack {
		t.Errorf("Bytes = %d > MaxBytes %d + %d", c.Bytes(), c.MaxBytes(), slack)
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	c := newCache(b, 64<<20)
	const nkeys = 1024
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("cacheproxy:GET:/players/%d", i)
		e := entry(string(bytes.Repeat([]byte("x"), 1024)))
		if err := c.Set(ctx, keys[i], e, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	c.Wait()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok, _ := c.Get(ctx, keys[i%nkeys]); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

// The cost of an entry is the memory it really takes while held: the heap
// grows by about what L1 counts for the entries set (MemSize and
// ristretto's record), for entries
// built as the proxy builds them (Packed) and for each body size the
// proxy commonly stores.
func TestMemSizeMatchesHeap(t *testing.T) {
	for _, size := range []int{100, 1024, 2500, 5000, 16 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const n = 20_000
			c, err := New(Options{MaxBytes: 1 << 40, NumCounters: 10 * n})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body := strings.Repeat("x", size)
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.HeapAlloc
			var cost int64
			for i := range n {
				e := &tiers.Entry{
					Kind:   tiers.KindResponse,
					Status: http.StatusOK,
					Header: tiers.MakeHeader(http.Header{
						"Content-Type":   {"application/octet-stream"},
						"Cache-Control":  {"max-age=300"},
						"Content-Length": {strconv.Itoa(size)},
						"Date":           {"Wed, 25 Nov 2026 18:00:00 GMT"},
					}),
					StoredAt: tiers.At(time.Now()),
					Lifetime: time.Minute,
					URL:      fmt.Sprintf("/blob/%d?size=%d", i, size),
				}
				e.SetBody([]byte(body))
				e = e.Packed()
				cost += costOf(e)
				c.Set(context.Background(), fmt.Sprint("k", i), e, time.Hour)
			}
			c.Wait()
			if c.Len() != n {
				t.Fatalf("held %d of %d entries", c.Len(), n)
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			grown := int64(ms.HeapAlloc) - int64(before)
			per, est := float64(grown)/n, float64(cost)/n
			t.Logf("body %d B: heap grew %.0f B per entry, L1 counts %.0f B", size, per, est)
			if per > est*1.1 || per < est*0.85 {
				t.Errorf("heap grew %.0f B per entry, L1 counts %.0f B: off by more than 10%%", per, est)
			}
		})
	}
}
