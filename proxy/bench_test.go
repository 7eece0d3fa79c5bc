package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

func benchHit(b *testing.B, opts proxy.Options, wantXCache string, redisCPU func() time.Duration, evictL1 func(), hdr ...string) {
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
	cpu := meterCPU(b, redisCPU)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.reset()
		h.ServeHTTP(w, req)
		if evictL1 != nil {
			evictL1()
		}
	}
	b.StopTimer()
	cpu()
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
	random1k := make([]byte, 1024)
	rand.NewChaCha8([32]byte{1}).Read(random1k)
	random16k := make([]byte, 16<<10)
	rand.NewChaCha8([32]byte{1}).Read(random16k)
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
		// incompressible: stored as sent, the hit path without coding
		// work (what BenchmarkL1Hit measured before compression).
		{"incompressible", "", random1k}, {"incompressible-gzip-client", "gzip, deflate, br", random1k},
		{"incompressible-16k", "", random16k},
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
			benchHit(b, proxy.Options{Origin: origin, Local: l1, Logger: quiet}, "HIT-L1", nil, nil, hdr...)
		})
	}
}

// BenchmarkL2Hit is a hit from Redis (a real redis-server) through the
// whole handler, with no L1, one request at a time: its ns/op is mostly
// the round trip. The json-1k case is a 1 KiB JSON body stored gzip and
// decoded for a client that sends no Accept-Encoding; the blob cases are
// incompressible bodies stored as sent, as the bench's shared scenario
// serves them, the hit path without coding work.
func BenchmarkL2Hit(b *testing.B) {
	srv := redistest.Start(b)
	for _, c := range l2Cases() {
		b.Run(c.name, func(b *testing.B) {
			l2 := benchShared(b, srv, c.name)
			origin := benchOrigin(b, c.body)
			benchHit(b, proxy.Options{Origin: origin, Shared: l2, KeyPrefix: c.name, Logger: quiet}, "HIT-L2", serverCPU(b, srv), nil)
		})
	}
}

// BenchmarkL2HitParallel is BenchmarkL2Hit with requests from every
// GOMAXPROCS goroutine at once, as under load: Gets share pipelines, the
// round trip is overlapped, and ns/op comes closer to the CPU an L2 hit
// costs (the proxy's and the redis-server's, which runs on the same
// machine).
func BenchmarkL2HitParallel(b *testing.B) {
	srv := redistest.Start(b)
	for _, c := range l2Cases() {
		b.Run(c.name, func(b *testing.B) {
			l2 := benchShared(b, srv, c.name)
			origin := benchOrigin(b, c.body)
			h, err := proxy.New(proxy.Options{Origin: origin, Shared: l2, KeyPrefix: c.name, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			fill := httptest.NewRequest(http.MethodGet, "/players/42?page=1", nil)
			h.ServeHTTP(&discardWriter{h: make(http.Header)}, fill)
			b.ReportAllocs()
			b.SetParallelism(8)
			cpu := meterCPU(b, serverCPU(b, srv))
			defer cpu()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/players/42?page=1", nil)
				w := &discardWriter{h: make(http.Header)}
				for pb.Next() {
					w.reset()
					h.ServeHTTP(w, req)
					if w.status != http.StatusOK || w.h.Get("X-Cache") != "HIT-L2" {
						b.Errorf("status %d, X-Cache %q", w.status, w.h.Get("X-Cache"))
						return
					}
				}
			})
		})
	}
}

// benchShared returns an L2 on srv whose keys no other case shares.
func benchShared(b *testing.B, srv *redistest.Server, prefix string) *shared.Tier {
	l2, err := shared.New(shared.Options{URL: srv.URL(), Prefix: prefix, Bans: new(tiers.Bans), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l2.Close() })
	return l2
}

type benchCase struct {
	name string
	body []byte
}

// l2Cases are the bodies of the L2 benchmarks: served as stored (blob-1k,
// blob-16k: random bytes, which the proxy does not compress) and decoded
// on each hit (json-1k, stored gzip).
func l2Cases() []benchCase {
	blob := func(n int) []byte {
		p := make([]byte, n)
		rand.NewChaCha8([32]byte{2}).Read(p)
		return p
	}
	return []benchCase{
		{"blob-1k", blob(1 << 10)}, {"blob-16k", blob(16 << 10)},
		{"json-1k", bytes.Repeat([]byte("x"), 1024)},
	}
}

var quiet = slog.New(slog.DiscardHandler)

// meterCPU starts counting the CPU time this process uses, and, if
// redisCPU is not nil, that of a redis-server; the function it returns
// reports both per op, as cpu-ns/op and redis-cpu-ns/op. On a busy
// shared machine the wall time per op of a benchmark that waits for
// Redis varies by half from one run to the next; the CPU an op costs,
// which is what bounds the throughput of a loaded server, much less.
func meterCPU(b *testing.B, redisCPU func() time.Duration) func() {
	self := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var r0 time.Duration
	if redisCPU != nil {
		r0 = redisCPU()
	}
	s0 := self()
	return func() {
		if b.N == 0 {
			return
		}
		b.ReportMetric(float64(self()-s0)/float64(b.N), "cpu-ns/op")
		if redisCPU != nil {
			b.ReportMetric(float64(redisCPU()-r0)/float64(b.N), "redis-cpu-ns/op")
		}
	}
}

// serverCPU returns a function that reads the CPU time srv has used, as
// its INFO says.
func serverCPU(b *testing.B, srv *redistest.Server) func() time.Duration {
	return func() time.Duration {
		info, err := srv.Client().Info(context.Background(), "cpu").Result()
		if err != nil {
			b.Fatal(err)
		}
		var total float64
		for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			_, rest, _ := strings.Cut(info, f)
			v, _, _ := strings.Cut(rest, "\r\n")
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("redis INFO cpu %s %q", f, v)
			}
			total += x
		}
		return time.Duration(total * float64(time.Second))
	}
}

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
