package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers"
	"github.com/cacheproxy/cacheproxy/tiers/local"
	"github.com/cacheproxy/cacheproxy/tiers/shared"
)

// discardWriter is a ResponseWriter that keeps one header map across
// requests, as a server connection would reuse its buffers, so that the
// benchmark counts the handler's allocations and not the recorder's.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

func benchOrigin(b *testing.B, body []byte) *url.URL {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func benchHit(b *testing.B, opts proxy.Options, wantXCache string, evictL1 func(), hdr ...string) {
	h, err := proxy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/players/42?page=1", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, req) // fill
	if evictL1 != nil {
		evictL1()
	}
	w.reset()
	h.ServeHTTP(w, req)
	if got := w.h.Get("X-Cache"); got != wantXCache {
		b.Fatalf("X-Cache = %q, want %q", got, wantXCache)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.reset()
		h.ServeHTTP(w, req)
		if evictL1 != nil {
			evictL1()
		}
	}
	b.StopTimer()
	if w.status != http.StatusOK || w.n == 0 {
		b.Fatalf("status %d, %d bytes", w.status, w.n)
	}
}

// BenchmarkL1Hit is an L1 hit through the whole handler, of a 1 KiB JSON
// body (stored gzip), for a client that accepts gzip (the stored bytes
// as they are) and for one that sends no Accept-Encoding (decoded on
// each hit).
//
// The json-4k cases are a 4 KiB page of a list API (gzip takes it to
// about a fifth), where decoding costs what it does on a real page.
func BenchmarkL1Hit(b *testing.B) {
	x1k := bytes.Repeat([]byte("x"), 1024)
	var page bytes.Buffer
	page.WriteString(`{"count":4817,"next":"/api/players/?page=3","results":[`)
	for i := 0; page.Len() < 4<<10; i++ {
		fmt.Fprintf(&page, `{"id":%d,"name":"player-%d","rank":%d,"score":%d.%02d,"team":"team-%d","active":%t},`,
			1000+i, i*7919%10007, i+1, 100000-i*37, i%100, i%17, i%3 != 0)
	}
	page.WriteString(`{}]}`)
	for _, c := range []struct {
		name, ae string
		body     []byte
	}{
		{"gzip", "gzip, deflate, br", x1k}, {"identity", "", x1k},
		{"gzip-json-4k", "gzip, deflate, br", page.Bytes()}, {"identity-json-4k", "", page.Bytes()},
	} {
		b.Run(c.name, func(b *testing.B) {
			l1, err := local.New(local.Options{MaxBytes: 64 << 20, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l1.Close()
			origin := benchOrigin(b, c.body)
			var hdr []string
			if c.ae != "" {
				hdr = []string{"Accept-Encoding", c.ae}
			}
			benchHit(b, proxy.Options{Origin: origin, Local: l1, Logger: quiet}, "HIT-L1", nil, hdr...)
		})
	}
}

// BenchmarkL2Hit is a hit from Redis (a real redis-server) through the
// whole handler, with no L1.
func BenchmarkL2Hit(b *testing.B) {
	srv := redistest.Start(b)
	l2, err := shared.New(shared.Options{URL: srv.URL(), Bans: new(tiers.Bans), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l2.Close()
	origin := benchOrigin(b, bytes.Repeat([]byte("x"), 1024))
	benchHit(b, proxy.Options{Origin: origin, Shared: l2, Logger: quiet}, "HIT-L2", nil)
}

var quiet = slog.New(slog.DiscardHandler)

// BenchmarkL1HitWhileBanning is an L1 hit while purges of other URLs
// arrive (100,000 of them, one every few microseconds on another
// goroutine): every hit's entry is older than the newest ban, so each is
// checked against the whole table.
func BenchmarkL1HitWhileBanning(b *testing.B) {
	l1, err := local.New(local.Options{MaxBytes: 64 << 20, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l1.Close()
	bans := new(tiers.Bans)
	origin := benchOrigin(b, bytes.Repeat([]byte("x"), 1024))
	h, err := proxy.New(proxy.Options{Origin: origin, Local: l1, Logger: quiet, Bans: bans})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/players/42?page=1", nil)
	w := &discardWriter{h: make(http.Header)}
	h.ServeHTTP(w, req) // fill
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for ; n < 100_000; n++ {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if _, err := h.Purge(context.Background(), tiers.Selector{Kind: tiers.BanURL, Value: "/other/" + strconv.Itoa(n)}); err != nil {
				panic(err)
			}
		}
		done <- n
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.reset()
		h.ServeHTTP(w, req)
	}
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(<-done), "bans")
	if got := w.h.Get("X-Cache"); got != "HIT-L1" {
		b.Fatalf("X-Cache = %q", got)
	}
}
