package proxy_test

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

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

// TestVaryFillKeepsL1MemoryBound fills an 8 MiB L1 through Vary
// variants, as an origin that sends Vary: Accept-Encoding makes it, with
// four times its bound in bodies: the live heap the cache keeps must stay
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
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write(body)
	}))
	defer o.Close()
	l1, err := local.New(local.Options{MaxBytes: bound, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	u, _ := url.Parse(o.URL)
	h, err := proxy.New(proxy.Options{Origin: u, Local: l1, Logger: quiet, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	const urls = 4 * bound / 3900
	for i := range urls {
		req := httptest.NewRequest(http.MethodGet, "/items/"+strconv.Itoa(i), nil)
		req.Header.Set("Accept-Encoding", "gzip")
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
