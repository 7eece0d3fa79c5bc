package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// directiveOrigin answers every path with the directives its last
// segment names (see directiveHeaders), echoing the credentials it saw,
// and 304 to any If-None-Match, whoever sends it: an origin as naive as
// many are. It records the paths it was asked for.
type directiveOrigin struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newDirectiveOrigin(t *testing.T) *directiveOrigin {
	o := &directiveOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.paths = append(o.paths, r.URL.EscapedPath())
		o.mu.Unlock()
		last := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		for k, v := range directiveHeaders(last) {
			w.Header()[k] = v
		}
		w.Header().Set("Etag", `"v"`)
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/plain")
		}
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "page for auth=%q cookie=%q path=%s\n", r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.URL.EscapedPath())
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *directiveOrigin) asked(prefix string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, p := range o.paths {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

func directiveHeaders(name string) http.Header {
	switch name {
	case "no-cache-must-revalidate":
		return http.Header{"Cache-Control": {"no-cache, must-revalidate"}}
	case "max-age-0-must-revalidate":
		return http.Header{"Cache-Control": {"max-age=0, must-revalidate"}}
	case "s-maxage-0":
		return http.Header{"Cache-Control": {"s-maxage=0"}}
	case "max-age-0":
		return http.Header{"Cache-Control": {"max-age=0"}}
	case "expires-0":
		return http.Header{"Expires": {"0"}}
	case "expires-past":
		return http.Header{"Expires": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}
	case "html.css":
		return http.Header{"Content-Type": {"text/html; charset=utf-8"}}
	}
	return http.Header{}
}

// TestRouteOptionsNeverShareCredentials runs issue 17's cases through the
// binary: a fleet of two on one Redis, routes with override, ttl,
// cookies: ignore and bypass, a victim with credentials, then anonymous
// clients on both instances (L1, and L2 through the other).
func TestRouteOptionsNeverShareCredentials(t *testing.T) {
	o := newDirectiveOrigin(t)
	cfg := writeConfig(t, `routes:
  - {path: /acct/, bypass: true}
  - {path: /static/**, ttl: 30s, override: true}
  - {path: /ov/, ttl: 30s, override: true}
  - {path: /ttl/, ttl: 30s}
  - {path: /ign/, ttl: 30s, cookies: ignore}
  - {path: "/*/*.css", ttl: 30s}
`)
	fleet := startFleet(t, redistest.Start(t), o.URL, 2, "-config", cfg)
	a, b := fleet[0], fleet[1]
	leaked := func(body string) bool { return strings.Contains(body, "VICTIM") }

	cases := []struct {
		path string
		hdr  []string
	}{
		// Authorization: override and ttl routes never turn the origin's
		// "revalidate with the next requester's credentials" into a
		// shared entry.
		{"/ov/no-cache-must-revalidate", []string{"Authorization", "Basic VICTIM"}},
		{"/ov/max-age-0-must-revalidate", []string{"Authorization", "Basic VICTIM"}},
		{"/ov/s-maxage-0", []string{"Authorization", "Basic VICTIM"}},
		{"/ttl/no-cache-must-revalidate", []string{"Authorization", "Basic VICTIM"}},
		{"/ttl/max-age-0-must-revalidate", []string{"Authorization", "Basic VICTIM"}},
		// Cookie: "expire now" is not permission to share.
		{"/ov/max-age-0", []string{"Cookie", "session=VICTIM"}},
		{"/ov/s-maxage-0", []string{"Cookie", "session=VICTIM"}},
		{"/ov/expires-0", []string{"Cookie", "session=VICTIM"}},
		{"/ov/expires-past", []string{"Cookie", "session=VICTIM"}},
		// Web cache deception: Django reads "/acct/../static/x.css", an
		// account page; the bypass applies.
		{"/acct%2F..%2Fstatic%2Fx.css", []string{"Cookie", "session=VICTIM"}},
		{"/acct%2f..%2fstatic%2fx.css", []string{"Cookie", "session=VICTIM"}},
	}
	for _, tc := range cases {
		rawGet(t, a.proxyURL, tc.path, tc.hdr...)
		for _, s := range []*server{a, b} {
			if _, h, body := rawGet(t, s.proxyURL, tc.path); leaked(body) {
				t.Errorf("%s after a victim with %s: anonymous client got %q (X-Cache %s)", tc.path, tc.hdr[0], body, h.Get("X-Cache"))
			}
		}
	}

	t.Run("cookies: ignore removes the cookie before the origin", func(t *testing.T) {
		_, _, body := rawGet(t, a.proxyURL, "/ign/page", "Cookie", "session=VICTIM")
		if leaked(body) {
			t.Errorf("the origin saw the cookie: %q", body)
		}
		_, h, body := rawGet(t, b.proxyURL, "/ign/page")
		if leaked(body) || !strings.HasPrefix(h.Get("X-Cache"), "HIT") {
			t.Errorf("second client: %q (X-Cache %s), want a shared hit without the cookie", body, h.Get("X-Cache"))
		}
	})

	t.Run("an extension route does not store a page", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if _, h, _ := rawGet(t, a.proxyURL, "/page/html.css"); h.Get("X-Cache") != "PASS" {
				t.Errorf("text/html on a *.css route: X-Cache %s, Cache-Status %s", h.Get("X-Cache"), h.Get("Cache-Status"))
			}
		}
	})

	t.Run("paths whose readings disagree are not cached", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if _, h, _ := rawGet(t, a.proxyURL, "/x%2F..%2Fstatic%2Fy.css"); h.Get("X-Cache") != "BYPASS" {
				t.Errorf("ambiguous path: X-Cache %s, Cache-Status %s", h.Get("X-Cache"), h.Get("Cache-Status"))
			}
		}
	})
}

// TestOriginBasePathCannotBeEscaped: with -origin http://o/api, no
// spelling of ".." reaches anything outside /api.
func TestOriginBasePathCannotBeEscaped(t *testing.T) {
	o := newDirectiveOrigin(t)
	s := startServer(t, nil, "-origin", o.URL+"/api")
	for _, target := range []string{
		"/../internal/keys",
		"/%2e%2e/internal/keys",
		"/%2E%2E/internal/keys",
		"/x/..%2f..%2finternal/keys",
		"/x/..%2F..%2Finternal/keys",
		"/x/..%5c..%5cinternal/keys",
		"/x/../../internal/keys",
	} {
		for _, method := range []string{"GET", "POST"} {
			code := rawRequest(t, s.proxyURL, method, target)
			if code != http.StatusBadRequest {
				t.Errorf("%s %s: %d, want 400", method, target, code)
			}
		}
	}
	if got := o.asked("/internal"); len(got) > 0 {
		t.Errorf("the origin was asked for %q", got)
	}
	// Inside the base path, dot segments are resolved before the join.
	_, _, body := rawGet(t, s.proxyURL, "/x/../players")
	if !strings.Contains(body, "path=/api/players") {
		t.Errorf("/x/../players reached %q", body)
	}
}

// rawRequest sends method with exactly the request target given and
// returns the status.
func rawRequest(t *testing.T, base, method, target string) int {
	t.Helper()
	req, err := http.NewRequest(method, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target // sent as is
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRouteCredentialsConfig(t *testing.T) {
	file := writeConfig(t, "origin: http://o\nroutes:\n  - path: /a\n    credentials: [X-Api-Key, x-tenant]\n    any-content-type: true\n  - {path: /b, credentials: \"X-One, X-Two\"}\n")
	c, err := loadConfig([]string{"-config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Routes[0].Credentials; len(got) != 2 || got[0] != "X-Api-Key" || got[1] != "x-tenant" || !c.Routes[0].AnyContentType {
		t.Errorf("routes[0] = %+v", c.Routes[0])
	}
	if got := c.Routes[1].Credentials; len(got) != 2 || got[1] != "X-Two" {
		t.Errorf("routes[1] = %+v", c.Routes[1])
	}
}
