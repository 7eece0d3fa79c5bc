package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// requestFrom sends one request with a connection from the loopback
// address ip (another client, as the proxy sees it) and returns the
// status and body.
func requestFrom(t *testing.T, ip, method, url string) (int, string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// bansHeld returns the bans each instance of the fleet holds.
func bansHeld(t *testing.T, fleet []*server) []int {
	var n []int
	for _, s := range fleet {
		n = append(n, adminStats(t, s).Fleet.Self.BansHeld)
	}
	return n
}

// TestFleetInvalidationFlood: anonymous clients cannot fill the ban log.
// POSTs to long distinct URLs that are not cached record no ban; an
// extension method answered 2xx invalidates nothing; a POST to a cached
// URL still invalidates it fleet-wide; one client's bans are bounded
// (-max-bans 200: 1,600 bytes, about 5 short URLs), past which its
// invalidations still drop the URL from L2 and its instance, and another
// client's invalidation still records a ban for the fleet.
func TestFleetInvalidationFlood(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2, "-max-bans", "200")
	a, b := fleet[0], fleet[1]

	base := bansHeld(t, fleet) // the epoch's opening ban
	long := strings.Repeat("x", 8000)
	for i := range 300 {
		if code, body := requestFrom(t, "127.0.0.1", "POST", fmt.Sprintf("%s/w/%d?q=%s", a.proxyURL, i, long)); code != 200 || body != "done" {
			t.Fatalf("POST = %d %q", code, body)
		}
	}
	if n := bansHeld(t, fleet); n[0] != base[0] || n[1] != base[1] {
		t.Fatalf("300 POSTs of 8 KB URLs not cached: bans held %v, want %v as before", n, base)
	}

	// An extension method on an uncached URL records no ban either.
	for _, m := range []string{"FOOBAR", "PURGE"} {
		if code, body := requestFrom(t, "127.0.0.1", m, fmt.Sprintf("%s/w/x?q=%s", a.proxyURL, long)); code != 200 || body != "done" {
			t.Fatalf("%s = %d %q", m, code, body)
		}
	}
	if n := bansHeld(t, fleet); n[0] != base[0] || n[1] != base[1] {
		t.Fatalf("FOOBAR and PURGE of an uncached URL: bans held %v, want %v as before", n, base)
	}
	warm(t, fleet, "/players/1", "v1 /players/1")
	o.Version.Store(2)
	requestFrom(t, "127.0.0.1", "POST", a.proxyURL+"/players/1")
	for _, s := range fleet {
		if x, body := get(t, s, "/players/1"); body != "v2 /players/1" {
			t.Errorf("after a POST to a cached URL: %s %q, want v2", x, body)
		}
	}
	if n := bansHeld(t, fleet); n[0] != base[0]+1 {
		t.Errorf("bans held %v, want one more than %v", n, base)
	}

	// One client's budget.
	for i := 10; i < 20; i++ {
		warm(t, fleet, fmt.Sprintf("/players/%d", i), fmt.Sprintf("v2 /players/%d", i))
	}
	o.Version.Store(3)
	for i := 10; i < 20; i++ {
		requestFrom(t, "127.0.0.1", "POST", fmt.Sprintf("%s/players/%d", a.proxyURL, i))
	}
	held := bansHeld(t, fleet)[0]
	if held > base[0]+6 {
		t.Errorf("one client recorded %d bans, want its budget (5)", held)
	}
	for i := 10; i < 20; i++ {
		if x, body := get(t, a, fmt.Sprintf("/players/%d", i)); body != fmt.Sprintf("v3 /players/%d", i) {
			t.Errorf("over budget, on the instance that saw the POST: %s %q, want v3", x, body)
		}
	}
	// Another client.
	warm(t, fleet, "/players/30", "v3 /players/30")
	o.Version.Store(4)
	requestFrom(t, "127.0.0.2", "POST", a.proxyURL+"/players/30")
	if x, body := get(t, b, "/players/30"); body != "v4 /players/30" {
		t.Errorf("another client's POST, on the other instance: %s %q, want v4", x, body)
	}
	if n := bansHeld(t, fleet)[0]; n != held+1 {
		t.Errorf("another client's POST: %d bans held, want %d", n, held+1)
	}
}

// TestFleetStaleCopyServedAfterLockTimeout: while instance A's fill hangs
// at the origin (holding the fleet's fill lease), instance B, which holds
// a stale copy that allows stale-if-error, serves it once the lock
// timeout (1 s here) has passed, rather than waiting for the origin.
func TestFleetStaleCopyServedAfterLockTimeout(t *testing.T) {
	var hang atomic.Bool
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			arrived <- struct{}{}
			<-release
		}
		// Stale on arrival, and servable on error for ten minutes.
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		w.Header().Set("Age", "5")
		io.WriteString(w, "old copy")
	}))
	t.Cleanup(origin.Close)
	t.Cleanup(func() { close(release) })
	redis := redistest.Start(t)
	fleet := startFleet(t, redis, origin.URL, 2, "-lock-timeout", "1s")
	a, b := fleet[0], fleet[1]

	if _, body := get(t, b, "/s"); body != "old copy" {
		t.Fatalf("B: %q", body)
	}
	// A must fill without a stale copy of its own: drop the one in Redis.
	ctx := context.Background()
	rc := redis.Client()
	keys, err := rc.Keys(ctx, "*/s}*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("entry keys: %v %v", keys, err)
	}
	rc.Del(ctx, keys...)
	hang.Store(true)
	go func() { // hangs at the origin, holding the lease
		if resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(a.proxyURL + "/s"); err == nil {
			resp.Body.Close()
		}
	}()
	<-arrived
	await.Until(t, 5*time.Second, "A's fill lease", func() bool {
		n, _ := rc.Keys(ctx, "*lease*/s}*").Result()
		return len(n) > 0
	})

	start := time.Now()
	code, h, body := fetchWithin(t, b.proxyURL+"/s", 5*time.Second)
	if code != 200 || body != "old copy" {
		t.Fatalf("B: %d %s %q, want its stale copy", code, h.Get("X-Cache"), body)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("B answered after %v, want about the lock timeout (1s)", took)
	}
}

// fetchWithin GETs url with a client that gives up after d.
func fetchWithin(t *testing.T, url string, d time.Duration) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{Timeout: d}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestLocationOnTheProxysOwnPort: with the origin and the proxy on one
// host name but different ports, and an origin base path, a Location
// naming the proxy's own URL is invalidated (it was read in the origin's
// base path, and dropped).
func TestLocationOnTheProxysOwnPort(t *testing.T) {
	var location atomic.Value
	location.Store("")
	var version atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			version.Add(1)
			w.Header().Set("Location", location.Load().(string))
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "v%d %s", version.Load(), r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	s := startServer(t, nil, "-origin", origin.URL+"/base")
	location.Store(s.proxyURL + "/items/1")
	if _, body := get(t, s, "/items/1"); body != "v0 /base/items/1" {
		t.Fatalf("GET: %q", body)
	}
	if x, _ := get(t, s, "/items/1"); x != "HIT-L1" {
		t.Fatalf("second GET: %s", x)
	}
	fetch(t, "POST", s.proxyURL+"/items", "")
	if x, body := get(t, s, "/items/1"); body != "v1 /base/items/1" {
		t.Errorf("after a POST answered with Location %s: %s %q, want v1", s.proxyURL+"/items/1", x, body)
	}
}
