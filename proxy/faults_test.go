package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestLockTimeout: a request waits for another's hung fill at most the
// lock timeout, then fetches on its own; a request arriving later does not
// join the hung fill at all.
func TestLockTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-release // the first fetch hangs
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "ok")
	})
	s := newStack(t, o, func(opts *Options) { opts.LockTimeout = 300 * time.Millisecond })
	go s.get(t, "/hang") // the leader, stuck on the origin
	await.Until(t, 10*time.Second, "the leader's fill", func() bool { return s.h.flights.waiting(s.h.Key("/hang")) == 1 })
	start := time.Now()
	if r := s.get(t, "/hang"); r.status != 200 || r.body != "ok" {
		t.Fatalf("waiter got %d %q", r.status, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the waiter took %v, with a lock timeout of 300ms", d)
	}
	// The hung fill is older than the lock timeout: not joined.
	start = time.Now()
	s.local.Delete(nil, s.local.keys()...)
	s.shared.Delete(nil, s.shared.keys()...)
	if r := s.get(t, "/hang"); r.status != 200 || time.Since(start) > 2*time.Second {
		t.Errorf("a later request: %d after %v", r.status, time.Since(start))
	}
}

// TestStaleIfErrorForEveryWaiter: when the origin fails, every request
// waiting on the fill gets the stale copy, not only the first.
func TestStaleIfErrorForEveryWaiter(t *testing.T) {
	var failing atomic.Bool
	gate := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			<-gate
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		fmt.Fprint(w, "good")
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/sie"), "MISS")
	s.clock.Advance(10 * time.Second)
	failing.Store(true)
	const waiters = 5
	var wg sync.WaitGroup
	results := make(chan result, waiters)
	for range waiters {
		wg.Add(1)
		go func() { defer wg.Done(); results <- s.get(t, "/sie") }()
	}
	await.Until(t, 10*time.Second, "every waiter on the fill", func() bool { return s.h.flights.waiting(s.h.Key("/sie")) >= waiters })
	close(gate)
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != 200 || r.body != "good" || r.header.Get("X-Cache") != "STALE" {
			t.Errorf("a waiter got %d %q %s", r.status, r.body, r.header.Get("X-Cache"))
		}
	}
}

// TestNoJoiningAFillFromBeforeAPurge: a request that arrives after a purge
// never receives the response of a fill that started before it.
func TestNoJoiningAFillFromBeforeAPurge(t *testing.T) {
	gate := make(chan struct{})
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		if v == 1 {
			<-gate
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", v)
	})
	s := newStack(t, o, nil)
	first := make(chan result, 1)
	go func() { first <- s.get(t, "/p") }()
	// The fill is at the origin: it began before the purge.
	await.Until(t, 10*time.Second, "the fill at the origin", func() bool { return n.Load() == 1 })
	mustPurge(t, s.h, tiers.Selector{Kind: tiers.BanURL, Value: "/p"})
	second := make(chan result, 1)
	go func() { second <- s.get(t, "/p") }()
	await.Until(t, 10*time.Second, "two waiters on the fill", func() bool { return s.h.flights.waiting(s.h.Key("/p")) == 2 })
	close(gate)
	if r := <-first; r.body != "v1" {
		t.Errorf("the request from before the purge got %q", r.body)
	}
	if r := <-second; r.body != "v2" {
		t.Errorf("the request from after the purge got %q, fetched before it", r.body)
	}
	if r := s.get(t, "/p"); r.body != "v2" {
		t.Errorf("then: %q", r.body)
	}
}

// TestStaleFromL2 checks that an entry found stale in the shared tier is
// served under stale-while-revalidate and revalidated with a conditional
// request, as one found in L1 is.
func TestStaleFromL2(t *testing.T) {
	var conditional atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		w.Header().Set("Etag", `"v"`)
		if r.Header.Get("If-None-Match") == `"v"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body")
	})
	s := newStack(t, o, func(opts *Options) { opts.Local = nil })
	wantXCache(t, s.get(t, "/swr"), "MISS")
	s.clock.Advance(5 * time.Second)
	r := s.get(t, "/swr")
	wantXCache(t, r, "STALE")
	if r.body != "body" {
		t.Errorf("stale body %q", r.body)
	}
	await.Until(t, 5*time.Second, "the background revalidation", func() bool { return conditional.Load() != 0 })
	if conditional.Load() != 1 {
		t.Fatalf("background revalidations: %d, want 1", conditional.Load())
	}
	await.Until(t, 10*time.Second, "the revalidation's fill to end", func() bool { return s.h.flights.waiting(s.h.Key("/swr")) == 0 })
	// A request no-cache revalidates what L2 holds (a 304), rather than
	// fetching it whole.
	wantXCache(t, s.get(t, "/swr", "Cache-Control", "no-cache"), "REVALIDATED")
	if conditional.Load() != 2 {
		t.Errorf("conditional requests %d, want 2", conditional.Load())
	}
}

// TestL1AloneKeepsFreshEntries: without a shared tier, L1 keeps an entry
// as long as its freshness, not only -l1-ttl.
func TestL1AloneKeepsFreshEntries(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300, stale-if-error=600")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, func(opts *Options) { opts.Shared = nil; opts.L1TTL = 30 * time.Second })
	wantXCache(t, s.get(t, "/long"), "MISS")
	s.clock.Advance(2 * time.Minute)
	wantXCache(t, s.get(t, "/long"), "HIT-L1")
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin asked %d times", n)
	}
	// With a shared tier, -l1-ttl bounds it.
	s2 := newStack(t, o, func(opts *Options) { opts.L1TTL = 30 * time.Second })
	wantXCache(t, s2.get(t, "/long2"), "MISS")
	s2.clock.Advance(time.Minute)
	wantXCache(t, s2.get(t, "/long2"), "HIT-L2")
}

// TestFwdStale: a stale entry fetched again whole says fwd=stale, from L1
// or from L2.
func TestFwdStale(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=60")
		fmt.Fprint(w, "x")
	})
	for _, l1 := range []bool{true, false} {
		s := newStack(t, o, func(opts *Options) {
			if !l1 {
				opts.Local = nil
			}
		})
		wantXCache(t, s.get(t, "/st"), "MISS")
		s.clock.Advance(5 * time.Second)
		r := s.get(t, "/st")
		wantXCache(t, r, "MISS")
		if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "fwd=stale; fwd-status=200; stored") {
			t.Errorf("L1 %v: Cache-Status %q", l1, cs)
		}
	}
}

// TestClientNoCachePolicy: a browser's reload goes to the origin as RFC
// 9111 says by default (conditionally when it can), is only revalidated
// under "revalidate", is ignored under "ignore" and on override routes.
func TestClientNoCachePolicy(t *testing.T) {
	var conditional atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if strings.HasPrefix(r.URL.Path, "/v") {
			w.Header().Set("Etag", `"e"`)
			if r.Header.Get("If-None-Match") == `"e"` {
				conditional.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		fmt.Fprint(w, "x")
	})
	reload := []string{"Cache-Control", "no-cache"}
	cases := []struct {
		policy    string
		routes    []Route
		validator string // X-Cache of a reload of an entry with a validator
		none      string // ... and of one without
	}{
		{"", nil, "REVALIDATED", "MISS"},
		{"honour", nil, "REVALIDATED", "MISS"},
		{"revalidate", nil, "REVALIDATED", "HIT-L1"},
		{"ignore", nil, "HIT-L1", "HIT-L1"},
		{"", []Route{{Path: "/", TTL: time.Minute, Override: true}}, "HIT-L1", "HIT-L1"},
		{"ignore", []Route{{Path: "/", ClientNoCache: NoCacheHonour}}, "REVALIDATED", "MISS"},
	}
	for _, tc := range cases {
		policy, err := ParseClientNoCache(tc.policy)
		if err != nil && tc.policy != "" {
			t.Fatal(err)
		}
		s := newStack(t, o, func(opts *Options) { opts.ClientNoCache = policy; opts.Routes = tc.routes })
		s.get(t, "/v")
		s.get(t, "/n")
		if r := s.get(t, "/v", reload...); r.header.Get("X-Cache") != tc.validator {
			t.Errorf("%q %v: reload with a validator: %s, want %s", tc.policy, tc.routes, r.header.Get("X-Cache"), tc.validator)
		}
		if r := s.get(t, "/n", "Pragma", "no-cache"); r.header.Get("X-Cache") != tc.none {
			t.Errorf("%q %v: reload without a validator: %s, want %s", tc.policy, tc.routes, r.header.Get("X-Cache"), tc.none)
		}
	}
	if _, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "o"}, ClientNoCache: numNoCachePolicies}); err == nil {
		t.Error("a bad ClientNoCache: no error")
	}
	for _, s := range []string{"honour", "revalidate", "ignore"} {
		if p, err := ParseClientNoCache(s); err != nil || p.String() != s {
			t.Errorf("ParseClientNoCache(%q) = %v, %v; want it back", s, p, err)
		}
	}
	for _, s := range []string{"", "sometimes", "Honour", "honor"} {
		if _, err := ParseClientNoCache(s); err == nil || err.Error() != "want honour, revalidate or ignore" {
			t.Errorf("ParseClientNoCache(%q): error %v", s, err)
		}
	}
}
