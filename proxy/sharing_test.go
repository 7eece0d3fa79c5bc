package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The sharing invariant, over the wire: for every route option, every
// kind of request credential and every origin directive, a response
// fetched for a client with credentials reaches a client without them
// (from L1, or from L2 through a second instance) only when the origin
// explicitly allowed sharing it, varied on the credential, or never saw
// it because the route removed it.

// originDirectives is one way an origin may answer: the headers it sets,
// and what they permit.
type originDirectives struct {
	name   string
	header func(now time.Time) http.Header
	// shares: public, or a positive s-maxage, max-age or future Expires
	// (the origin's explicit permission to share).
	shares bool
	// authOK: RFC 9111 §3.5's public, s-maxage or must-revalidate.
	authOK bool
	// keyed: the credential headers the response varies on.
	keyed []string
}

func directivesTable() []originDirectives {
	cc := func(v string) func(time.Time) http.Header {
		return func(time.Time) http.Header { return http.Header{"Cache-Control": {v}} }
	}
	expires := func(d time.Duration) func(time.Time) http.Header {
		return func(now time.Time) http.Header {
			return http.Header{"Expires": {now.Add(d).UTC().Format(http.TimeFormat)}}
		}
	}
	return []originDirectives{
		{name: "none", header: func(time.Time) http.Header { return http.Header{} }},
		{name: "public", header: cc("public"), shares: true, authOK: true},
		{name: "public-max-age-0", header: cc("public, max-age=0"), shares: true, authOK: true},
		{name: "private", header: cc("private, max-age=60")},
		{name: "no-store", header: cc("no-store, max-age=60")},
		{name: "no-cache", header: cc("no-cache")},
		{name: "no-cache-must-revalidate", header: cc("no-cache, must-revalidate")},
		{name: "max-age-0", header: cc("max-age=0")},
		{name: "max-age-0-must-revalidate", header: cc("max-age=0, must-revalidate")},
		{name: "max-age-60", header: cc("max-age=60"), shares: true},
		{name: "max-age-60-must-revalidate", header: cc("max-age=60, must-revalidate"), shares: true, authOK: true},
		{name: "s-maxage-0", header: cc("s-maxage=0")},
		{name: "s-maxage-60", header: cc("s-maxage=60"), shares: true, authOK: true},
		{name: "must-revalidate", header: cc("must-revalidate")},
		{name: "expires-past", header: expires(-time.Hour)},
		{name: "expires-0", header: func(time.Time) http.Header { return http.Header{"Expires": {"0"}} }},
		{name: "expires-future", header: expires(time.Hour), shares: true},
		{name: "vary-cookie", header: func(time.Time) http.Header { return http.Header{"Vary": {"Cookie"}} }, keyed: []string{"Cookie"}},
		{name: "vary-cookie-no-cache", header: func(time.Time) http.Header {
			return http.Header{"Vary": {"Cookie"}, "Cache-Control": {"no-cache"}}
		}, keyed: []string{"Cookie"}},
		{name: "set-cookie", header: func(time.Time) http.Header {
			return http.Header{"Set-Cookie": {"s=new"}, "Cache-Control": {"public, max-age=60"}}
		}, shares: true, authOK: true},
	}
}

// credential is a request header that identifies a client, with the
// victim's value and another client's.
type credential struct{ name, victim, other string }

var (
	credAuth   = credential{"Authorization", "Basic VICTIMAUTH", "Basic OTHERAUTH"}
	credCookie = credential{"Cookie", "session=VICTIMCOOKIE", "session=OTHERCOOKIE"}
	credKey    = credential{"X-Api-Key", "VICTIMKEY", "OTHERKEY"}
)

func TestSharingInvariant(t *testing.T) {
	routes := []struct {
		name   string
		routes []Route
	}{
		{"none", nil},
		{"ttl", []Route{{Path: "/", TTL: time.Minute}}},
		{"override", []Route{{Path: "/", TTL: time.Minute, Override: true}}},
		{"cookies-ignore", []Route{{Path: "/", TTL: time.Minute, IgnoreCookies: true}}},
		{"override-cookies-ignore", []Route{{Path: "/", TTL: time.Minute, Override: true, IgnoreCookies: true}}},
		{"bypass", []Route{{Path: "/", Bypass: true}}},
		{"credentials", []Route{{Path: "/", TTL: time.Minute, Override: true, Credentials: []string{"X-Api-Key"}}}},
	}
	credSets := [][]credential{{}, {credCookie}, {credAuth}, {credAuth, credCookie}}
	table := directivesTable()
	byName := make(map[string]originDirectives, len(table))
	for _, d := range table {
		byName[d.name] = d
	}
	// A naive origin: it echoes the credentials it saw, and answers 304
	// to any If-None-Match, whoever asks (so a revalidation by another
	// client would hand it the stored answer).
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		d := byName[r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]]
		for k, v := range d.header(time.Now()) {
			w.Header()[k] = v
		}
		w.Header().Set("Etag", `"v"`)
		w.Header().Set("Content-Type", "text/plain")
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "auth=%s cookie=%s key=%s", r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("X-Api-Key"))
	})
	checked := 0
	for _, rc := range routes {
		shared := newMapTier(time.Now)
		a := newStack(t, o, func(opts *Options) { opts.Routes = rc.routes; opts.Shared = shared })
		b := newStack(t, o, func(opts *Options) { opts.Routes = rc.routes; opts.Shared = shared })
		sets := credSets
		if len(rc.routes) > 0 && len(rc.routes[0].Credentials) > 0 {
			sets = append(sets, []credential{credKey}, []credential{credKey, credCookie})
		}
		for si, creds := range sets {
			for _, d := range table {
				path := fmt.Sprintf("/%s/%d/%s", rc.name, si, d.name)
				var victim []string
				for _, c := range creds {
					victim = append(victim, c.name, c.victim)
				}
				a.get(t, path, victim...)
				// The clients after the victim: anonymous, on the same
				// instance (L1) and on another (L2); then clients with
				// other credentials of the same kinds.
				var others []string
				for _, c := range creds {
					others = append(others, c.name, c.other)
				}
				for _, probe := range []struct {
					who string
					s   *stack
					hdr []string
				}{
					{"anonymous, same instance", a, nil},
					{"anonymous, second instance", b, nil},
					{"other client, same instance", a, others},
					{"other client, second instance", b, others},
				} {
					r := probe.s.get(t, path, probe.hdr...)
					for _, c := range creds {
						if !strings.Contains(r.body, strings.TrimPrefix(strings.TrimPrefix(c.victim, "Basic "), "session=")) {
							continue
						}
						checked++
						if !mayReach(c, d, rc.routes) {
							t.Errorf("route %s, victim with %v, origin %q: %s got the victim's %s answer %q (X-Cache %s, Cache-Status %s)",
								rc.name, credNames(creds), d.name, probe.who, c.name, r.body, r.header.Get("X-Cache"), r.header.Get("Cache-Status"))
						}
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no victim's answer was ever shared: the test checks nothing")
	}
}

// mayReach reports whether the victim's answer, derived from credential
// c, may reach another client under the sharing rule.
func mayReach(c credential, d originDirectives, routes []Route) bool {
	for _, k := range d.keyed {
		if strings.EqualFold(k, c.name) {
			return true // in the key: only the same value gets it
		}
	}
	if c.name == "Authorization" {
		return d.shares && d.authOK
	}
	return d.shares
}

func credNames(cs []credential) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.name)
	}
	return n
}

// TestRevalidationWithCredentialsNotShared: a stored entry revalidated for
// a request with a cookie takes the 304's headers only for that request
// unless the refreshed response passes the sharing rule: a header the
// origin added for the victim never reaches the next client.
func TestRevalidationWithCredentialsNotShared(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Etag", `"v"`)
		if c := r.Header.Get("Cookie"); c != "" {
			w.Header().Set("X-Who", c) // the origin's word for this client alone
		}
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "page")
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/p"), "MISS")
	if r := s.get(t, "/p", "Cookie", "session=VICTIM"); r.header.Get("X-Who") != "session=VICTIM" {
		t.Fatalf("the victim's revalidation: X-Who %q", r.header.Get("X-Who"))
	}
	if r := s.get(t, "/p"); strings.Contains(r.header.Get("X-Who"), "VICTIM") {
		t.Errorf("the next client got X-Who %q (X-Cache %s)", r.header.Get("X-Who"), r.header.Get("X-Cache"))
	}
}
