package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// newEchoOrigin returns an origin that answers every request with what it
// received: method, raw request target, Host and headers, cacheable for a
// minute unless the response headers given by respond say otherwise.
func newEchoOrigin(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if respond != nil {
			respond(w, r)
		}
		origintest.WriteRequest(w, r)
	})
}

// raw sends a request with exactly the given request target (which Go's
// client would re-escape) and extra header lines, and returns the
// response.
func (s *stack) raw(t *testing.T, method, target string, hdr ...string) result {
	t.Helper()
	c, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nConnection: close\r\n"
	host := s.srv.Listener.Addr().String()
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			host = hdr[i+1]
			continue
		}
		req += hdr[i] + ": " + hdr[i+1] + "\r\n"
	}
	req += "Host: " + host + "\r\n"
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func TestEncodedPathCannotPoisonAnotherURL(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, nil)
	// The attacker's spelling is a different resource to the origin.
	for _, pair := range [][2]string{
		{"/p/app.js%3Fx=1", "/p/app.js?x=1"},
		{"/a%2Fb", "/a/b"},
		{"/a%2fc", "/a/c"},
		{"/q%26r", "/q&r"},
	} {
		attack := s.get(t, pair[0])
		wantXCache(t, attack, "MISS")
		victim := s.get(t, pair[1])
		wantXCache(t, victim, "MISS")
		if !strings.Contains(victim.body, "GET "+pair[1]+"\n") {
			t.Errorf("%s after %s: got %q", pair[1], pair[0], victim.body)
		}
	}
	// A raw "#" or CR/LF escape in a path cannot write a Vary variant.
	s.raw(t, "GET", "/v%23Accept:evil%0A")
	s.raw(t, "GET", "/v#Accept:evil")
	if r := s.get(t, "/v", "Accept", "evil"); r.header.Get("X-Cache") != "MISS" || !strings.Contains(r.body, "GET /v\n") {
		t.Errorf("/v: %q %q", r.header.Get("X-Cache"), r.body)
	}
}

func TestSpellingsOfOneURLShareAnEntry(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/caf%c3%a9/%7euser?b=2&a=%41"), "MISS")
	for _, spelling := range []string{"/caf%C3%A9/~user?a=A&b=2", "/caf%c3%A9/%7Euser?a=%41&b=2"} {
		if r := s.get(t, spelling); r.header.Get("X-Cache") != "HIT-L1" {
			t.Errorf("%s: X-Cache %q", spelling, r.header.Get("X-Cache"))
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin asked %d times, want 1", n)
	}
	// The origin saw the canonical form.
	if r := s.get(t, "/caf%C3%A9/~user?a=A&b=2"); !strings.Contains(r.body, "GET /caf%C3%A9/~user?a=A&b=2\n") {
		t.Errorf("origin saw: %q", r.body)
	}
}

func TestPurgeOfEncodedPaths(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, nil)
	for _, p := range []string{"/a%20b", "/caf%C3%A9", "/x%2Fy", "/q?x=%7Bz%7D"} {
		wantXCache(t, s.get(t, p), "MISS")
		wantXCache(t, s.get(t, p), "HIT-L1")
		// The operator types it any way they like.
		spelled := strings.ToLower(p)
		if p == "/caf%C3%A9" {
			spelled = "/caf\u00e9"
		}
		norm, err := CanonicalURL(spelled)
		if err != nil {
			t.Fatal(err)
		}
		mustPurge(t, s.h, tiers.Selector{Kind: tiers.BanURL, Value: norm})
		if r := s.get(t, p); r.header.Get("X-Cache") != "MISS" {
			t.Errorf("%s purged as %q (%q): X-Cache %q", p, spelled, norm, r.header.Get("X-Cache"))
		}
		in, err := s.h.Inspect(t.Context(), spelled, http.Header{})
		if err != nil || in == nil {
			t.Errorf("inspect %q: %v %v", spelled, in, err)
		}
	}
	// A prefix purge, spelled with lower-case hex.
	wantXCache(t, s.get(t, "/caf%C3%A9/1"), "MISS")
	pre, err := CanonicalPrefix("/caf%c3%a9/")
	if err != nil {
		t.Fatal(err)
	}
	mustPurge(t, s.h, tiers.Selector{Kind: tiers.BanPrefix, Value: pre})
	wantXCache(t, s.get(t, "/caf%C3%A9/1"), "MISS")
}

func TestClientHostNeverReachesTheOrigin(t *testing.T) {
	o := newEchoOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Host, X-Forwarded-Host")
	})
	originHost := strings.TrimPrefix(o.URL, "http://")
	s := newStack(t, o, nil)
	r := s.raw(t, "GET", "/page", "Host", "evil.example", "X-Forwarded-Host", "evil.example")
	if strings.Contains(r.body, "evil") || !strings.Contains(r.body, "Host: "+originHost+"\n") {
		t.Fatalf("origin saw %q", r.body)
	}
	// Absolute-form names a host too.
	r = s.raw(t, "GET", "http://evil.example/page2")
	if strings.Contains(r.body, "evil") {
		t.Fatalf("origin saw %q", r.body)
	}
	// Every Host shares the entry: the origin never saw it.
	wantXCache(t, s.get(t, "/page"), "HIT-L1")
	if r := s.raw(t, "GET", "/page", "Host", "other.example"); r.header.Get("X-Cache") != "HIT-L1" {
		t.Errorf("another Host: %q", r.header.Get("X-Cache"))
	}
}

func TestPublicHostIsForwarded(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, func(opts *Options) { opts.PublicHost = "api.example.com" })
	r := s.raw(t, "GET", "/p", "X-Forwarded-Host", "evil.example")
	if !strings.Contains(r.body, "X-Forwarded-Host: api.example.com\n") || strings.Contains(r.body, "evil") {
		t.Errorf("origin saw %q", r.body)
	}
}

func TestHostsAreKeyedAndChecked(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, func(opts *Options) { opts.Hosts = []string{"a.example", "B.example"} })
	a := s.raw(t, "GET", "/p", "Host", "a.example")
	wantXCache(t, a, "MISS")
	if !strings.Contains(a.body, "Host: a.example\n") || !strings.Contains(a.body, "X-Forwarded-Host: a.example\n") {
		t.Errorf("origin saw %q", a.body)
	}
	wantXCache(t, s.raw(t, "GET", "/p", "Host", "A.EXAMPLE:8080"), "HIT-L1")
	b := s.raw(t, "GET", "/p", "Host", "b.example")
	wantXCache(t, b, "MISS")
	if !strings.Contains(b.body, "Host: b.example\n") {
		t.Errorf("origin saw %q", b.body)
	}
	before := o.hits.Load()
	for _, host := range []string{"evil.example", "a.example.evil"} {
		if r := s.raw(t, "GET", "/p", "Host", host); r.status != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", host, r.status)
		}
		if r := s.raw(t, "POST", "/p", "Host", host, "Content-Length", "0"); r.status != http.StatusMisdirectedRequest {
			t.Errorf("POST Host %s: %d, want 421", host, r.status)
		}
	}
	if r := s.raw(t, "GET", "http://evil.example/p", "Host", "a.example"); r.status != http.StatusMisdirectedRequest {
		t.Errorf("absolute-form evil.example: %d, want 421", r.status)
	}
	if o.hits.Load() != before {
		t.Error("a request for another host reached the origin")
	}
	if _, err := New(Options{Origin: &url.URL{Scheme: "http", Host: "o"}, Hosts: []string{"a"}, PublicHost: "b"}); err == nil {
		t.Error("Hosts with PublicHost: no error")
	}
}

func TestForwardingHeadersAreStripped(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, nil)
	var hdr []string
	for _, n := range DefaultStripHeaders {
		hdr = append(hdr, n, "evil")
	}
	hdr = append(hdr, "X-Forwarded-Proto", "evil", "X-Forwarded-Host", "evil")
	r := s.get(t, "/fw", hdr...)
	if strings.Contains(r.body, "evil") {
		t.Fatalf("origin saw %q", r.body)
	}
	if !strings.Contains(r.body, "X-Forwarded-Proto: http\n") {
		t.Errorf("no X-Forwarded-Proto: %q", r.body)
	}
	// The operator's own list.
	s2 := newStack(t, o, func(opts *Options) { opts.StripHeaders = []string{"x-custom"} })
	r = s2.get(t, "/fw2", "X-Custom", "evil", "X-Host", "kept")
	if strings.Contains(r.body, "evil") || !strings.Contains(r.body, "X-Host: kept") {
		t.Errorf("origin saw %q", r.body)
	}
}

func TestVaryOnProxySetHeadersHits(t *testing.T) {
	o := newEchoOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto")
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/xff"), "MISS")
	wantXCache(t, s.get(t, "/xff"), "HIT-L1")
	// A client's own X-Forwarded-Host is not what the origin saw.
	wantXCache(t, s.get(t, "/xff", "X-Forwarded-Host", "evil"), "HIT-L1")
	// Its X-Forwarded-For is: it is appended to.
	wantXCache(t, s.get(t, "/xff", "X-Forwarded-For", "10.0.0.1"), "MISS")
	wantXCache(t, s.get(t, "/xff", "X-Forwarded-For", "10.0.0.1"), "HIT-L1")
	s.local.Delete(nil, s.local.keys()...)
	// From L2 too.
	wantXCache(t, s.get(t, "/xff", "X-Forwarded-For", "10.0.0.1"), "HIT-L2")
}

// TestCookieRequestServedFromCookielessEntry: the Cookie is not part of
// the key, so a request with a cookie is answered from the entry a
// request without one filled (the rule docs/security.md and the README's
// Django recipe state: the Cookie rule decides what is stored, not what
// is served).
func TestCookieRequestServedFromCookielessEntry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "for %q", r.Header.Get("Cookie"))
	})
	s := newStack(t, o, func(opts *Options) { opts.Routes = []Route{{Path: "/", TTL: time.Minute}} })
	wantXCache(t, s.get(t, "/page"), "MISS")
	r := s.get(t, "/page", "Cookie", "sessionid=alice")
	wantXCache(t, r, "HIT-L1")
	if r.body != `for ""` {
		t.Errorf("a request with a cookie got %q, want the entry filled without one", r.body)
	}
}

func TestCookieRequestsAreNotSharedOnHeuristics(t *testing.T) {
	cases := []struct {
		name   string
		header []string
		routes []Route
		shared bool
	}{
		{"etag only", []string{"Etag", `"v1"`}, nil, false},
		{"last-modified only", []string{"Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT"}, nil, false},
		{"route ttl", nil, []Route{{Path: "/", TTL: time.Minute}}, false},
		{"override", nil, []Route{{Path: "/", TTL: time.Minute, Override: true}}, false},
		{"route ttl, cookies ignored", nil, []Route{{Path: "/", TTL: time.Minute, IgnoreCookies: true}}, true},
		{"max-age", []string{"Cache-Control", "max-age=60"}, nil, true},
		{"s-maxage", []string{"Cache-Control", "s-maxage=60"}, nil, true},
		{"public", []string{"Cache-Control", "public", "Etag", `"v1"`}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i < len(tc.header); i += 2 {
					w.Header().Set(tc.header[i], tc.header[i+1])
				}
				fmt.Fprintf(w, "for %s", r.Header.Get("Cookie"))
			})
			s := newStack(t, o, func(opts *Options) { opts.Routes = tc.routes })
			first := s.get(t, "/page", "Cookie", "session=alice")
			r := s.get(t, "/page")
			if tc.routes != nil && tc.routes[0].IgnoreCookies {
				// The route says the cookie changes nothing: the origin
				// never sees it, and the answer is shared.
				if first.body != "for " || r.body != "for " || r.header.Get("X-Cache") != "HIT-L1" {
					t.Errorf("cookies ignored: origin answered %q, then %q (X-Cache %s)", first.body, r.body, r.header.Get("X-Cache"))
				}
				return
			}
			if got := r.body == "for session=alice"; got != tc.shared {
				t.Errorf("cookieless client got %q (X-Cache %s); shared = %v, want %v", r.body, r.header.Get("X-Cache"), got, tc.shared)
			}
		})
	}
	// Vary: Cookie keys the response by cookie.
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie")
		w.Header().Set("Etag", `"x"`)
		fmt.Fprintf(w, "for %s", r.Header.Get("Cookie"))
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/v", "Cookie", "session=alice"), "MISS")
	wantXCache(t, s.get(t, "/v", "Cookie", "session=alice"), "HIT-L1")
	if r := s.get(t, "/v", "Cookie", "session=bob"); r.body != "for session=bob" {
		t.Errorf("bob got %q", r.body)
	}
}

func TestOverrideReplacesFreshnessOnly(t *testing.T) {
	for _, cc := range []string{"private", "no-store", "private, max-age=60"} {
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", cc)
			fmt.Fprint(w, "user page")
		})
		s := newStack(t, o, func(opts *Options) {
			opts.Routes = []Route{{Path: "/", TTL: time.Minute, Override: true}}
		})
		s.get(t, "/me")
		s.get(t, "/me")
		if n := o.hits.Load(); n != 2 {
			t.Errorf("Cache-Control %q with override: origin asked %d times, want 2 (never stored)", cc, n)
		}
	}
}

func TestInvalidationUsesTheClientURL(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch r.URL.Path {
			case "/base/games":
				w.Header().Set("Location", "http://api.example.com/rank")
			case "/base/players/1":
				// Absolute, on the origin's own host and URL space.
				w.Header().Set("Location", "http://"+r.Host+"/base/players/1/card")
			}
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	s := newStack(t, o, func(opts *Options) {
		opts.Origin.Path = "/base"
		opts.PublicHost = "api.example.com"
	})
	for _, p := range []string{"/games", "/rank", "/players/1", "/players/1/card", "/caf%C3%A9"} {
		wantXCache(t, s.get(t, p), "MISS")
		wantXCache(t, s.get(t, p), "HIT-L1")
	}
	s.do(t, http.MethodPost, "/games")
	wantXCache(t, s.get(t, "/games"), "MISS")
	wantXCache(t, s.get(t, "/rank"), "MISS") // Location on the public host
	s.do(t, http.MethodPost, "/players/1")
	wantXCache(t, s.get(t, "/players/1"), "MISS")
	wantXCache(t, s.get(t, "/players/1/card"), "MISS")
	s.do(t, http.MethodDelete, "/caf%c3%a9")
	wantXCache(t, s.get(t, "/caf%C3%A9"), "MISS")
}

func TestLongURLsAreNotCached(t *testing.T) {
	o := newEchoOrigin(t, nil)
	s := newStack(t, o, nil)
	long := "/l?q=" + strings.Repeat("x", maxCachedURL-4)
	wantXCache(t, s.get(t, long), "BYPASS")
	wantXCache(t, s.get(t, long[:len(long)-1]), "MISS") // exactly the limit
	wantXCache(t, s.get(t, long), "BYPASS")
	if s.local.len() != 1 || s.shared.len() != 1 {
		t.Error("a URL longer than maxCachedURL was stored")
	}
}

// TestTagHeadersNotSentToClients: Cache-Tag and Surrogate-Key are for the
// cache alone; purges by tag still work.
func TestTagHeadersNotSentToClients(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Tag", "rank, player:1")
		w.Header().Set("Surrogate-Key", "board")
		if r.URL.Path == "/pass" {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, func(opts *Options) { opts.Routes = []Route{{Path: "/bypass", Bypass: true}} })
	for _, p := range []string{"/rank", "/rank", "/pass", "/bypass"} {
		r := s.get(t, p)
		if r.header.Get("Cache-Tag") != "" || r.header.Get("Surrogate-Key") != "" {
			t.Errorf("%s (%s): tag headers reached the client: %v", p, r.header.Get("X-Cache"), r.header)
		}
	}
	if r := s.do(t, http.MethodPost, "/bypass"); r.header.Get("Cache-Tag") != "" {
		t.Errorf("POST: tag headers reached the client")
	}
	mustPurge(t, s.h, tiers.Selector{Kind: tiers.BanTag, Value: "player:1"})
	wantXCache(t, s.get(t, "/rank"), "MISS")
	mustPurge(t, s.h, tiers.Selector{Kind: tiers.BanTag, Value: "board"})
	wantXCache(t, s.get(t, "/rank"), "MISS")
}

// TestInspectListsVariants: inspecting a URL that varies lists every
// cached variant with the header values that select it; a request's
// headers pick one.
func TestInspectListsVariants(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "for %s", r.Header.Get("Accept"))
	})
	s := newStack(t, o, nil)
	s.get(t, "/rank", "Accept", "application/json")
	s.get(t, "/rank", "Accept", "text/html")
	s.get(t, "/rank")
	in, err := s.h.Inspect(t.Context(), "/rank", http.Header{})
	if err != nil || in == nil {
		t.Fatalf("inspect: %v %v", in, err)
	}
	got := map[string]string{}
	for _, v := range in.Variants {
		got[v.Select["Accept"]] = strings.Join(v.Tiers, ",")
	}
	want := map[string]string{"application/json": "l1,l2", "text/html": "l1,l2", "(absent)": "l1,l2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("variants %v, want %v", got, want)
	}
	in, _ = s.h.Inspect(t.Context(), "/rank", http.Header{"Accept": {"text/html"}})
	if in == nil || in.Status != 200 || !strings.Contains(in.Key, "text/html") {
		t.Errorf("selected: %+v", in)
	}
}

// TestDropLocal: a URL purge the fleet could not record drops that URL's
// entries from L1, every listed variant included, and nothing else.
func TestDropLocal(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v" {
			w.Header().Set("Vary", "Accept")
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/v", "Accept", "a")
	s.get(t, "/v", "Accept", "b")
	s.get(t, "/other")
	if !s.h.dropLocal(t.Context(), "/v") {
		t.Fatal("dropLocal: false")
	}
	for _, k := range s.local.keys() {
		if strings.Contains(k, "/v") {
			t.Errorf("L1 still holds %q", k)
		}
	}
	wantXCache(t, s.get(t, "/other"), "HIT-L1")
	wantXCache(t, s.get(t, "/v", "Accept", "a"), "HIT-L2")
}

// TestVariantListBounded: a client's huge header value selects a variant
// that is stored but not listed in the Vary marker, which stays small, and
// a local URL purge then drops all of L1 rather than miss it.
func TestVariantListBounded(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/v", "Accept", "a")
	s.get(t, "/v", "Accept", strings.Repeat("b", 4096))
	s.get(t, "/other")
	m := s.local.entry(s.h.Key("/v"))
	if m == nil || m.Header.Get(unlistedField) == "" || len(m.Header.Values(variantField)) != 1 {
		t.Fatalf("marker: %+v", m)
	}
	if s.h.dropLocal(t.Context(), "/v") {
		t.Error("dropLocal reported every variant dropped, with one unlisted")
	}
}
