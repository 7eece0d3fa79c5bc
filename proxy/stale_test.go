package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/tiers"
)

func TestRevalidationWith304(t *testing.T) {
	var conditional atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.Header().Set("X-Fresh", "yes")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body-v1")
	})
	s := newStack(t, o, nil)
	s.get(t, "/e")
	s.clock.Advance(11 * time.Second)
	r := s.get(t, "/e")
	wantXCache(t, r, "REVALIDATED")
	if r.body != "body-v1" || r.header.Get("X-Fresh") != "yes" {
		t.Fatalf("revalidated response: %q, X-Fresh %q", r.body, r.header.Get("X-Fresh"))
	}
	if conditional.Load() != 1 {
		t.Fatalf("conditional requests = %d", conditional.Load())
	}
	// Freshened: served from L1 again, with its age reset.
	r = s.get(t, "/e")
	wantXCache(t, r, "HIT-L1")
	if r.header.Get("Age") != "0" || r.header.Get("X-Fresh") != "yes" {
		t.Errorf("Age %q X-Fresh %q", r.header.Get("Age"), r.header.Get("X-Fresh"))
	}
}

func TestNoCacheRevalidatesEveryTime(t *testing.T) {
	var full, conditional atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Last-Modified", "Wed, 25 Nov 2026 10:00:00 GMT")
		if r.Header.Get("If-Modified-Since") != "" {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		fmt.Fprint(w, "nc")
	})
	s := newStack(t, o, nil)
	for i := 0; i < 3; i++ {
		if r := s.get(t, "/nc"); r.body != "nc" {
			t.Fatalf("request %d: %q", i, r.body)
		}
	}
	if full.Load() != 1 || conditional.Load() != 2 {
		t.Errorf("full %d conditional %d, want 1 and 2", full.Load(), conditional.Load())
	}
}

func TestStaleIfError(t *testing.T) {
	var fail atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		fmt.Fprint(w, "good")
	})
	s := newStack(t, o, nil)
	s.get(t, "/s")
	fail.Store(true)
	s.clock.Advance(20 * time.Second)
	r := s.get(t, "/s")
	wantXCache(t, r, "STALE")
	if r.status != 200 || r.body != "good" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	s.clock.Advance(60 * time.Second)
	if r := s.get(t, "/s"); r.status != http.StatusServiceUnavailable {
		t.Errorf("past stale-if-error: %d", r.status)
	}
}

func TestMustRevalidateNeverServedStale(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, must-revalidate, stale-if-error=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/m")
	o.Close()
	s.clock.Advance(20 * time.Second)
	if r := s.get(t, "/m"); r.status != http.StatusBadGateway {
		t.Errorf("got %d, want 502", r.status)
	}
	if r := s.get(t, "/m", "Cache-Control", "max-stale=100"); r.status != http.StatusBadGateway {
		t.Errorf("max-stale: got %d, want 502", r.status)
	}
}

func TestMaxStaleServesStale(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=300")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/ms")
	s.clock.Advance(20 * time.Second)
	wantXCache(t, s.get(t, "/ms", "Cache-Control", "max-stale=15"), "HIT-L1")
	wantXCache(t, s.get(t, "/ms", "Cache-Control", "max-stale=5"), "MISS")
}

func TestStaleWhileRevalidate(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	s := newStack(t, o, nil)
	s.get(t, "/swr")
	s.clock.Advance(15 * time.Second)
	r := s.get(t, "/swr")
	wantXCache(t, r, "STALE")
	if r.body != "v1" {
		t.Fatalf("stale body %q", r.body)
	}
	await.Until(t, 10*time.Second, "the revalidated v2 served from L1", func() bool {
		r := s.get(t, "/swr")
		return r.body == "v2" && r.header.Get("X-Cache") == "HIT-L1"
	})
}

func TestOnlyIfCached(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	if r := s.get(t, "/o", "Cache-Control", "only-if-cached"); r.status != http.StatusGatewayTimeout {
		t.Errorf("uncached: %d, want 504", r.status)
	}
	s.get(t, "/o")
	if r := s.get(t, "/o", "Cache-Control", "only-if-cached"); r.status != 200 {
		t.Errorf("cached: %d", r.status)
	}
	if o.hits.Load() != 1 {
		t.Errorf("origin hits %d", o.hits.Load())
	}
}

func TestCacheStatusOnStale(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/cs")
	s.clock.Advance(2 * time.Second)
	r := s.get(t, "/cs")
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "fwd=uri-miss") && !strings.Contains(cs, "fwd=stale") {
		t.Errorf("Cache-Status %q", cs)
	}
}

func TestRequestNoCacheRevalidates(t *testing.T) {
	var conditional atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"e1"`)
		if r.Header.Get("If-None-Match") == `"e1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "full")
	})
	s := newStack(t, o, nil)
	s.get(t, "/nc")
	r := s.get(t, "/nc", "Cache-Control", "no-cache")
	wantXCache(t, r, "REVALIDATED")
	if r.body != "full" || conditional.Load() != 1 {
		t.Errorf("body %q, conditional requests %d", r.body, conditional.Load())
	}
}

func TestInterimResponsesForwarded(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "final")
	})
	s := newStack(t, o, nil)
	var got []int
	var links []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, code)
		links = append(links, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, s.srv.URL+"/hints", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0] != http.StatusEarlyHints || links[0] == "" {
		t.Errorf("1xx seen: %v %v", got, links)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the 103's Link leaked into the final response")
	}
	// The 103 is not stored: a hit sends none.
	got = nil
	req, _ = http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, s.srv.URL+"/hints", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 0 || resp.Header.Get("X-Cache") != "HIT-L1" {
		t.Errorf("hit: 1xx %v, X-Cache %q", got, resp.Header.Get("X-Cache"))
	}
}

// only-if-cached is answered by a stored copy that may be served: one
// within its stale-while-revalidate window included (RFC 9111 §5.2.1.7,
// RFC 5861 §3), from L1 and from L2 alike, and a 504 past it; the origin
// is asked for the refresh the stale answer starts, never for the answer.
func TestOnlyIfCachedWithinStaleWhileRevalidate(t *testing.T) {
	for _, tier := range []string{"L1", "L2"} {
		t.Run(tier, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
				fmt.Fprint(w, "x")
			})
			s := newStack(t, o, func(opts *Options) {
				if tier == "L2" {
					opts.Local = nil
				}
			})
			s.get(t, "/swr-oic")
			s.clock.Advance(15 * time.Second)
			r := s.get(t, "/swr-oic", "Cache-Control", "only-if-cached")
			if r.status != http.StatusOK || r.body != "x" {
				t.Errorf("within stale-while-revalidate: %d %q, want the stale copy", r.status, r.body)
			}
			// The stale answer started a refresh: once it is stored (a
			// fresh hit), the clock moves past the window of both copies.
			await.Until(t, 10*time.Second, "the background refresh stored", func() bool {
				return strings.HasPrefix(s.get(t, "/swr-oic", "Cache-Control", "only-if-cached").header.Get("X-Cache"), "HIT")
			})
			s.clock.Advance(2 * time.Minute)
			if r := s.get(t, "/swr-oic", "Cache-Control", "only-if-cached"); r.status != http.StatusGatewayTimeout {
				t.Errorf("past stale-while-revalidate: %d, want 504", r.status)
			}
		})
	}
}

// A 304 that refreshes a stored entry keeps its tags, which it holds in
// its Extra beside Vary and the stale windows: a 304 that names none
// leaves them, and a tag purge still reaches the refreshed copy.
func TestRevalidatedEntryKeepsItsTags(t *testing.T) {
	var full atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("Etag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("Cache-Tag", "player:42")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/tagged")
	s.clock.Advance(15 * time.Second)
	if r := s.get(t, "/tagged"); r.status != http.StatusOK || r.body != "x" {
		t.Fatalf("revalidated: %d %q", r.status, r.body)
	}
	if n := o.hits.Load(); n != 2 || full.Load() != 1 {
		t.Fatalf("origin asked %d times, %d full answers; want a fill and a 304", n, full.Load())
	}
	wantXCache(t, s.get(t, "/tagged"), "HIT-L1")
	mustPurge(t, s.h, tiers.Selector{Kind: tiers.BanTag, Value: "player:42"})
	if r := s.get(t, "/tagged", "Cache-Control", "only-if-cached"); r.status != http.StatusGatewayTimeout {
		t.Errorf("after a purge of its tag, the revalidated copy answers: %d %s", r.status, r.header.Get("X-Cache"))
	}
}
