package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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

// TestStalePerRoute: a route's stale-if-error serves a copy another
// instance stored, after its TTL ran out, while the origin fails, though
// the origin sent no stale-if-error of its own; inspect shows the window;
// a route's stale-while-revalidate serves the stale copy at once.
func TestStalePerRoute(t *testing.T) {
	redis := redistest.Start(t)
	var failing atomic.Bool
	var asked atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Etag", `"v1"`)
		fmt.Fprintf(w, "page %s", r.URL.Path) // no Cache-Control: a DRF view
	}))
	t.Cleanup(o.Close)
	cfg := t.TempDir() + "/cacheproxy.yaml"
	writeTestFile(t, cfg, `routes:
  - path: /rank
    ttl: 1s
    stale-if-error: 60s
  - path: /feed
    ttl: 1s
    stale-while-revalidate: 60s
`)
	fleet := startFleet(t, redis, o.URL, 2, "-config", cfg)
	a, b := fleet[0], fleet[1]
	get(t, a, "/rank")
	get(t, a, "/feed")
	code, _, body := fetch(t, "GET", b.adminURL+"/cache?url=/rank", fleetToken)
	if code != 200 || !strings.Contains(body, `"stale_if_error_seconds": 60`) {
		t.Errorf("inspect /rank = %d %s; want stale_if_error_seconds 60", code, body)
	}
	time.Sleep(1500 * time.Millisecond) // past the route's TTL
	failing.Store(true)
	code, h, body := fetch(t, "GET", b.proxyURL+"/rank", "")
	if code != 200 || body != "page /rank" || !strings.Contains(h.Get("Cache-Status"), "stale-if-error") {
		t.Errorf("GET /rank with the origin failing = %d %q (%s); want the stale copy, 200", code, body, h.Get("Cache-Status"))
	}
	code, h, body = fetch(t, "GET", b.proxyURL+"/feed", "")
	if code != 200 || body != "page /feed" || !strings.Contains(h.Get("Cache-Status"), "stale-while-revalidate") {
		t.Errorf("GET /feed stale = %d %q (%s); want the stale copy at once", code, body, h.Get("Cache-Status"))
	}
}

// TestStatusTTL: -status-ttl stores a 404 without explicit freshness for
// its time, a route's status-ttl does too, and neither stores a private
// 404.
func TestStatusTTL(t *testing.T) {
	var asked sync.Map
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := asked.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if strings.HasPrefix(r.URL.Path, "/private") {
			w.Header().Set("Cache-Control", "private")
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(o.Close)
	cfg := t.TempDir() + "/cacheproxy.yaml"
	writeTestFile(t, cfg, `routes:
  - path: /route/
    status-ttl: {404: 30s, 410: 1m}
`)
	byRoute := startServer(t, nil, "-origin", o.URL, "-config", cfg)
	byFlag := startServer(t, nil, "-origin", o.URL, "-status-ttl", "404=30s,410=1m")
	for _, c := range []struct {
		s *server
		p string
	}{{byRoute, "/route/gone"}, {byRoute, "/elsewhere"}, {byFlag, "/gone"}, {byFlag, "/private"}} {
		for range 3 {
			if code, _, _ := fetch(t, "GET", c.s.proxyURL+c.p, ""); code != 404 {
				t.Fatalf("GET %s = %d, want 404", c.p, code)
			}
		}
	}
	count := func(p string) int64 {
		n, _ := asked.Load(p)
		return n.(*atomic.Int64).Load()
	}
	for p, want := range map[string]int64{"/route/gone": 1, "/elsewhere": 3, "/gone": 1, "/private": 3} {
		if got := count(p); got != want {
			t.Errorf("origin asked %d times for %s, want %d", got, p, want)
		}
	}
}

func writeTestFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
