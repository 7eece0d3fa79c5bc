package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The storage workload (issue 21): a corpus of DRF-style JSON list pages
// of 1–16 KiB (internal/jsoncorpus), every cache given 64 MiB. One pass
// over storagePages distinct pages fills it; a probe pass then counts the
// pages it holds; a Zipf pass over the same pages measures the hit ratio.
const (
	storagePages  = 120_000
	storageBudget = 64 << 20
	storageZipfS  = 1.01
	// storageZipfRequests is the length of the Zipf pass.
	storageZipfRequests = 150_000
	storageWorkers      = 16
	storageAE           = "gzip, deflate, br"
)

// varnishGzipVCL is varnishVCL with beresp.do_gzip: Varnish compresses
// what it stores, as cacheproxy does.
const varnishGzipVCL = `vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "%s"; }
sub vcl_backend_response {
  set beresp.do_gzip = true;
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`

// storageRow is one system's line of the storage table.
type storageRow struct {
	system, origin string
	held           int64 // pages held after one pass (-1: not measured)
	heldBytes      int64 // what the cache says they take
	hitRatio       float64
	note           string
	gzip, identity hitCost // a hit's cost for a gzip client and for one without Accept-Encoding
}

// The hit cost: after the Zipf pass, storageHitRequests requests over the
// storageHotPages most requested pages (held by every system by then),
// first once each to warm what a client of that kind gets (under Vary,
// an identity client is another variant), then measured.
const (
	storageHitRequests = 20_000
	storageHotPages    = 200
)

// hitCost is what a hit costs, on average: the server's CPU (its
// processes' utime+stime, Redis's included for the L2 row), the body
// bytes the client read, and the bytes Redis sent (the L2 row).
type hitCost struct {
	cpu        time.Duration
	body       float64
	redisBytes float64
}

func (h *harness) storage(ctx context.Context) error {
	type sys struct {
		name     string
		gzipVary bool
		start    func(o *server) (*server, error)
	}
	l1 := func(o *server) (*server, error) {
		return h.startCacheproxy("cacheproxy", o, nil, "-l1-max-bytes", "64MiB", "-l1-ttl", "1h")
	}
	varnish := func(o *server) (*server, error) { return h.startVarnish(o, "64M") }
	varnishGzip := func(o *server) (*server, error) { return h.startVarnishVCL(o, "64M", varnishGzipVCL) }
	systems := []sys{
		{sysL1, false, l1}, {sysL1, true, l1},
		{sysVarn, false, varnish}, {sysVarn + ", beresp.do_gzip", false, varnishGzip}, {sysVarn, true, varnish},
	}
	var redisSrv *server
	l2 := func(o *server) (*server, error) {
		rs, err := h.startRedis()
		if err != nil {
			return nil, err
		}
		redisSrv = rs
		s, err := h.startCacheproxy("cacheproxy", o, rs, "-l1-max-bytes", "0")
		if s != nil {
			s.pids = append(s.pids, rs.pids...)
		}
		return s, err
	}
	var rows []storageRow
	for _, s := range systems {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := h.storageSystem(ctx, s.name, s.gzipVary, s.start, nil)
		h.ps.stopAll()
		if err != nil {
			h.fail(s.name, err)
			continue
		}
		rows = append(rows, r)
		h.progress(fmt.Sprintf("%s (%s): %d pages held, hit ratio %.3f", r.system, r.origin, r.held, r.hitRatio))
	}
	// L2 alone: what a hit read from Redis costs, and how many bytes it
	// moves; Redis holds every page (it is not bounded here), so no pages
	// held or hit ratio.
	for _, gzipVary := range []bool{false, true} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := h.storageSystem(ctx, sysShared, gzipVary, l2, func() *server { return redisSrv })
		h.ps.stopAll()
		if err != nil {
			h.fail(sysShared, err)
			continue
		}
		rows = append(rows, r)
		h.progress(fmt.Sprintf("%s (%s): %.0f Redis bytes per gzip hit", r.system, r.origin, r.gzip.redisBytes))
	}
	h.storageReport(rows)
	return nil
}

// storageSystem measures one system against a fresh origin. With redis
// (the L2 row), only the hit cost is measured, with the bytes Redis sends.
func (h *harness) storageSystem(ctx context.Context, name string, gzipVary bool, start func(o *server) (*server, error), redis func() *server) (storageRow, error) {
	r := storageRow{system: name, origin: "identity JSON"}
	addr, _, err := h.listen()
	if err != nil {
		return r, err
	}
	extra := []string{"-cache-control", "max-age=3600"}
	if gzipVary {
		extra = append(extra, "-json-gzip-vary")
		r.origin = "gzip + Vary: Accept-Encoding"
	}
	if _, err := h.launchOrigin(addr, 0, extra...); err != nil {
		return r, err
	}
	origin := &server{url: "http://" + addr, addr: addr}
	front, err := start(origin)
	if err != nil {
		return r, err
	}
	base := front.url + "/api/pages/"
	if redis != nil {
		r.held = -1
		r.gzip, r.identity, err = hitCosts(ctx, front, base, redis().redisAddr)
		return r, err
	}
	// Fill: one pass, every page once.
	if err := storageDrive(ctx, storagePages, func(i int) (string, http.Header) {
		return base + fmt.Sprint(i), http.Header{"Accept-Encoding": {storageAE}}
	}, nil); err != nil {
		return r, err
	}
	time.Sleep(2 * time.Second) // let the caches apply their last stores
	switch {
	case front.admin != "":
		// Probe: only-if-cached answers 504 for what L1 does not hold
		// and fills nothing.
		var held atomic.Int64
		err := storageDrive(ctx, storagePages, func(i int) (string, http.Header) {
			return base + fmt.Sprint(i), http.Header{"Accept-Encoding": {storageAE}, "Cache-Control": {"only-if-cached"}}
		}, func(status int, _ int64) {
			if status == http.StatusOK {
				held.Add(1)
			}
		})
		if err != nil {
			return r, err
		}
		r.held = held.Load()
		if st, err := stats(front); err == nil && st.L1 != nil {
			r.heldBytes = st.L1.Bytes
			r.note = fmt.Sprintf("L1: %s items (a varying URL, its marker and variants, is one), %s counted", num(float64(st.L1.Entries)), mib(st.L1.Bytes))
			if heap, err := heapInUse(front); err == nil {
				r.note += fmt.Sprintf("; Go heap in use %s, %.2f× the L1 bound", mib(heap), float64(heap)/storageBudget)
			}
		}
	case front.varnishDir != "":
		r.held, r.heldBytes = varnishObjects(front)
		r.note = "MAIN.n_object, SMA.s0.g_bytes"
	}
	// Zipf pass over the same pages, from what the fill left.
	before, err := originCount(origin)
	if err != nil {
		return r, err
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), storageZipfS, 1, storagePages-1)
	ids := make([]uint64, storageZipfRequests)
	for i := range ids {
		ids[i] = z.Uint64()
	}
	if err := storageDrive(ctx, len(ids), func(i int) (string, http.Header) {
		return base + fmt.Sprint(ids[i]), http.Header{"Accept-Encoding": {storageAE}}
	}, nil); err != nil {
		return r, err
	}
	after, err := originCount(origin)
	if err != nil {
		return r, err
	}
	r.hitRatio = math.Max(0, 1-float64(after-before)/float64(len(ids)))
	r.gzip, r.identity, err = hitCosts(ctx, front, base, "")
	return r, err
}

// hitCosts measures a hit of the hot pages for a gzip client and for an
// identity client (see storageHitRequests); redisAddr, if set, is the
// Redis whose bytes sent are counted.
func hitCosts(ctx context.Context, front *server, base, redisAddr string) (gzip, identity hitCost, err error) {
	for _, c := range []struct {
		ae   string
		cost *hitCost
	}{{storageAE, &gzip}, {"", &identity}} {
		hdr := http.Header{}
		if c.ae != "" {
			hdr.Set("Accept-Encoding", c.ae)
		}
		page := func(i int) (string, http.Header) { return base + fmt.Sprint(i%storageHotPages), hdr }
		if err := storageDrive(ctx, storageHotPages, page, nil); err != nil {
			return gzip, identity, err
		}
		time.Sleep(time.Second) // the caches' last stores applied
		var body atomic.Int64
		sentBefore := redisSent(redisAddr)
		before := treeUsage(front.pids...)
		err := storageDrive(ctx, storageHitRequests, page, func(_ int, n int64) { body.Add(n) })
		after := treeUsage(front.pids...)
		if err != nil {
			return gzip, identity, err
		}
		c.cost.cpu = (after.CPU - before.CPU) / storageHitRequests
		c.cost.body = float64(body.Load()) / storageHitRequests
		if redisAddr != "" {
			c.cost.redisBytes = float64(redisSent(redisAddr)-sentBefore) / storageHitRequests
		}
	}
	return gzip, identity, nil
}

// redisSent is the bytes the Redis at addr has sent to its clients
// (INFO's total_net_output_bytes), 0 without addr.
func redisSent(addr string) int64 {
	if addr == "" {
		return 0
	}
	_, v := redisStat(addr, "total_net_output_bytes")
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// storageDrive sends n GETs, request(i) for i in [0, n), from
// storageWorkers workers, reading each body whole; seen, if not nil, is
// given each status and body length. Any transport error or 5xx other
// than a 504 (an only-if-cached miss) stops it.
func storageDrive(ctx context.Context, n int, request func(i int) (string, http.Header), seen func(status int, body int64)) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: storageWorkers, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range storageWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				u, hdr := request(i)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				req.Header = hdr
				resp, err := client.Do(req)
				var read int64
				if err == nil {
					read, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode >= 500 && resp.StatusCode != http.StatusGatewayTimeout {
						err = fmt.Errorf("GET %s: %s", u, resp.Status)
					}
				}
				if err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
				if seen != nil {
					seen(resp.StatusCode, read)
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// heapInUse returns a cacheproxy's Go heap in use (HeapInuse: spans
// holding objects, live or not yet swept), from its /metrics: what issue
// 21 bounds at twice the L1's bytes.
func heapInUse(s *server) (int64, error) {
	b, err := get(s.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	const name = "go_memstats_heap_inuse_bytes "
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("%s/metrics: no %s", s.admin, strings.TrimSpace(name))
}

// storageReport writes the storage section.
func (h *harness) storageReport(rows []storageRow) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s distinct pages of a DRF-style JSON corpus (internal/jsoncorpus: list pages of 1–16 KiB, log-uniform, median about 4 KiB, gzip -6 ratio about 0.29), "+
		"Cache-Control max-age=3600, every cache given 64 MiB, clients sending Accept-Encoding: %s. "+
		"**Pages held**: after one pass over every page (16 concurrent clients), the pages the cache can answer without the origin "+
		"(cacheproxy: a second pass with Cache-Control: only-if-cached, 200s counted; Varnish: MAIN.n_object). "+
		"**Zipf hit ratio**: then %s requests, Zipf s=%.2f over the same pages, 1 - origin requests / requests.\n\n",
		num(storagePages), storageAE, num(storageZipfRequests), storageZipfS)
	b.WriteString("| system | origin sends | pages held | bytes each | Zipf hit ratio | notes |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.held < 0 {
			continue
		}
		each := "-"
		if r.held > 0 {
			each = num(float64(storageBudget) / float64(r.held))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.3f | %s |\n", r.system, r.origin, num(float64(r.held)), each, r.hitRatio, r.note)
	}
	b.WriteString("\n*bytes each* is 64 MiB over the pages held (what the budget costs a page, bookkeeping and Vary markers included).\n")
	fmt.Fprintf(&b, "\n**What a hit costs**: after the Zipf pass, %s requests over the %d most requested pages (each asked once first, so that "+
		"what a client of the kind gets is stored), for a client sending Accept-Encoding: %s and for one sending none (identity): "+
		"the server's CPU per hit (its processes' utime+stime; for the L2 row, L1 off and every hit read from Redis, Redis's CPU included), "+
		"the body bytes the client read, and the bytes Redis sent per hit (INFO total_net_output_bytes).\n\n",
		num(storageHitRequests), storageHotPages, storageAE)
	b.WriteString("| system | origin sends | CPU per hit, gzip client | CPU per hit, identity client | body bytes per hit, gzip / identity | Redis bytes per hit, gzip / identity |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		redis := "-"
		if r.gzip.redisBytes > 0 {
			redis = num(r.gzip.redisBytes) + " / " + num(r.identity.redisBytes)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f µs | %.1f µs | %s / %s | %s |\n", r.system, r.origin,
			float64(r.gzip.cpu)/float64(time.Microsecond), float64(r.identity.cpu)/float64(time.Microsecond),
			num(r.gzip.body), num(r.identity.body), redis)
	}
	h.note("storage", b.String())
}
