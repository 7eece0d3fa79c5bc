package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// softOrigin is the tests' fake origin (internal/origintest) answering
// "v<version> <path>", tagged "t:<first segment>", with cacheControl;
// while failing is set, it answers 500.
type softOrigin struct {
	*origintest.Origin
	failing atomic.Bool
}

func newSoftOrigin(t *testing.T, cacheControl string) *softOrigin {
	o := &softOrigin{}
	o.Origin = origintest.New(t, origintest.Options{CacheControl: cacheControl,
		Body: func(w http.ResponseWriter, r *http.Request, version int64) {
			if o.failing.Load() {
				w.Header().Del("Cache-Control")
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
			w.Header().Set("Cache-Tag", "t:"+seg)
			origintest.Versioned(w, r, version)
		}})
	return o
}

// getRaw fetches path from s and returns X-Cache and the body.
func getRaw(t *testing.T, s *server, path string) (string, string) {
	t.Helper()
	resp, err := http.Get(s.proxyURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Header.Get("X-Cache"), string(b)
}

// checkSoftPurges soft-purges by URL, prefix, tag and all (soft=1 first
// or last in the query) from the first instance and checks, for each,
// that the purge answers 200 confirmed by every instance, that every
// instance then serves its copy STALE while it is refreshed, that the
// fleet asks the origin once for the key, and that every instance then
// serves the new version.
func checkSoftPurges(t *testing.T, o *softOrigin, fleet []*server) {
	for i, tc := range []struct{ path, query string }{
		{"/u/1", "url=/u/1&soft=1"},
		{"/p/1", "soft=1&prefix=/p/"},
		{"/t/1", "tag=t:t&soft=true"},
		{"/a/1", "soft=1&all=true"},
	} {
		v := fmt.Sprintf("v%d %s", i+1, tc.path)
		for _, s := range fleet {
			await.Until(t, 15*time.Second, "a hit of "+tc.path, func() bool {
				x, body := getRaw(t, s, tc.path)
				return strings.HasPrefix(x, "HIT") && body == v
			})
		}
		before := o.Requests(tc.path)
		o.Version.Add(1)
		code, res := purge(t, fleet[0], tc.query)
		if code != http.StatusOK || len(res.Confirmed) != len(fleet) {
			t.Fatalf("soft purge %s = %d %+v", tc.query, code, res)
		}
		// Every instance: its copy, stale, at once.
		for _, s := range fleet {
			if x, body := getRaw(t, s, tc.path); x != "STALE" || body != v {
				t.Errorf("%s after soft purge %s: %s %q, want STALE %q", s.proxyURL, tc.query, x, body, v)
			}
		}
		next := fmt.Sprintf("v%d %s", i+2, tc.path)
		for _, s := range fleet {
			await.Until(t, 15*time.Second, "the refreshed "+tc.path, func() bool {
				_, body := getRaw(t, s, tc.path)
				return body == next
			})
		}
		if n := o.Requests(tc.path) - before; n != 1 {
			t.Errorf("%s: the origin was asked %d times after the soft purge, want once for the fleet", tc.path, n)
		}
	}
}

func TestSoftPurgeAlone(t *testing.T) {
	o := newSoftOrigin(t, "max-age=300")
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", o.URL)
	checkSoftPurges(t, o, []*server{s})
}

func TestSoftPurgeFleet(t *testing.T) {
	o := newSoftOrigin(t, "max-age=300")
	checkSoftPurges(t, o, startFleet(t, redistest.Start(t), o.URL, 3))
}

func TestSoftPurgeCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	o := newSoftOrigin(t, "max-age=300")
	fleet := startFleetURL(t, cluster.URL(), o.URL, 2)
	ageEpoch(t, cluster.Client(), "cacheproxy")
	checkSoftPurges(t, o, fleet)
}

// TestSoftPurgeOriginFailing: after a soft purge, while the origin fails,
// an entry that allows stale-if-error keeps being served stale; a hard
// purge, for contrast, leaves nothing to serve.
func TestSoftPurgeOriginFailing(t *testing.T) {
	o := newSoftOrigin(t, "max-age=300, stale-if-error=600")
	fleet := startFleet(t, redistest.Start(t), o.URL, 2)
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "a hit", func() bool {
			x, _ := getRaw(t, s, "/f/1")
			return strings.HasPrefix(x, "HIT")
		})
	}
	o.failing.Store(true)
	if code, _ := purge(t, fleet[0], "url=/f/1&soft=1"); code != http.StatusOK {
		t.Fatalf("soft purge = %d", code)
	}
	for range 3 {
		for _, s := range fleet {
			if x, body := getRaw(t, s, "/f/1"); x != "STALE" || body != "v1 /f/1" {
				t.Errorf("origin failing after a soft purge: %s %q, want STALE v1", x, body)
			}
		}
	}
	if code, _ := purge(t, fleet[0], "url=/f/1"); code != http.StatusOK {
		t.Fatalf("hard purge = %d", code)
	}
	if x, body := getRaw(t, fleet[1], "/f/1"); body == "v1 /f/1" {
		t.Errorf("after a hard purge: %s %q, want no stale copy", x, body)
	}
}
