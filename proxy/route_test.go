package proxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
)

// deceptionRoutes are routes a team writes in front of a web app: an
// account area that must never be cached, static files stored on the
// route's word, and an extension route.
func deceptionRoutes() []Route {
	return []Route{
		{Path: "/acct/", Bypass: true},
		{Path: "/static/**", TTL: time.Hour, Override: true},
		{Path: "/*/*.css", TTL: time.Hour},
		{Path: "/api/", TTL: time.Minute, IgnoreCookies: true},
	}
}

func newRouteHandler(t testing.TB, routes []Route) *Handler {
	t.Helper()
	h, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "o:1", Path: "/base/"}, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRouteReadings(t *testing.T) {
	h := newRouteHandler(t, deceptionRoutes())
	cases := []struct {
		raw  string
		want string // the route's path, "" for none, "ambiguous"
	}{
		{"/static/x.css", "/static/**"},
		{"/acct/me", "/acct/"},
		{"/ACCT/me", "/acct/"},
		// Django reads "/acct/../static/x.css": an account page.
		{"/acct%2F..%2Fstatic%2Fx.css", "/acct/"},
		{"/acct%2f..%2fstatic%2fx.css", "/acct/"},
		{"/x%2F..%2Fstatic%2Fx.css", "ambiguous"},
		{"/static%2Fx.css", "ambiguous"},
		{"//static/x.css", "ambiguous"},
		{"/static\\x.css", "ambiguous"},
		{"/static/a/../x.css", "/static/**"}, // dot segments removed before anything reads it
		{"/static/%2e%2e/acct/me", "/acct/"},
		{"/page/x.css", "/*/*.css"},
		{"/api/players", "/api/"},
		{"/other", ""},
	}
	for _, tc := range cases {
		u, err := url.ParseRequestURI(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		rd := h.live.Load().route(requestTarget(u).path)
		got := ""
		switch {
		case rd.ambiguous:
			got = "ambiguous"
		case rd.rt != nil:
			got = rd.rt.Path
		}
		if got != tc.want {
			t.Errorf("%s: route %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestClimbsAboveRoot(t *testing.T) {
	for raw, want := range map[string]bool{
		"/../internal/keys":              true,
		"/%2e%2e/internal/keys":          true,
		"/%2E%2e/internal/keys":          true,
		"/x/..%2f..%2finternal/keys":     true,
		"/x/..%2F..%2Finternal/keys":     true,
		"/x/..\\..\\internal":            true,
		"/x/%2e%2e%5c%2e%2e%5cinternal":  true,
		"/a/b/../../../c":                true,
		"/a/b/../../c":                   false,
		"/x/..%2fy":                      false,
		"/a/..b/c":                       false,
		"/static/app.js":                 false,
		"/%2e%2ehidden":                  false,
		"/x%2F..%2Fstatic%2Fx.css":       false,
		"/acct%2F..%2F..%2Fstatic%2Fx.c": true,
	} {
		if got := climbsAboveRoot(raw); got != want {
			t.Errorf("climbsAboveRoot(%q) = %v, want %v", raw, got, want)
		}
	}
}

// readingsOf returns, independently of pathReadings, the ways an origin
// may read the path it is sent: as sent; decoded (WSGI); decoded with
// backslashes as "/", dot segments removed and slashes merged.
func readingsOf(sent string) []string {
	out := []string{sent}
	if d, err := url.PathUnescape(sent); err == nil {
		out = append(out, d)
		slashed := strings.ReplaceAll(d, "\\", "/")
		clean := path.Clean(slashed)
		if strings.HasSuffix(slashed, "/") && clean != "/" {
			clean += "/"
		}
		out = append(out, clean)
	}
	return out
}

// firstRoute is an independent first-match over the routes, a bypass
// route matching whatever the case.
func firstRoute(routes []Route, p string) *Route {
	for i := range routes {
		rt := &routes[i]
		if routeMatch(rt.Path, p) || rt.Bypass && routeMatch(strings.ToLower(rt.Path), strings.ToLower(p)) {
			return rt
		}
	}
	return nil
}

// FuzzRouteDecision checks the route decision against every reading of a
// path: a bypass that any reading matches is applied; a caching route is
// applied only when every reading matches it first.
func FuzzRouteDecision(f *testing.F) {
	for _, s := range []string{"/static/x.css", "/acct%2F..%2Fstatic%2Fx.css", "//static/x", "/static%2fx", "/ACCT/x",
		"/static/..%2facct/x", "/a/x.css", "/a%2Fb/x.css", "/static/%2e%2e%2facct", "/api/%2e/x", "/static\\x"} {
		f.Add(s)
	}
	routes := deceptionRoutes()
	h := newRouteHandler(f, routes)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil || climbsAboveRoot(u.EscapedPath()) {
			return
		}
		sent := requestTarget(u).path
		rd := h.live.Load().route(sent)
		var bypass *Route
		for _, p := range readingsOf(sent) {
			if rt := firstRoute(routes, p); rt != nil && rt.Bypass {
				bypass = rt
			}
		}
		switch {
		case bypass != nil:
			if rd.rt == nil || !rd.rt.Bypass {
				t.Fatalf("%q (sent %q): a reading matches bypass %q, decision %+v", raw, sent, bypass.Path, rd)
			}
		case rd.rt != nil && !rd.ambiguous:
			for _, p := range readingsOf(sent) {
				if got := firstRoute(routes, p); got == nil || got.Path != rd.rt.Path {
					t.Fatalf("%q (sent %q): route %q applied, but reading %q matches %v", raw, sent, rd.rt.Path, p, got)
				}
			}
		}
	})
}

// FuzzBasePathJoin checks that no request target the proxy forwards names
// anything outside the origin's base path, however the origin reads it.
func FuzzBasePathJoin(f *testing.F) {
	for _, s := range []string{"/../internal/keys", "/%2e%2e/internal/keys", "/x/..%2f..%2finternal/keys", "/x/..%5c..%5cinternal",
		"/a/./b", "/a/%2E%2E/b", "/.%2e/x", "/%2e./x", "/..;/x", "/a/..%00/x"} {
		f.Add(s)
	}
	h := newRouteHandler(f, nil)
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.ParseRequestURI(raw)
		if err != nil || climbsAboveRoot(u.EscapedPath()) {
			return // refused with 400 before the origin is asked
		}
		sent, _, ok := originTarget(t, h, raw)
		if !ok {
			return
		}
		p, _, _ := strings.Cut(sent, "?")
		for _, reading := range readingsOf(p) {
			if clean := path.Clean(strings.ReplaceAll(reading, "\\", "/")); clean != "/base" && !strings.HasPrefix(clean, "/base/") {
				t.Fatalf("%q: origin sent %q, read as %q: outside /base/", raw, sent, clean)
			}
		}
	})
}
