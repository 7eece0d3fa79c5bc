package proxy

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/rank", "/rank"},
		{"", "/"},
		{"/a%41%7e%2d", "/aA~-"}, // unreserved: decoded
		{"/a%2fb", "/a%2Fb"},     // reserved: kept, hex upper-cased
		{"/a%2Fb", "/a%2Fb"},     // ... and distinct from /a/b
		{"/p/app.js%3Fx=1", "/p/app.js%3Fx=1"},
		{"/a#b", "/a%23b"}, // a raw "#" can never reach a key
		{"/a%23b", "/a%23b"},
		{"/a\nb", "/a%0Ab"},
		{"/{x}", "/%7Bx%7D"}, // nor a Cluster hash tag
		{"/caf\xc3\xa9", "/caf%C3%A9"},
		{"/caf%c3%a9", "/caf%C3%A9"},
		{"/100%", "/100%25"}, // a "%" that starts no escape
		{"/a%zz", "/a%25zz"},
		{"/a%2", "/a%252"},
		{"/a b", "/a%20b"},
		{"/a%20b", "/a%20b"},
		{"/x/../y", "/y"}, // dot segments are removed (RFC 3986 §5.2.4)
		{"/x/%2e%2E/y/./z/.", "/y/z/"},
		{"/x/..%2Fy", "/x/..%2Fy"}, // not a dot segment as sent
		{"/../y", "/y"},
		{"/x/.hidden/..a", "/x/.hidden/..a"},
		{"//a", "//a"},
		{"/!$&'()*+,;=:@", "/!$&'()*+,;=:@"},
		{"/a?b", "/a%3Fb"}, // in a path, "?" was escaped by the client
	}
	for _, tc := range cases {
		if got := canonicalPath(tc.in); got != tc.want {
			t.Errorf("canonicalPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"b=2&a=1", "a=1&b=2"},
		{"q=%7e%41", "q=~A"},
		{"q=a%2bb", "q=a%2Bb"},
		{"q=a+b", "q=a+b"}, // "+" and "%2B" differ to most origins
		{"q=a%26b=c", "q=a%26b=c"},
		{"q=100%", "q=100%25"},
		{"q=a#b", "q=a%23b"},
		{"q={}", "q=%7B%7D"},
		{"q=/?", "q=/?"},
		{"%62=1&a=2", "a=2&b=1"}, // names are compared canonical
	}
	for _, tc := range cases {
		if got := normalizeQuery(canonicalQuery(tc.in)); got != tc.want {
			t.Errorf("canonical query of %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/rank", "/rank"},
		{"/rank?b=1&a=2", "/rank?a=2&b=1"},
		{"/a%20b", "/a%20b"},
		{"/caf%c3%a9", "/caf%C3%A9"},
		{"/caf\u00e9", "/caf%C3%A9"},
		{"/x%2fy", "/x%2Fy"},
		{"//host/path", "//host/path"}, // a path, not an authority
		{"http://api.example.com/p?b=&a=1", "/p?a=1&b="},
		{"https://api.example.com", "/"},
	}
	for _, tc := range cases {
		got, err := CanonicalURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "rank", "ftp:x", "/a\r\nb", "http://h/a#frag"} {
		if got, err := CanonicalURL(bad); err == nil {
			t.Errorf("CanonicalURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestCanonicalPrefix(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/players/", "/players/"},
		{"/caf%c3%a9/", "/caf%C3%A9/"},
		{"/a%41", "/aA"},
		{"/search?q=a%7e", "/search?q=a~"},
	}
	for _, tc := range cases {
		got, err := CanonicalPrefix(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalPrefix(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"players/", "/caf%C", "/caf%"} {
		if _, err := CanonicalPrefix(bad); err == nil {
			t.Errorf("CanonicalPrefix(%q): want an error", bad)
		}
	}
}

func TestRoutePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/admin/x", "/admin/x"},
		{"//admin/x", "/admin/x"},
		{"/x/../admin/x", "/admin/x"},
		{"/./admin/x", "/admin/x"},
		{"/admin%2Fx", "/admin/x"},
		{"/%2E%2E/admin/x", "/admin/x"},
		{"/admin%5Cx", "/admin/x"},
		{"/../../admin/", "/admin/"},
		{"/admin/.", "/admin/"},
		{"/", "/"},
	}
	for _, tc := range cases {
		if got := routePath(canonicalPath(tc.in)); got != tc.want {
			t.Errorf("routePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBypassRouteSpellings(t *testing.T) {
	h, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "o"}, Routes: []Route{
		{Path: "/admin/", Bypass: true},
		{Path: "/rank", TTL: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/admin/x", "//admin/x", "/x/../admin/x", "/./admin/x", "/admin%2Fx", "/ADMIN/x", "/Admin%2fx", "/%61dmin/x", "///admin//x"} {
		u, err := url.ParseRequestURI(p)
		if err != nil {
			t.Fatal(err)
		}
		if rt := h.live.Load().route(requestTarget(u).path).rt; rt == nil || !rt.Bypass {
			t.Errorf("%s is not bypassed", p)
		}
	}
	// Other routes keep the path's case.
	if rt := h.live.Load().route("/RANK").rt; rt != nil {
		t.Errorf("/RANK matched %+v", rt)
	}
	if rt := h.live.Load().route("/rank").rt; rt == nil || rt.Bypass {
		t.Errorf("/rank matched %+v", rt)
	}
}

// originTarget returns the request target the origin is sent for a
// request with the raw request target raw, and its cache key.
func originTarget(t testing.TB, h *Handler, raw string) (sent, key string, ok bool) {
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return "", "", false
	}
	in := &http.Request{Method: "GET", URL: u, Header: http.Header{}, Host: "proxy.example", RemoteAddr: "192.0.2.1:1234"}
	out := in.Clone(in.Context())
	pr := &httputil.ProxyRequest{In: in, Out: out}
	h.rewrite(pr)
	return pr.Out.URL.RequestURI(), baseKey(h.o.KeyPrefix, h.keyHost(in), requestTarget(u)), true
}

func TestOriginIsSentTheCanonicalTarget(t *testing.T) {
	h, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "o:1", Path: "/base"}})
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"/p/app.js%3Fx=1": "/base/p/app.js%3Fx=1",
		"/a%2fb":          "/base/a%2Fb",
		"/a/b":            "/base/a/b",
		"/%7e?b=2&a=%7e":  "/base/~?a=~&b=2",
		"/":               "/base/",
	} {
		if got, _, _ := originTarget(t, h, raw); got != want {
			t.Errorf("%s: origin sent %q, want %q", raw, got, want)
		}
	}
}

// meaning is an independent statement of what a request target names,
// token by token: a literal character (unreserved, however spelled), a
// reserved delimiter as sent, or an escaped byte.
func meaning(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
			if isUnreserved(v) {
				b.WriteString("L" + string(rune(v)))
			} else {
				b.WriteString("E" + string(rune(v)))
			}
			continue
		}
		switch {
		case isUnreserved(c):
			b.WriteString("L" + string(rune(c)))
		case c != '%' && (strings.IndexByte("!$&'()*+,;=:@/", c) >= 0 || query && c == '?'):
			b.WriteString("R" + string(rune(c)))
		default:
			b.WriteString("E" + string(rune(c)))
		}
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

// pathMeaning is the meaning of an absolute path with its dot segments
// removed: a segment that names "." or ".." (however spelled) is one.
func pathMeaning(p string) string {
	segs := strings.Split(meaning(p, false), "R/")[1:]
	var kept []string
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "L.", "L.L.":
			if s == "L.L." && len(kept) > 0 {
				kept = kept[:len(kept)-1]
			}
			if last {
				kept = append(kept, "")
			}
			continue
		}
		kept = append(kept, s)
	}
	return "R/" + strings.Join(kept, "R/")
}

// FuzzCanonicalPath checks the canonical form of any two paths: it is
// idempotent, holds only bytes that may appear raw in a path, never a key
// separator, and two paths share it exactly when they name the same
// characters once dot segments are removed (RFC 3986 §6.2.2, §5.2.4).
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/a", "/a%41", "/A", "/a%2Fb", "/a/b", "/%7e", "/~", "/a#b", "/a%23b", "/{x}", "/%zz", "/%", "/\xff"} {
		f.Add(s, "/a")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ca, cb := canonicalPath(a), canonicalPath(b)
		if canonicalPath(ca) != ca {
			t.Fatalf("not idempotent: %q -> %q -> %q", a, ca, canonicalPath(ca))
		}
		for i := 0; i < len(ca); i++ {
			if c := ca[i]; c != '%' && byteClass[c]&classPathRaw == 0 {
				t.Fatalf("canonicalPath(%q) = %q holds %q", a, ca, c)
			}
		}
		if strings.ContainsAny(ca, "#\n\r{} ?") {
			t.Fatalf("canonicalPath(%q) = %q holds a separator", a, ca)
		}
		ma, mb := pathMeaning(a), pathMeaning(b)
		if a != "" && b != "" && a[0] == '/' && b[0] == '/' && (ca == cb) != (ma == mb) {
			t.Fatalf("%q -> %q and %q -> %q: same canonical form %v, same meaning %v", a, ca, b, cb, ca == cb, ma == mb)
		}
	})
}

// FuzzKey checks key derivation on whole request targets: two requests
// share a cache key exactly when the origin is sent the same target, and
// no key holds a variant separator.
func FuzzKey(f *testing.F) {
	for _, s := range [][2]string{
		{"/p/app.js%3Fx=1", "/p/app.js?x=1"}, {"/a%2Fb", "/a/b"}, {"/a?b=1&a=2", "/a?a=2&b=1"},
		{"/a%41?x=%7e", "/aA?x=~"}, {"/a?x=1&&y", "/a?y&x=1"}, {"/a%23b", "/a#b"}, {"/a?q=%0A", "/a?q=\n"},
	} {
		f.Add(s[0], s[1])
	}
	h, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "o:1"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, ka, okA := originTarget(t, h, a)
		sb, kb, okB := originTarget(t, h, b)
		if !okA || !okB {
			return
		}
		if strings.ContainsAny(ka, "#\n") || strings.ContainsAny(kb, "#\n") {
			t.Fatalf("key with a separator: %q / %q", ka, kb)
		}
		if (ka == kb) != (sa == sb) {
			t.Fatalf("%q: key %q, origin sent %q; %q: key %q, origin sent %q", a, ka, sa, b, kb, sb)
		}
	})
}

// FuzzVariantKey checks that two sets of header values share a variant
// key only when they normalise alike.
func FuzzVariantKey(f *testing.F) {
	f.Add("gzip", "br", "en", "en")
	f.Add("a\nAccept-Language:x", "", "x", "")
	f.Add("", "", "\x01", "")
	f.Fuzz(func(t *testing.T, ae1, ae2, al1, al2 string) {
		vary := []string{"Accept-Encoding", "Accept-Language"}
		h1 := http.Header{"Accept-Encoding": {ae1}, "Accept-Language": {al1}}
		h2 := http.Header{"Accept-Encoding": {ae2}, "Accept-Language": {al2}}
		k1, k2 := variantKey("k", vary, headerValues(h1)), variantKey("k", vary, headerValues(h2))
		norm := func(v string) string { return strings.ToLower(normalizeFieldValue([]string{v})) }
		same := norm(ae1) == norm(ae2) && norm(al1) == norm(al2)
		if (k1 == k2) != same {
			t.Fatalf("%q: %q, %q: %q; normalised alike: %v", h1, k1, h2, k2, same)
		}
	})
}
