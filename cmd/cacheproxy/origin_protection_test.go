package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// These tests hold the origin-protection promises (README, "Origin
// protection"; docs/origin-protection.md) through the binary.

// originRequests returns the origin requests the fleet has sent so far,
// refused connections included.
func originRequests(t *testing.T, fleet []*server) int64 {
	t.Helper()
	var n int64
	for _, s := range fleet {
		n += adminStats(t, s).Proxy.OriginRequests
	}
	return n
}

// hammer sends requests for paths, spread over the fleet, from 8 clients
// for d, and returns how many were answered, and by status and Cache-Status
// detail.
func hammer(t *testing.T, fleet []*server, paths []string, d time.Duration) (int, map[string]int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var mu sync.Mutex
	seen := map[string]int{}
	total := 0
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				s, p := fleet[(c+i)%len(fleet)], paths[(c+i)%len(paths)]
				resp, err := client.Get(s.proxyURL + p)
				if err != nil {
					t.Errorf("GET %s: %v", p, err)
					return
				}
				resp.Body.Close()
				cs := resp.Header.Get("Cache-Status")
				detail := "-"
				if _, d, ok := strings.Cut(cs, "detail="); ok {
					detail = d
				}
				mu.Lock()
				total++
				seen[fmt.Sprintf("%d %s", resp.StatusCode, detail)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total, seen
}

// TestFailingOriginIsAskedOncePerKeyPerInterval: with five hot keys stale
// in the cache and the origin failing (500s, then refused connections), a
// fleet of two sends each key's fetch to the origin at most once per
// backoff interval (1s, 2s, 4s...), and serves every other request the
// stale copy at once, Cache-Status detail origin-backoff.
func TestFailingOriginIsAskedOncePerKeyPerInterval(t *testing.T) {
	for _, failure := range []string{"500", "refused"} {
		t.Run(failure, func(t *testing.T) {
			redis := redistest.Start(t)
			var failing atomic.Bool
			o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if failing.Load() {
					http.Error(w, "down", http.StatusInternalServerError)
					return
				}
				w.Header().Set("Cache-Control", "max-age=1, stale-if-error=300")
				fmt.Fprintf(w, "page %s", r.URL.Path)
			}))
			t.Cleanup(o.Close)
			fleet := startFleet(t, redis, o.URL, 2)
			paths := []string{"/k1", "/k2", "/k3", "/k4", "/k5"}
			for _, s := range fleet {
				for _, p := range paths {
					get(t, s, p)
				}
			}
			// Stale everywhere, then the origin fails.
			time.Sleep(1500 * time.Millisecond)
			if failure == "500" {
				failing.Store(true)
			} else {
				o.Close()
				if c, err := net.Dial("tcp", o.Listener.Addr().String()); err == nil {
					c.Close()
					t.Fatal("the closed origin still accepts connections")
				}
			}
			before := originRequests(t, fleet)
			const d = 4 * time.Second
			total, seen := hammer(t, fleet, paths, d)
			asked := originRequests(t, fleet) - before
			t.Logf("%d requests in %v, answers %v, origin asked %d times", total, d, seen, asked)
			if seen["200 origin-backoff"] == 0 {
				t.Errorf("no answer with Cache-Status detail origin-backoff: %v", seen)
			}
			for k := range seen {
				if !strings.HasPrefix(k, "200 ") {
					t.Errorf("answers %q: want every answer a 200 from the stale copy", k)
				}
			}
			// In 4 s, intervals 1, 2, 4 s: at most 3 fetches per key for
			// the fleet; 5 per key allows for a probe started while
			// another's failure was being recorded.
			if limit := int64(5 * len(paths)); asked > limit {
				t.Errorf("the failing origin was asked %d times for %d keys in %v; want at most %d", asked, len(paths), d, limit)
			}
			if total < 10*int(asked) {
				t.Errorf("only %d requests made: the test did not load the proxy", total)
			}
		})
	}
}
