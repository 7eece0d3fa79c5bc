package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReload: a reload applies new routes and header lists to the next
// requests, keeps what the tiers hold and the report of a route it keeps,
// and an invalid reload changes nothing.
func TestReload(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/kept") {
			w.Header().Set("Cache-Control", "max-age=600")
		}
		if strings.HasPrefix(r.URL.Path, "/c/") {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "1"})
		}
		fmt.Fprintf(w, "%s X-Custom=%q", r.URL.Path, r.Header.Get("X-Custom"))
	})
	kept := Route{Path: "/kept", TTL: time.Minute}
	s := newStack(t, o, func(opts *Options) {
		opts.DefaultTTL = 0 // no heuristic freshness: only routes with a ttl store
		opts.Routes = []Route{kept}
	})
	wantXCache(t, s.get(t, "/kept"), "MISS")
	wantXCache(t, s.get(t, "/kept"), "HIT-L1")
	wantXCache(t, s.get(t, "/a/1"), "PASS")
	wantXCache(t, s.get(t, "/a/1"), "PASS") // no route, no freshness: not stored
	if r := s.get(t, "/a/2", "X-Custom", "v"); !strings.Contains(r.body, `X-Custom="v"`) {
		t.Fatalf("before the reload the origin got %q", r.body)
	}

	next := Options{Origin: s.h.o.Origin, Routes: []Route{kept, {Path: "/a/", TTL: time.Minute},
		{Path: "/c/", TTL: time.Minute, IgnoreCookies: true}}, StripHeaders: []string{"x-custom"}}
	if err := s.h.Reload(next); err != nil {
		t.Fatal(err)
	}
	wantXCache(t, s.get(t, "/kept"), "HIT-L1") // L1 kept
	wantXCache(t, s.get(t, "/a/3"), "MISS")
	wantXCache(t, s.get(t, "/a/3"), "HIT-L1") // the new route's ttl applies
	if r := s.get(t, "/a/4", "X-Custom", "v"); !strings.Contains(r.body, `X-Custom=""`) {
		t.Errorf("after the reload the origin got %q, want X-Custom stripped", r.body)
	}
	rep := s.h.Report(0)
	if len(rep.Routes) != 3 || rep.Routes[0].Requests != 3 || rep.Routes[1].Pattern != "/a/" {
		t.Errorf("report routes after the reload: %+v", rep.Routes)
	}

	// cookies: ignore on a route that sets cookies: reported.
	wantXCache(t, s.get(t, "/c/1"), "PASS")
	if w := s.h.Report(0).Routes[2].Warning; !strings.Contains(w, "cookies: ignore") {
		t.Errorf("no warning for a cookies: ignore route whose responses set cookies: %q", w)
	}
	if w := s.h.Report(0).Routes[1].Warning; w != "" {
		t.Errorf("warning on a route without cookies: ignore: %q", w)
	}

	// Invalid: refused with New's error, nothing changed.
	bad := next
	bad.Routes = []Route{{Path: "no-slash"}}
	err := s.h.Reload(bad)
	_, newErr := New(bad)
	if err == nil || newErr == nil || err.Error() != newErr.Error() {
		t.Fatalf("Reload(bad) = %v, want New's error %v", err, newErr)
	}
	wantXCache(t, s.get(t, "/a/5"), "MISS")
	wantXCache(t, s.get(t, "/a/5"), "HIT-L1") // the routes of the last good reload
}

// TestReloadUnderTraffic: reloads while requests are served fail none
// of them, and each request sees one configuration (race detector).
func TestReloadUnderTraffic(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.URL.Path) })
	s := newStack(t, o, nil)
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(fmt.Sprintf("%s/r/%d", s.srv.URL, (g*1000+i)%50))
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range 50 {
		opts := Options{Origin: s.h.o.Origin, DefaultTTL: time.Minute, Routes: []Route{{Path: "/r/", TTL: time.Duration(i+1) * time.Second}}}
		if i%2 == 1 {
			opts.Routes = append(opts.Routes, Route{Path: "/x/", Bypass: true})
		}
		if err := s.h.Reload(opts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // let requests run between reloads
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed during the reloads", n)
	}
}
