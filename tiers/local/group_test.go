package local

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// variantOf is a response of url varying on vary, with body.
func variantOf(url, body string, vary ...string) *tiers.Entry {
	e := entry(body)
	e.URL = url
	e.SetExtra(tiers.Extra{Vary: vary})
	return e
}

// markerFor is a Vary marker of url, varying on Other, as a caller of
// Set would store one.
func markerFor(url string) *tiers.Entry {
	m := &tiers.Entry{Kind: tiers.KindVary, URL: url, StoredAt: tiers.At(time.Now())}
	m.SetExtra(tiers.Extra{Vary: []string{"Other"}})
	return m
}

// ae is the variant key of base for the Accept-Encoding value v.
func ae(base, v string) string { return base + "#Accept-Encoding:" + v + "\n" }

// markerOf returns the marker L1 holds under base and the suffixes it
// lists, failing the test if there is none.
func markerOf(t *testing.T, c *Cache, base string) (*tiers.Entry, []string) {
	t.Helper()
	m, ok, _ := c.Get(context.Background(), base)
	if !ok || m.Kind != tiers.KindVary {
		t.Fatalf("Get(%s) = %v, %v; want a Vary marker", base, m, ok)
	}
	return m, m.Header.Values(tiers.VariantField)
}

// TestGroupHoldsVariants: the variants of a URL are one item under its
// base key, with a marker L1 makes itself listing them; each variant key
// reads its own variant; a marker set by the caller is not stored.
func TestGroupHoldsVariants(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	gz, br := variantOf("/a", "gzip body", "Accept-Encoding"), variantOf("/a", "br body", "Accept-Encoding")
	gz.SetExtra(tiers.Extra{Vary: gz.Vary(), Tags: []string{"red"}})
	c.Set(ctx, ae("k", "gzip"), gz, time.Minute)
	c.Wait()
	c.Set(ctx, ae("k", "br"), br, time.Minute)
	// The caller's marker: L1's own stays.
	c.Set(ctx, "k", markerFor("/a"), time.Minute)
	c.Set(ctx, "alone", markerFor("/b"), time.Minute)
	c.Wait()

	m, listed := markerOf(t, c, "k")
	if !slices.Equal(m.Vary(), []string{"Accept-Encoding"}) || m.URL != "/a" || m.StoredAt != br.StoredAt {
		t.Errorf("marker = Vary %v, URL %q, StoredAt %v; want the newest variant's", m.Vary(), m.URL, m.StoredAt)
	}
	if want := []string{"Accept-Encoding:gzip\n", "Accept-Encoding:br\n"}; !slices.Equal(listed, want) {
		t.Errorf("marker lists %q, want %q", listed, want)
	}
	for key, want := range map[string]*tiers.Entry{ae("k", "gzip"): gz, ae("k", "br"): br, ae("k", "zstd"): nil, "alone": nil, ae("alone", "gzip"): nil} {
		got, ok, _ := c.Get(ctx, key)
		if got != want || ok != (want != nil) {
			t.Errorf("Get(%q) = %p, %v; want %p", key, got, ok, want)
		}
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1: a URL and its variants are one item", c.Len())
	}
	checkAccounting(t, c)

	// Storing a variant again replaces it, and makes it the newest.
	gz2 := variantOf("/a", "gzip body 2", "Accept-Encoding")
	c.Set(ctx, ae("k", "gzip"), gz2, time.Minute)
	c.Wait()
	if got, _, _ := c.Get(ctx, ae("k", "gzip")); got != gz2 {
		t.Errorf("Get(gzip) = %p after storing it again, want %p", got, gz2)
	}
	if _, listed := markerOf(t, c, "k"); !slices.Equal(listed, []string{"Accept-Encoding:br\n", "Accept-Encoding:gzip\n"}) {
		t.Errorf("marker lists %q after gzip was stored again", listed)
	}
	checkAccounting(t, c)
}

// TestGroupReplaced: a response that no longer varies replaces the whole
// URL, and a variant replaces a response; a variant that varies on other
// headers than the URL's group starts a new group.
func TestGroupReplaced(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	c.Set(ctx, ae("k", "gzip"), variantOf("/a", "v", "Accept-Encoding"), time.Minute)
	c.Wait()
	plain := variantOf("/a", "plain")
	c.Set(ctx, "k", plain, time.Minute)
	c.Wait()
	if got, _, _ := c.Get(ctx, "k"); got != plain {
		t.Fatalf("Get(k) = %v, want the response that replaced the group", got)
	}
	if _, ok, _ := c.Get(ctx, ae("k", "gzip")); ok {
		t.Error("a variant survived its URL's response")
	}
	v := variantOf("/a", "v", "Accept-Encoding")
	c.Set(ctx, ae("k", "gzip"), v, time.Minute)
	c.Wait()
	if got, _, _ := c.Get(ctx, ae("k", "gzip")); got != v {
		t.Fatalf("Get(variant) = %v after it replaced a response", got)
	}
	lang := variantOf("/a", "v", "Accept-Encoding", "Accept-Language")
	langKey := "k#Accept-Encoding:gzip\nAccept-Language:en\n"
	c.Set(ctx, langKey, lang, time.Minute)
	c.Wait()
	if m, listed := markerOf(t, c, "k"); !slices.Equal(m.Vary(), lang.Vary()) || len(listed) != 1 {
		t.Errorf("marker varies on %v and lists %q; want the new Vary alone", m.Vary(), listed)
	}
	if _, ok, _ := c.Get(ctx, ae("k", "gzip")); ok {
		t.Error("a variant selected by the old Vary survived a new one")
	}
	if got, _, _ := c.Get(ctx, langKey); got != lang {
		t.Errorf("Get(new variant) = %v", got)
	}
	checkAccounting(t, c)
}

// TestGroupBounded: a URL holds at most maxVariants variants, the oldest
// dropped; a group that would pass MaxBytes drops its oldest; a variant
// larger than MaxBytes alone is not stored.
func TestGroupBounded(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	for i := range maxVariants + 8 {
		c.Set(ctx, ae("k", strconv.Itoa(i)), variantOf("/a", "v", "Accept-Encoding"), time.Minute)
		c.Wait()
	}
	_, listed := markerOf(t, c, "k")
	if len(listed) != maxVariants || listed[0] != "Accept-Encoding:8\n" {
		t.Errorf("marker lists %d variants from %q; want %d, from the 9th", len(listed), listed[0], maxVariants)
	}
	for i, want := range map[int]bool{0: false, 7: false, 8: true, maxVariants + 7: true} {
		if _, ok, _ := c.Get(ctx, ae("k", strconv.Itoa(i))); ok != want {
			t.Errorf("variant %d held = %v, want %v", i, ok, want)
		}
	}
	checkAccounting(t, c)

	small := newCache(t, 8<<10)
	for i := range 4 {
		small.Set(ctx, ae("k", strconv.Itoa(i)), variantOf("/a", strings.Repeat("x", 3000), "Accept-Encoding"), time.Minute)
		small.Wait()
	}
	small.Set(ctx, ae("huge", "gzip"), variantOf("/h", strings.Repeat("x", 9000), "Accept-Encoding"), time.Minute)
	small.Wait()
	if _, listed := markerOf(t, small, "k"); len(listed) != 2 || listed[1] != "Accept-Encoding:3\n" {
		t.Errorf("an 8 KiB L1 lists %q, want the 2 newest 3 KB variants", listed)
	}
	if _, ok, _ := small.Get(ctx, "huge"); ok {
		t.Error("a variant larger than MaxBytes was stored")
	}
	if small.Bytes() > small.MaxBytes() {
		t.Errorf("Bytes = %d, over MaxBytes %d", small.Bytes(), small.MaxBytes())
	}
	checkAccounting(t, small)
}

// TestGroupDelete: deleting a variant key drops that variant (the last
// one, the URL); deleting the base key drops the URL whole.
func TestGroupDelete(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 1<<20)
	for _, v := range []string{"gzip", "br", "identity"} {
		c.Set(ctx, ae("k", v), variantOf("/a", v, "Accept-Encoding"), time.Minute)
		c.Wait()
	}
	c.Delete(ctx, ae("k", "br"), ae("k", "absent"))
	c.Wait()
	if _, listed := markerOf(t, c, "k"); !slices.Equal(listed, []string{"Accept-Encoding:gzip\n", "Accept-Encoding:identity\n"}) {
		t.Errorf("after deleting br, marker lists %q", listed)
	}
	if _, ok, _ := c.Get(ctx, ae("k", "br")); ok {
		t.Error("the deleted variant is still held")
	}
	checkAccounting(t, c)
	c.Delete(ctx, ae("k", "gzip"), ae("k", "identity"))
	c.Wait()
	if _, ok, _ := c.Get(ctx, "k"); ok || c.Len() != 0 {
		t.Errorf("after deleting every variant, Get(k) hit = %v, Len = %d; want the URL gone", ok, c.Len())
	}
	c.Set(ctx, ae("k", "gzip"), variantOf("/a", "v", "Accept-Encoding"), time.Minute)
	c.Set(ctx, ae("k2", "gzip"), variantOf("/b", "v", "Accept-Encoding"), time.Minute)
	c.Wait()
	c.Delete(ctx, "k")
	c.Wait()
	if _, ok, _ := c.Get(ctx, ae("k", "gzip")); ok {
		t.Error("a variant survived the deletion of its base key")
	}
	if _, ok, _ := c.Get(ctx, ae("k2", "gzip")); !ok {
		t.Error("another URL's variant was deleted")
	}
	checkAccounting(t, c)
}

// TestGroupPurge: a purge of the URL drops the marker and every variant;
// a variant a tag purge names (and not the others) is dropped alone.
func TestGroupPurge(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	c := newCache(t, 1<<20)
	red := variantOf("/a", "red", "Accept-Encoding")
	red.SetExtra(tiers.Extra{Vary: red.Vary(), Tags: []string{"red"}})
	red.StoredAt = tiers.At(t0)
	blue := variantOf("/a", "blue", "Accept-Encoding")
	blue.SetExtra(tiers.Extra{Vary: blue.Vary(), Tags: []string{"blue"}})
	blue.StoredAt = tiers.At(t0)
	c.Set(ctx, ae("k", "red"), red, time.Minute)
	c.Wait()
	c.Set(ctx, ae("k", "blue"), blue, time.Minute)
	c.Wait()
	c.Purge(tiers.Selector{Kind: tiers.BanTag, Value: "red"}, t0.Add(time.Millisecond))
	if _, ok, _ := c.Get(ctx, ae("k", "red")); ok {
		t.Error("the purged variant hit")
	}
	c.Wait()
	if _, listed := markerOf(t, c, "k"); !slices.Equal(listed, []string{"Accept-Encoding:blue\n"}) {
		t.Errorf("after its purge, the marker lists %q", listed)
	}
	if got, _, _ := c.Get(ctx, ae("k", "blue")); got != blue {
		t.Errorf("the variant the purge did not name missed")
	}
	checkAccounting(t, c)

	c.Purge(tiers.Selector{Kind: tiers.BanURL, Value: "/a"}, t0.Add(time.Millisecond))
	for _, k := range []string{"k", ae("k", "blue")} {
		if _, ok, _ := c.Get(ctx, k); ok {
			t.Errorf("Get(%q) hit after a purge of its URL", k)
		}
	}
	// A fill that fetched before the purge is refused.
	c.Set(ctx, ae("k", "blue"), blue, time.Minute)
	c.Wait()
	if _, ok, _ := c.Get(ctx, ae("k", "blue")); ok {
		t.Error("a variant stored before the purge was accepted after it")
	}
	checkAccounting(t, c)
}

// TestGroupTTL: each variant keeps its own TTL within its group; the
// group leaves L1, its bytes released, once the last has ended.
func TestGroupTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCache(t, 1<<20)
	c.Set(ctx, ae("k", "short"), variantOf("/a", "s", "Accept-Encoding"), time.Second)
	c.Wait()
	c.Set(ctx, ae("k", "long"), variantOf("/a", "l", "Accept-Encoding"), 3*time.Second)
	c.Wait()
	await.Until(t, 5*time.Second, "the short variant to expire", func() bool {
		_, ok, _ := c.Get(ctx, ae("k", "short"))
		return !ok
	})
	if _, ok, _ := c.Get(ctx, ae("k", "long")); !ok {
		t.Fatal("the long variant expired with the short one")
	}
	// A variant stored now drops the expired one.
	c.Set(ctx, ae("k", "new"), variantOf("/a", "n", "Accept-Encoding"), time.Second)
	c.Wait()
	if _, listed := markerOf(t, c, "k"); !slices.Equal(listed, []string{"Accept-Encoding:long\n", "Accept-Encoding:new\n"}) {
		t.Errorf("marker lists %q, want the live variants", listed)
	}
	await.Until(t, 3*time.Second+ReclaimWithin+5*time.Second, "the group's bytes released, unread", func() bool {
		return c.Len() == 0 && c.Bytes() == 0
	})
}

// TestGroupMemSizeMatchesHeap: what L1 counts for a group (its variants,
// marker and bookkeeping) is what the heap holds for it.
func TestGroupMemSizeMatchesHeap(t *testing.T) {
	const urls, variants = 5_000, 2
	c, err := New(Options{MaxBytes: 1 << 40, NumCounters: 10 * urls})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := strings.Repeat("x", 1024)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i := range urls {
		for _, v := range []string{"gzip", "br"}[:variants] {
			e := &tiers.Entry{
				Kind:   tiers.KindResponse,
				Status: http.StatusOK,
				Header: tiers.MakeHeader(http.Header{
					"Content-Type":     {"application/json"},
					"Content-Encoding": {v},
					"Vary":             {"Accept-Encoding"},
					"Date":             {"Wed, 25 Nov 2026 18:00:00 GMT"},
				}),
				StoredAt: tiers.At(time.Now()),
				Lifetime: time.Minute,
				URL:      fmt.Sprintf("/api/items/?page=%d", i),
			}
			e.SetBody([]byte(body))
			e.SetExtra(tiers.Extra{Vary: []string{"Accept-Encoding"}})
			c.Set(context.Background(), ae(fmt.Sprint("1:G:", e.URL), v), e.Packed(), time.Hour)
			c.Wait() // applied before the group's next Set reads it
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if c.Len() != urls {
		t.Fatalf("held %d of %d URLs", c.Len(), urls)
	}
	for i := range urls {
		for _, v := range []string{"gzip", "br"}[:variants] {
			if _, ok, _ := c.Get(context.Background(), ae(fmt.Sprint("1:G:/api/items/?page=", i), v)); !ok {
				t.Fatalf("URL %d does not hold its %s variant", i, v)
			}
		}
	}
	grown := int64(ms.HeapAlloc) - int64(before)
	per, est := float64(grown)/urls, float64(c.Bytes())/urls
	t.Logf("%d variants of 1 KiB: heap grew %.0f B per URL, L1 counts %.0f B", variants, per, est)
	if per > est*1.1 || per < est*0.9 {
		t.Errorf("heap grew %.0f B per URL, L1 counts %.0f B: off by more than 10%%", per, est)
	}
	checkAccounting(t, c)
}

// TestGroupHoldsNoMemoryOutsideIt: a group's marker shares memory with
// its own newest variant alone, so the heap L1 keeps is what it counts
// even after variants are replaced and deleted. A URL takes a large
// variant that is then replaced, or a large newest variant that is then
// deleted, under long keys with long suffixes, each key a new string: a
// marker that kept a replaced or deleted variant's strings (the
// variant's allocation holds its body), a request key's suffix (the key
// with it), or an older group's copy of the suffixes would keep memory
// alive that no group counts.
func TestGroupHoldsNoMemoryOutsideIt(t *testing.T) {
	const urls = 2_000
	ctx := context.Background()
	c, err := New(Options{MaxBytes: 1 << 40, NumCounters: 10 * urls})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pad := strings.Repeat("p", 1024) // in every base key
	lang := strings.Repeat("l", 512) // in every suffix
	key := func(i int, v string) string {
		return fmt.Sprintf("1:G:/items/%d?%s#Accept-Encoding:%s\nAccept-Language:%s\n", i, pad, v, lang)
	}
	variant := func(i, size int) *tiers.Entry {
		e := variantOf(fmt.Sprint("/items/", i), strings.Repeat("b", size), "Accept-Encoding", "Accept-Language")
		return e.Packed()
	}
	set := func(i int, v string, size int) {
		c.Set(ctx, key(i, v), variant(i, size), time.Hour)
		c.Wait() // applied before the group's next change reads it
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i := range urls {
		// Half the URLs end with a replacement, half with a deletion:
		// either leak would last until the URL's next change.
		if i%2 == 0 {
			set(i, "gzip", 12_000) // replaced below
			set(i, "br", 100)
			set(i, "gzip", 100)
			continue
		}
		set(i, "br", 100)
		set(i, "gzip", 100)
		set(i, "zstd", 12_000) // the newest, deleted below
		c.Delete(ctx, key(i, "zstd"))
		c.Wait()
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	for i := range urls {
		for v, want := range map[string]bool{"br": true, "gzip": true, "zstd": false} {
			if e, ok, _ := c.Get(ctx, key(i, v)); ok != want || ok && e.BodyLen() != 100 {
				t.Fatalf("URL %d: Get(%s) = %v (%d B); want %v, 100 B", i, v, ok, e.BodyLen(), want)
			}
		}
	}
	grown := int64(ms.HeapAlloc) - int64(before)
	per, est := float64(grown)/urls, float64(c.Bytes())/urls
	t.Logf("two 100 B variants under 1.6 KiB keys: heap grew %.0f B per URL, L1 counts %.0f B", per, est)
	if per > est*1.1 || per < est*0.9 {
		t.Errorf("heap grew %.0f B per URL, L1 counts %.0f B: off by more than 10%%", per, est)
	}
	checkAccounting(t, c)
}

// TestGroupConcurrent: variants of a few URLs stored, read and deleted
// at once never put a variant under another URL's or another Vary's
// marker, and the counters match what ristretto holds.
func TestGroupConcurrent(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, 64<<10) // small enough to evict
	varies := [][]string{{"Accept-Encoding"}, {"Accept-Encoding", "Accept-Language"}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				u := fmt.Sprint("/u", (i+g)%8)
				vary := varies[(i/3+g)%2]
				key := "k" + u + "#" + strings.Join(vary, ",") + ":" + strconv.Itoa(i%5)
				switch i % 7 {
				case 0:
					c.Delete(ctx, key)
				case 1:
					c.Delete(ctx, "k"+u)
				case 2, 3:
					if e, ok, _ := c.Get(ctx, key); ok && (e.URL != u || !slices.Equal(e.Vary(), vary)) {
						t.Errorf("Get(%q) = a variant of %s varying on %v", key, e.URL, e.Vary())
					}
				default:
					c.Set(ctx, key, variantOf(u, strings.Repeat("b", i%900), vary...), time.Minute)
				}
			}
		})
	}
	wg.Wait()
	c.Wait()
	c.c.IterValues(func(e *tiers.Entry) bool {
		g := groupOf(e)
		if g == nil {
			return false
		}
		for _, m := range g.vs {
			if m.e.URL != g.marker.URL || !slices.Equal(m.e.Vary(), g.marker.Vary()) {
				t.Errorf("group of %s varying on %v holds a variant of %s varying on %v",
					g.marker.URL, g.marker.Vary(), m.e.URL, m.e.Vary())
			}
		}
		return false
	})
	checkAccounting(t, c)
}

// TestGroupDeleteLastLive: deleting the one variant of a URL whose TTL
// has not ended drops the URL, though the group still holds an expired
// one (a group of expired variants alone would be stored with no TTL
// left, and refused, the deleted variant kept).
func TestGroupDeleteLastLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCache(t, 1<<20)
	c.Set(ctx, ae("k", "short"), variantOf("/a", "s", "Accept-Encoding"), time.Second)
	c.Wait()
	c.Set(ctx, ae("k", "long"), variantOf("/a", "l", "Accept-Encoding"), time.Hour)
	c.Wait()
	await.Until(t, 5*time.Second, "the short variant to expire", func() bool {
		_, ok, _ := c.Get(ctx, ae("k", "short"))
		return !ok
	})
	c.Delete(ctx, ae("k", "long"))
	c.Wait()
	for _, k := range []string{"k", ae("k", "long")} {
		if _, ok, _ := c.Get(ctx, k); ok {
			t.Errorf("Get(%q) hit after its last live variant was deleted", k)
		}
	}
	checkAccounting(t, c)
}
