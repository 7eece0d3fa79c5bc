package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// writeOrigin answers every unsafe or extension method with 200 "done"
// (after bumping its version), and GETs with "v<version> <path>",
// cacheable for a minute.
func writeOrigin(t *testing.T) (*origin, *atomic.Int64) {
	var version atomic.Int64
	version.Store(1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			version.Add(1)
			io.WriteString(w, "done")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d %s", version.Load(), r.URL.Path)
	})
	return o, &version
}

// TestInvalidationOfUncachedURLsRecordsNoBan: a flood of successful POSTs
// to long distinct URLs that nothing holds adds nothing to the ban table;
// a POST to a cached URL still invalidates it, with one ban.
func TestInvalidationOfUncachedURLsRecordsNoBan(t *testing.T) {
	o, _ := writeOrigin(t)
	s := newStack(t, o, nil)
	long := strings.Repeat("x", maxCachedURL-40)
	for i := range 300 {
		if r := s.do(t, http.MethodPost, fmt.Sprintf("/w/%d?q=%s", i, long)); r.status != 200 {
			t.Fatalf("POST: %d", r.status)
		}
	}
	if n := s.h.o.Bans.Len(); n != 0 {
		t.Fatalf("300 POSTs to URLs not cached: %d bans held, want 0", n)
	}
	if n := s.h.m.invalidations[invalidateNone].Load(); n != 300 {
		t.Errorf("invalidations needing nothing: %d, want 300", n)
	}
	before := s.get(t, "/cached").body
	wantXCache(t, s.get(t, "/cached"), "HIT-L1")
	s.do(t, http.MethodPost, "/cached")
	if r := s.get(t, "/cached"); r.body == before || r.header.Get("X-Cache") != "MISS" {
		t.Errorf("after POST to a cached URL: %s %q", r.header.Get("X-Cache"), r.body)
	}
	if n := s.h.o.Bans.Len(); n != 1 {
		t.Errorf("%d bans held, want 1", n)
	}
}

// TestMethodsOfUnknownSafetyInvalidate: RFC 9111 §4.4 invalidates after
// any method not known to be safe, extension methods included (PURGE,
// FOOBAR, a lower-case "post"); safe methods (PROPFIND, OPTIONS, REPORT)
// do not. Each invalidation of the one cached URL costs one ban; one of an
// uncached URL costs none.
func TestMethodsOfUnknownSafetyInvalidate(t *testing.T) {
	o, _ := writeOrigin(t)
	s := newStack(t, o, nil)
	s.get(t, "/page")
	for _, m := range []string{"PROPFIND", "OPTIONS", "REPORT", "SEARCH"} {
		if r := s.do(t, m, "/page"); r.status != 200 {
			t.Fatalf("%s: %d", m, r.status)
		}
		if r := s.get(t, "/page"); r.header.Get("X-Cache") != "HIT-L1" {
			t.Errorf("after %s: %s %q, want the entry kept", m, r.header.Get("X-Cache"), r.body)
		}
	}
	for _, m := range []string{"FOOBAR", "PURGE", "post", "M-SEARCH", "PUT", "DELETE", "PATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PROPPATCH"} {
		s.get(t, "/page")
		s.do(t, m, "/page")
		if r := s.get(t, "/page"); r.header.Get("X-Cache") != "MISS" {
			t.Errorf("after %s: %s, want invalidated", m, r.header.Get("X-Cache"))
		}
	}
	before := s.h.o.Bans.Len()
	for _, m := range []string{"FOOBAR", "PURGE", "POST"} {
		s.do(t, m, "/never-cached")
	}
	if n := s.h.o.Bans.Len(); n != before {
		t.Errorf("%d bans held after invalidating an uncached URL, want %d", n, before)
	}
}

// TestInvalidationDuringAFill: a POST to a URL that is not stored yet, but
// whose fill asked the origin before the POST, records a ban, so that the
// old answer the fill brings back is never served after it.
func TestInvalidationDuringAFill(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	arrived, hold := make(chan struct{}), make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			version.Add(1)
			return
		}
		v := version.Load()
		if r.URL.Path == "/slow" && v == 1 {
			close(arrived)
			<-hold
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", v)
	})
	s := newStack(t, o, nil)
	done := make(chan string)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/slow", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	<-arrived
	s.do(t, http.MethodPost, "/slow")
	close(hold)
	if body := <-done; body != "v1" {
		t.Fatalf("the slow request got %q", body)
	}
	if r := s.get(t, "/slow"); r.body != "v2" {
		t.Errorf("after the POST: %s %q, want v2 (the fill that started before it is dead)", r.header.Get("X-Cache"), r.body)
	}
}

// clientFrom returns an HTTP client whose connections come from the
// loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

// TestInvalidationBudgetPerClient: the bans one client's invalidations
// record are bounded; past the bound its invalidations still drop the
// URL here and in L2, without a ban; another client's still record bans.
func TestInvalidationBudgetPerClient(t *testing.T) {
	o, _ := writeOrigin(t)
	perBan := tiers.BanCost("/p/00")
	s := newStack(t, o, func(opts *Options) { opts.ClientBanBytes = 3 * perBan })
	for i := range 10 {
		s.get(t, fmt.Sprintf("/p/%02d", i))
	}
	post := func(c *http.Client, path string) {
		t.Helper()
		resp, err := c.Post(s.srv.URL+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	a, b := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	for i := range 8 {
		post(a, fmt.Sprintf("/p/%02d", i))
	}
	if n := s.h.o.Bans.Len(); n != 3 {
		t.Errorf("one client recorded %d bans, want 3 (its budget)", n)
	}
	if n := s.h.m.invalidations[invalidateDrop].Load(); n != 5 {
		t.Errorf("%d invalidations over budget, want 5", n)
	}
	for i := range 8 {
		p := fmt.Sprintf("/p/%02d", i)
		if r := s.get(t, p); r.header.Get("X-Cache") != "MISS" {
			t.Errorf("%s after the POST: %s %q, want invalidated", p, r.header.Get("X-Cache"), r.body)
		}
	}
	post(b, "/p/09")
	if n := s.h.o.Bans.Len(); n != 4 {
		t.Errorf("after another client's POST: %d bans, want 4", n)
	}
	wantXCache(t, s.get(t, "/p/09"), "MISS")
}

func TestClientOf(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:5555":              "10.0.0.1",
		"[::ffff:10.0.0.1]:1":        "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:80":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:80":    "2001:db8:1:2::/64",
		"not an address":             "not an address",
		"[2001:db8:1:3::1]:443":      "2001:db8:1:3::/64",
		"192.168.1.10:0":             "192.168.1.10",
		"2001:db8::1":                "2001:db8::/64", // no port
		"bad:host:with:colons:9999x": "bad:host:with:colons:9999x",
	} {
		if got := clientOf(in); got != want {
			t.Errorf("clientOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBanBudgetsBounded: the map of budgets stays bounded; clients past it
// share one bucket, so none gets more than its bound by being new.
func TestBanBudgetsBounded(t *testing.T) {
	b := newBanBudgets(100, time.Hour)
	now := time.Now()
	for i := range maxBudgetClients {
		if !b.take(fmt.Sprint(i), 100, now) {
			t.Fatal("a new client had no budget")
		}
	}
	if b.take("0", 1, now) {
		t.Error("a client spent more than its budget")
	}
	if !b.take("new-1", 100, now) || b.take("new-2", 1, now) {
		t.Error("clients past the map's bound do not share one budget")
	}
	if len(b.clients) > maxBudgetClients {
		t.Errorf("%d budgets held", len(b.clients))
	}
	// Refilled after a whole period: forgotten when room is needed.
	later := now.Add(time.Hour)
	if !b.take("new-3", 100, later) || len(b.clients) != 1 {
		t.Errorf("refilled budgets not forgotten: %d held", len(b.clients))
	}
}

// TestLocationAuthority: a Location naming the proxy's own address is the
// proxy's URL even when the origin has the same host name on another
// port, and a Location on the origin's authority is read under its base
// path.
func TestLocationAuthority(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", r.Header.Get("X-Test-Location"))
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	s := newStack(t, o, func(opts *Options) { opts.Origin.Path = "/base" })
	proxyURL, _ := url.Parse(s.srv.URL)
	originURL, _ := url.Parse(o.URL)
	for _, tc := range []struct{ location, cached string }{
		{"http://" + proxyURL.Host + "/items/1", "/items/1"},       // the proxy's own, same host as the origin
		{"http://" + originURL.Host + "/base/items/2", "/items/2"}, // the origin's, under its base path
		{"http://localhost:" + proxyURL.Port() + "/items/3", ""},   // another host name: not ours
		{"http://127.0.0.1:1/items/4", ""},                         // another port: not ours
	} {
		p := tc.cached
		if p == "" {
			p = "/items/" + tc.location[len(tc.location)-1:]
		}
		s.get(t, p)
		s.do(t, http.MethodPost, "/create", "X-Test-Location", tc.location)
		want := "HIT-L1"
		if tc.cached != "" {
			want = "MISS"
		}
		if r := s.get(t, p); r.header.Get("X-Cache") != want {
			t.Errorf("Location %s: %s is %s, want %s", tc.location, p, r.header.Get("X-Cache"), want)
		}
	}
	// The decision itself, for ports by scheme.
	h := s.h
	in, _ := http.NewRequest(http.MethodPost, "http://api.example.com/x", nil)
	for loc, want := range map[string]urlSpace{
		"/y":                                     clientSpace,
		"http://api.example.com:80/y":            clientSpace,
		"https://api.example.com/y":              clientSpace, // the client's Host names no port
		"http://" + originURL.Host + "/y":        originSpace,
		"https://" + originURL.Hostname() + "/y": foreignSpace, // another port (443)
		"http://evil.example/y":                  foreignSpace,
	} {
		u, _ := url.Parse(loc)
		if got := h.urlSpaceOf(u, in); got != want {
			t.Errorf("urlSpaceOf(%s) = %d, want %d", loc, got, want)
		}
	}
	in.Host = "api.example.com:8080"
	u, _ := url.Parse("http://api.example.com:9090/y")
	if got := h.urlSpaceOf(u, in); got != foreignSpace {
		t.Errorf("another port of the client's Host: %d, want foreign", got)
	}
}

// TestLeaderServesStaleAfterLockTimeout: the request whose revalidation
// hangs at the origin, not only those waiting for it, serves its stale
// copy once the lock timeout has passed, where stale-if-error allows it.
func TestLeaderServesStaleAfterLockTimeout(t *testing.T) {
	var hang atomic.Bool
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		w.Header().Set("Age", "5") // stale on arrival
		io.WriteString(w, "old copy")
	})
	t.Cleanup(func() { close(release) })
	s := newStack(t, o, func(opts *Options) { opts.LockTimeout = time.Second })
	s.get(t, "/s")
	hang.Store(true)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(s.srv.URL + "/s")
	if err != nil {
		t.Fatalf("the revalidating request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "old copy" {
		t.Errorf("got %s %q, want the stale copy", resp.Header.Get("X-Cache"), b)
	}
}

// FuzzAuthority: an authority names a port always, the scheme's default
// when the host names none, so "h" and "h:80" are one authority for http,
// and a port that differs makes another.
func FuzzAuthority(f *testing.F) {
	for _, s := range []string{"example.com", "127.0.0.1", "[::1]", "Example.COM.", "h:8080", "[::1]:443", "::1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		a := authority("http", host)
		if !strings.Contains(a, ":") {
			t.Fatalf("authority(http, %q) = %q: no port", host, a)
		}
		if hasPort(host) || strings.ContainsAny(host, ":[]") {
			return
		}
		if a != authority("http", host+":80") || authority("https", host) != authority("https", host+":443") {
			t.Errorf("%q: the default port is not the scheme's", host)
		}
		if a == authority("http", host+":8080") {
			t.Errorf("%q: another port is the same authority", host)
		}
	})
}
