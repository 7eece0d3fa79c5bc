package proxy

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestBaseKey(t *testing.T) {
	cases := []struct {
		path, query, want string
	}{
		{"/rank", "", "cacheproxy:1:G:/rank"},
		{"/rank", "a=1", "cacheproxy:1:G:/rank?a=1"},
		{"/rank", "b=2&a=1", "cacheproxy:1:G:/rank?a=1&b=2"},
		{"/rank", "a=1&b=2", "cacheproxy:1:G:/rank?a=1&b=2"},
		{"/rank", "b=1&a=2&a=1", "cacheproxy:1:G:/rank?a=2&a=1&b=1"}, // repeated names keep their order
		{"/rank", "&&b&a=", "cacheproxy:1:G:/rank?a=&b"},
		{"/rank", "a=1&&b=2", "cacheproxy:1:G:/rank?a=1&b=2"},
		{"/rank", "c=3&b=2&a=1&b=1", "cacheproxy:1:G:/rank?a=1&b=2&b=1&c=3"},
		{"/r%20s", "q=a%20b", "cacheproxy:1:G:/r%20s?q=a%20b"},
	}
	for _, tc := range cases {
		if got := baseKey("cacheproxy", "", target{tc.path, normalizeQuery(tc.query)}); got != tc.want {
			t.Errorf("baseKey(%q, %q) = %q, want %q", tc.path, tc.query, got, tc.want)
		}
	}
	if baseKey("a", "", target{path: "/x"}) == baseKey("b", "", target{path: "/x"}) {
		t.Error("prefix not part of the key")
	}
	if baseKey("a", "h1.example", target{path: "/x"}) == baseKey("a", "h2.example", target{path: "/x"}) ||
		baseKey("a", "h1.example", target{path: "/x"}) == baseKey("a", "", target{path: "/x"}) {
		t.Error("host not part of the key")
	}
}

func TestVariantKey(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	vary := []string{"Accept-Encoding", "Accept-Language"}
	base := "k"
	same := [][2]http.Header{
		{h("Accept-Encoding", "gzip, br"), h("Accept-Encoding", "gzip,br")},
		{h("Accept-Encoding", "gzip", "Accept-Encoding", "br"), h("Accept-Encoding", "gzip, br")},
		{h("Accept-Encoding", "gzip", "X-Other", "1"), h("Accept-Encoding", "gzip")},
		{h("Accept-Language", "en-US, De"), h("Accept-Language", "en-us,de")},
		{h("Accept-Encoding", "GZIP"), h("Accept-Encoding", "gzip")},
	}
	for _, p := range same {
		if a, b := variantKey(base, vary, headerValues(p[0])), variantKey(base, vary, headerValues(p[1])); a != b {
			t.Errorf("%v and %v: %q != %q", p[0], p[1], a, b)
		}
	}
	differ := [][2]http.Header{
		{h("Accept-Encoding", "gzip"), h("Accept-Encoding", "br")},
		{h("Accept-Encoding", ""), h()},
		{h("Accept-Language", "en"), h("Accept-Encoding", "en")},
		// Order is kept: an origin may pick the first of equal weights.
		{h("Accept-Language", "en, de"), h("Accept-Language", "de, en")},
	}
	for _, p := range differ {
		if a, b := variantKey(base, vary, headerValues(p[0])), variantKey(base, vary, headerValues(p[1])); a == b {
			t.Errorf("%v and %v share key %q", p[0], p[1], a)
		}
	}
}

func TestParseVary(t *testing.T) {
	cases := []struct {
		in   []string
		want []string
		star bool
	}{
		{nil, nil, false},
		{[]string{"accept-encoding"}, []string{"Accept-Encoding"}, false},
		{[]string{"Accept-Encoding, Accept-Language", "accept-encoding"}, []string{"Accept-Encoding", "Accept-Language"}, false},
		{[]string{"*"}, nil, true},
		{[]string{"Origin, *"}, []string{"Origin"}, true},
	}
	for _, tc := range cases {
		got, star := parseVary(http.Header{"Vary": tc.in})
		if !reflect.DeepEqual(got, tc.want) || star != tc.star {
			t.Errorf("parseVary(%q) = %q, %v; want %q, %v", tc.in, got, star, tc.want, tc.star)
		}
	}
}

func TestRouteMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/players/", "/players/42", true},
		{"/players/", "/rank", false},
		{"/players/*", "/players/42", true},
		{"/players/*", "/players/42/games", false},
		{"/players/**", "/players/42/games", true},
		{"/players/**", "/players", false},
		{"/*.json", "/a.json", true},
	}
	for _, tc := range cases {
		if got := routeMatch(tc.pattern, tc.path); got != tc.want {
			t.Errorf("routeMatch(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func headerValues(h http.Header) func(string) ([]string, bool) {
	return func(name string) ([]string, bool) { v, ok := h[name]; return v, ok }
}

// BenchmarkBaseKey derives the key of a request's URL, canonical form
// included.
func BenchmarkBaseKey(b *testing.B) {
	u, _ := url.ParseRequestURI("/players/42?sort=desc&page=2&limit=10")
	b.ReportAllocs()
	for b.Loop() {
		baseKey("cacheproxy", "", requestTarget(u))
	}
}
