package shared

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestMeasurePurges records many distinct URL purges through a real
// redis-server and reports the purge latency, how long a new instance
// takes to load the bans and use its local tier, and what the log costs
// Redis and the table costs the process. It is a measurement, not a
// test: it runs only with CACHEPROXY_MEASURE_PURGES set to the number of
// purges (e.g. 100000), and optionally CACHEPROXY_MEASURE_URL_BYTES to
// the length of each URL (default about 40).
//
//	CACHEPROXY_MEASURE_PURGES=100000 go test -run TestMeasurePurges -v ./tiers/shared
func TestMeasurePurges(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CACHEPROXY_MEASURE_PURGES"))
	if n <= 0 {
		t.Skip("set CACHEPROXY_MEASURE_PURGES to run")
	}
	urlBytes, _ := strconv.Atoi(os.Getenv("CACHEPROXY_MEASURE_URL_BYTES"))
	srv := redistest.Start(t)
	ctx := context.Background()
	usedMemory := func() string {
		info, err := srv.Client().Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory_human:"); ok {
				return v
			}
		}
		return "?"
	}
	before := usedMemory()
	a := newMember(t, srv, "a")

	const workers = 8
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				u := fmt.Sprintf("/players/%d?sort=score&page=%d", i, i%97)
				if len(u) < urlBytes {
					u += "&pad=" + strings.Repeat("x", urlBytes-len(u)-5)
				}
				t0 := time.Now()
				res, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: u}, "")
				lat[i] = time.Since(t0)
				if err != nil || len(res.Missing) > 0 {
					t.Errorf("purge %d: %v, missing %v", i, err, res.Missing)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(n-1))].Round(time.Microsecond) }
	held, _ := srv.Client().ZCard(ctx, a.tier.bansKey()).Result()
	floor, _ := srv.Client().Get(ctx, a.tier.floorKey()).Result()
	t.Logf("%d purges by %d workers in %v (%.0f/s): latency p50 %v, p99 %v, max %v",
		n, workers, took.Round(time.Millisecond), float64(n)/took.Seconds(), q(0.5), q(0.99), q(1))
	t.Logf("redis used_memory: %s before, %s after; log holds %d bans, floor %q; instance a holds %d",
		before, usedMemory(), held, floor, a.bans.Len())

	// A new instance: from NewFleet to a usable local tier.
	t0 := time.Now()
	b := newMember(t, srv, "b")
	t.Logf("new instance: local tier usable after %v, %d bans applied (seq %d), %d floors",
		time.Since(t0).Round(time.Millisecond), b.bans.Len(), b.bans.Applied(), b.tier.BanFloors())

	// What a table of these bans costs the process.
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c := new(tiers.Bans)
	lone, _ := newTier(t, Options{URL: srv.URL(), Bans: c})
	t0 = time.Now()
	if err := syncAll(ctx, lone); err != nil {
		t.Fatal(err)
	}
	loadTook := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("loading the log into an empty table: %v; the table holds %d bans in about %.1f MiB of heap",
		loadTook.Round(time.Millisecond), c.Len(), float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/(1<<20))
	runtime.KeepAlive(c)
}
