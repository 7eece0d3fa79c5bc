package proxy

import (
	"net/url"
	"testing"
)

func TestRouteCovers(t *testing.T) {
	for _, c := range []struct {
		a, b Route
		want bool
	}{
		{Route{Path: "/api/"}, Route{Path: "/api/players/"}, true},
		{Route{Path: "/api"}, Route{Path: "/api/*/x"}, true},
		{Route{Path: "/api/**"}, Route{Path: "/api/players"}, true},
		{Route{Path: "/api/**"}, Route{Path: "/api"}, false}, // "/api/**" does not match "/api"
		{Route{Path: "/api/*"}, Route{Path: "/api/*"}, true},
		{Route{Path: "/api/*"}, Route{Path: "/api/x"}, false}, // it would: a conservative no
		{Route{Path: "/api/players/"}, Route{Path: "/api/"}, false},
		{Route{Path: "/a"}, Route{Path: "/b"}, false},
		{Route{Path: "/a"}, Route{Path: "/a/x", Bypass: true}, false}, // the bypass also matches /A/X
		{Route{Path: "/A", Bypass: true}, Route{Path: "/a/x", Bypass: true}, true},
		{Route{Path: "/a", Bypass: true}, Route{Path: "/a/x"}, true},
	} {
		if got := c.a.Covers(c.b); got != c.want {
			t.Errorf("%+v.Covers(%+v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// FuzzRouteCovers: when a route covers a later one, no path is ever
// matched by the later one.
func FuzzRouteCovers(f *testing.F) {
	for _, s := range [][3]string{
		{"/api/", "/api/players/", "/api/players/1"},
		{"/api/**", "/api/*/x", "/api/a/x"},
		{"/A", "/a/b", "/A/B"},
		{"/a/**", "/a", "/a"},
		{"/x/*", "/x/*", "/x/1"},
	} {
		f.Add(s[0], s[1], s[2], false, true)
	}
	f.Fuzz(func(t *testing.T, a, b, p string, bypassA, bypassB bool) {
		ra, rb := Route{Path: a, Bypass: bypassA}, Route{Path: b, Bypass: bypassB}
		if ra.Validate() != nil || rb.Validate() != nil || len(p) == 0 || p[0] != '/' {
			return
		}
		if _, err := url.ParseRequestURI(p); err != nil {
			return
		}
		s := newSettings(Options{Routes: []Route{ra, rb}}, nil)
		if ra.Covers(rb) && s.route(p).rt == &s.routes[1] {
			t.Fatalf("%+v covers %+v, yet %q matched the later route", ra, rb, p)
		}
	})
}
