package proxy_test

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/jsoncorpus"
	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers/local"
)

// liveHeap returns the heap bytes in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// l1Proxy returns a proxy with an L1 of bound bytes in front of an origin
// served by handler, and the L1; both end with t.
func l1Proxy(t *testing.T, handler http.Handler, bound int64) (*proxy.Handler, *local.Cache) {
	t.Helper()
	o := httptest.NewServer(handler)
	t.Cleanup(o.Close)
	l1, err := local.New(local.Options{MaxBytes: bound, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l1.Close)
	u, _ := url.Parse(o.URL)
	h, err := proxy.New(proxy.Options{Origin: u, Local: l1, Logger: quiet, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return h, l1
}

// TestVaryFillKeepsL1MemoryBound fills an 8 MiB L1 through Vary
// variants and their markers (Vary: Accept-Language; an origin's Vary:
// Accept-Encoding alone no longer makes variants, see selectingHeaders),
// with four times its bound in bodies: the live heap the cache keeps must stay
// within twice its bound. A Vary marker that shared its strings with the
// variant's body allocation kept every body alive after its variant was
// evicted, and was charged for its own strings only: the heap grew with
// every URL ever filled.
func TestVaryFillKeepsL1MemoryBound(t *testing.T) {
	const bound = 8 << 20
	body := make([]byte, 3900) // body and strings in one allocation (see Packed)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rnd.UintN(256)) // incompressible: stored as sent
	}
	h, l1 := l1Proxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Vary", "Accept-Encoding, Accept-Language")
		w.Write(body)
	}), bound)
	before := liveHeap()
	const urls = 4 * bound / 3900
	for i := range urls {
		req := httptest.NewRequest(http.MethodGet, "/items/"+strconv.Itoa(i), nil)
		req.Header.Set("Accept-Encoding", "gzip")
		req.Header.Set("Accept-Language", "en")
		w := &discardWriter{h: make(http.Header)}
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK || w.n != len(body) {
			t.Fatalf("/items/%d: status %d, %d bytes", i, w.status, w.n)
		}
	}
	l1.Wait()
	after := liveHeap()
	grew := int64(after) - int64(before)
	t.Logf("L1: %d entries, %d bytes counted; live heap grew %d bytes (bound %d)", l1.Len(), l1.Bytes(), grew, bound)
	if l1.Bytes() > bound {
		t.Errorf("L1 counts %d bytes, over its bound %d", l1.Bytes(), bound)
	}
	if grew > 2*bound {
		t.Errorf("live heap grew %d bytes filling an L1 of %d: more than twice its bound", grew, bound)
	}
	runtime.KeepAlive(h)
}

// TestL1BytesPerEntry fills a 2 MiB L1 through the proxy with four
// times its bound of distinct URLs and reports what it holds: entries,
// the bytes each costs as counted (Entry.MemSize, ristretto's record
// included) and as the live heap grew. Two kinds of response: random
// 1 KiB bodies (stored as sent) and DRF-style JSON pages of 1–16 KiB
// (stored gzip), the latter also as an origin that compresses itself and
// sends Vary: Accept-Encoding (half the entries are then Vary markers).
// What it asserts is the bound, whatever the load on the machine: L1
// counts at most its bound, and the live heap grows by at most twice it
// (issue 21's goal). The bytes per entry are reported, not asserted: they
// depend on what ristretto admitted, which varies with the machine's load
// (a benchmark's business; see docs/storage.md for the measured figures).
func TestL1BytesPerEntry(t *testing.T) {
	const bound = 2 << 20
	rnd := rand.New(rand.NewPCG(3, 4))
	random := make([]byte, 1024)
	for i := range random {
		random[i] = byte(rnd.UintN(256))
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"random-1KiB", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(random)
		}},
		{"json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonPage(r))
		}},
		{"json-origin-gzip-vary", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Vary", "Accept-Encoding")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gzipped(jsonPage(r)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, l1 := l1Proxy(t, tc.handler, bound)
			before := liveHeap()
			var fed int
			for i := 0; fed < 4*bound; i++ {
				req := httptest.NewRequest(http.MethodGet, "/api/items/?page="+strconv.Itoa(i), nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br")
				w := &discardWriter{h: make(http.Header)}
				h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					t.Fatalf("page %d: status %d", i, w.status)
				}
				fed += w.n
				if i%64 == 0 {
					l1.Wait() // let evictions keep up, as live traffic would
				}
			}
			l1.Wait()
			after := liveHeap()
			grew := int64(after) - int64(before)
			n := l1.Len()
			each := l1.Bytes() / max(n, 1)
			t.Logf("L1 %d B: %d entries, %d B each counted, live heap grew %d B (%d B each)",
				bound, n, each, grew, grew/max(n, 1))
			if l1.Bytes() > bound {
				t.Errorf("L1 counts %d bytes, over its bound %d", l1.Bytes(), bound)
			}
			if grew > 2*bound {
				t.Errorf("live heap grew %d bytes for an L1 of %d: more than twice its bound", grew, bound)
			}
			runtime.KeepAlive(h)
		})
	}
}

// jsonPage returns the corpus page for the page= query of u.
func jsonPage(r *http.Request) []byte {
	id, _ := strconv.Atoi(r.URL.Query().Get("page"))
	return jsoncorpus.Page(id)
}

// gzipped returns b compressed by gzip -6.
func gzipped(b []byte) []byte {
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, 6)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// TestVaryL1HoldsPages fills an L1 past its bound with one pass over
// DRF-style JSON pages, three times: from an origin that sends identity
// (stored gzip by the proxy), from one that compresses itself and sends
// Vary: Accept-Encoding (stored as sent, once: selectingHeaders), and
// from one that also varies on Accept-Language (stored as sent, a variant
// under a Vary marker). Each page then takes about the same bytes, so L1
// must answer about as many pages without the origin in every case (a
// second pass with only-if-cached), and keep its live heap within twice
// its bound.
// L1 used to hold the URL's marker and its variant as two items of
// ristretto's: the marker, read on the miss and again at store time, won
// TinyLFU's admission over the variants, never read, and L1 filled with
// markers whose variants were gone (issue 21: 8,524 pages held against
// 29,126 in 64 MiB).
func TestVaryL1HoldsPages(t *testing.T) {
	const bound = 4 << 20
	held := map[string]int{}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"identity", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Header().Set("Content-Type", "application/json")
			w.Write(jsonPage(r))
		}},
		{"origin-gzip-vary", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Vary", "Accept-Encoding")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gzipped(jsonPage(r)))
		}},
		{"origin-gzip-vary-language", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Vary", "Accept-Encoding, Accept-Language")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gzipped(jsonPage(r)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, l1 := l1Proxy(t, tc.handler, bound)
			const pages = 6000 // about 3 times what the bound holds
			before := liveHeap()
			serve := func(i int, cc string) int {
				req := httptest.NewRequest(http.MethodGet, "/api/items/?page="+strconv.Itoa(i), nil)
				req.Header.Set("Accept-Encoding", "gzip, deflate, br")
				if cc != "" {
					req.Header.Set("Cache-Control", cc)
				}
				w := &discardWriter{h: make(http.Header)}
				h.ServeHTTP(w, req)
				return w.status
			}
			for i := range pages {
				if st := serve(i, ""); st != http.StatusOK {
					t.Fatalf("%s: page %d: status %d", tc.name, i, st)
				}
			}
			l1.Wait()
			grew := int64(liveHeap()) - int64(before)
			for i := range pages {
				if serve(i, "only-if-cached") == http.StatusOK {
					held[tc.name]++
				}
			}
			t.Logf("%s: %d pages held; L1 %d entries, %d B counted; live heap grew %d B (bound %d)",
				tc.name, held[tc.name], l1.Len(), l1.Bytes(), grew, bound)
			if grew > 2*bound {
				t.Errorf("%s: live heap grew %d bytes for an L1 of %d: more than twice its bound", tc.name, grew, bound)
			}
			runtime.KeepAlive(h)
		})
	}
	// Stored once, a page of an origin that compresses takes about what
	// the proxy's own compression takes (the origin's gzip is the
	// standard library's, a little larger; 93-100% in runs); under a
	// marker, a little more still (86-88%). What the Vary groups fixed
	// held 45%. That the URL is stored once is checked exactly by
	// TestVaryAcceptEncodingStoredOnceAcrossInstances.
	for name, want := range map[string]int{"origin-gzip-vary": 85, "origin-gzip-vary-language": 80} {
		if held["identity"] == 0 || held[name]*100 < held["identity"]*want {
			t.Errorf("pages held: %d by %s, %d by identity: want at least %d%%", held[name], name, held["identity"], want)
		}
	}
}

// A hit of a large body allocates no more than one of a small body: its
// Content-Length, which the proxy writes (net/http writes a small one's),
// and its Date come from caches of formatted values, not from a new
// string a hit. (Before, the large hit took two allocations more.)
func TestLargeHitAllocatesAsSmall(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	bodies := map[string][]byte{"/small": make([]byte, 1024), "/large": make([]byte, 16<<10)}
	for _, b := range bodies {
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
	}
	h, l1 := l1Proxy(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bodies[r.URL.Path])
	}), 64<<20)
	allocs := map[string]float64{}
	for path, body := range bodies {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		w := &discardWriter{h: make(http.Header)}
		h.ServeHTTP(w, req)
		l1.Wait()
		hit := func() {
			w.reset()
			h.ServeHTTP(w, req)
		}
		hit()
		if w.h.Get("X-Cache") != "HIT-L1" || w.n != len(body) {
			t.Fatalf("%s: X-Cache %q, %d bytes", path, w.h.Get("X-Cache"), w.n)
		}
		if path == "/large" && w.h.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("%s: Content-Length %q", path, w.h.Get("Content-Length"))
		}
		allocs[path] = testing.AllocsPerRun(200, hit)
	}
	if allocs["/large"] > allocs["/small"] {
		t.Errorf("a hit allocates %v times for 16 KiB, %v for 1 KiB", allocs["/large"], allocs["/small"])
	}
}
