package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	get := func(kv ...string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		for i := 0; i < len(kv); i += 2 {
			r.Header.Add(kv[i], kv[i+1])
		}
		return r
	}
	post, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	date := "Wed, 25 Nov 2026 10:00:00 GMT"
	route := &Route{Path: "/", TTL: time.Hour}
	override := &Route{Path: "/", TTL: 2 * time.Hour, Override: true}
	overrideIgnoringCookies := &Route{Path: "/", TTL: 2 * time.Hour, Override: true, IgnoreCookies: true}
	routeTTL := &Route{Path: "/", TTL: time.Minute}
	negative := &Route{Path: "/", StatusTTL: map[int]time.Duration{404: 10 * time.Second, 403: time.Minute}}
	overrideNegative := &Route{Path: "/", TTL: 2 * time.Hour, Override: true, StatusTTL: map[int]time.Duration{404: 10 * time.Second}}
	routeTTLIgnoringCookies := &Route{Path: "/", TTL: time.Minute, IgnoreCookies: true}
	const def = 5 * time.Minute
	cases := []struct {
		name     string
		req      *http.Request
		status   int
		h        http.Header
		rt       *Route
		def      time.Duration
		storable bool
		lifetime time.Duration
	}{
		{"s-maxage wins over max-age", get(), 200, hdr("Cache-Control", "max-age=10, s-maxage=20"), nil, def, true, 20 * time.Second},
		{"max-age", get(), 200, hdr("Cache-Control", "max-age=10"), nil, def, true, 10 * time.Second},
		{"max-age quoted", get(), 200, hdr("Cache-Control", `max-age="10"`), nil, def, true, 10 * time.Second},
		{"max-age first wins", get(), 200, hdr("Cache-Control", "max-age=10, max-age=20"), nil, def, true, 10 * time.Second},
		{"invalid max-age is stale", get(), 200, hdr("Cache-Control", "max-age=ten"), nil, def, false, 0},
		{"max-age over Expires", get(), 200, hdr("Cache-Control", "max-age=10", "Date", date, "Expires", "Wed, 25 Nov 2026 11:00:00 GMT"), nil, def, true, 10 * time.Second},
		{"Expires minus Date", get(), 200, hdr("Date", date, "Expires", "Wed, 25 Nov 2026 11:00:00 GMT"), nil, def, true, time.Hour},
		{"invalid Expires is stale", get(), 200, hdr("Date", date, "Expires", "0"), nil, def, false, 0},
		{"route ttl", get(), 200, hdr(), route, def, true, time.Hour},
		{"default ttl with an ETag", get(), 200, hdr("ETag", `"x"`), nil, def, true, def},
		{"no freshness, no validator: nothing to base a heuristic on", get(), 200, hdr(), nil, def, false, 0},
		{"Last-Modified: a tenth of its age", get(), 200, hdr("Date", date, "Last-Modified", "Wed, 25 Nov 2026 09:50:00 GMT"), nil, def, true, time.Minute},
		{"Last-Modified: at most the default ttl", get(), 200, hdr("Date", date, "Last-Modified", "Wed, 25 Nov 2020 10:00:00 GMT"), nil, def, true, def},
		{"default ttl 0 stores only explicit", get(), 200, hdr("ETag", `"x"`), nil, 0, true, 0},
		{"default ttl 0 with max-age", get(), 200, hdr("Cache-Control", "max-age=7"), nil, 0, true, 7 * time.Second},
		{"heuristic 404", get(), 404, hdr("ETag", `"x"`), nil, def, true, def},
		{"heuristic 301", get(), 301, hdr("ETag", `"x"`), nil, def, true, def},
		{"302 needs explicit freshness", get(), 302, hdr(), nil, def, false, 0},
		{"302 with max-age", get(), 302, hdr("Cache-Control", "max-age=9"), nil, def, true, 9 * time.Second},
		{"500 needs explicit freshness", get(), 500, hdr(), nil, def, false, 0},
		{"206 never", get(), 206, hdr("Cache-Control", "max-age=9"), nil, def, false, 0},
		{"no-store", get(), 200, hdr("Cache-Control", "no-store"), nil, def, false, 0},
		{"private", get(), 200, hdr("Cache-Control", "private, max-age=60"), nil, def, false, 0},
		{"private qualified", get(), 200, hdr("Cache-Control", `private="x", max-age=60`), nil, def, false, 0},
		{"no-cache", get(), 200, hdr("Cache-Control", "no-cache, max-age=60"), nil, def, false, 0},
		{"set-cookie", get(), 200, hdr("Set-Cookie", "a=1", "Cache-Control", "max-age=60"), nil, def, false, 0},
		{"request no-store", get("Cache-Control", "no-store"), 200, hdr("Cache-Control", "max-age=60"), nil, def, false, 0},
		{"authorization", get("Authorization", "x"), 200, hdr("Cache-Control", "max-age=60"), nil, def, false, 0},
		{"authorization public", get("Authorization", "x"), 200, hdr("Cache-Control", "public, max-age=60"), nil, def, true, time.Minute},
		{"authorization s-maxage", get("Authorization", "x"), 200, hdr("Cache-Control", "s-maxage=60"), nil, def, true, time.Minute},
		{"authorization must-revalidate", get("Authorization", "x"), 200, hdr("Cache-Control", "must-revalidate, max-age=60"), nil, def, true, time.Minute},
		{"vary star", get(), 200, hdr("Vary", "*", "Cache-Control", "max-age=60"), nil, def, false, 0},
		{"must-understand overrides no-store", get(), 200, hdr("Cache-Control", "must-understand, no-store, max-age=60"), nil, def, true, time.Minute},
		{"must-understand unknown status", get(), 599, hdr("Cache-Control", "must-understand, max-age=60"), nil, def, false, 0},
		{"CDN-Cache-Control no-store wins", get(), 200, hdr("Cdn-Cache-Control", "no-store", "Cache-Control", "max-age=100"), nil, def, false, 0},
		{"CDN-Cache-Control max-age over Cache-Control no-store", get(), 200, hdr("Cdn-Cache-Control", "max-age=100", "Cache-Control", "no-store"), nil, def, true, 100 * time.Second},
		{"CDN-Cache-Control ignores Expires", get(), 200, hdr("Cdn-Cache-Control", "public", "Date", date, "Expires", "Wed, 25 Nov 2026 11:00:00 GMT"), nil, def, false, 0},
		{"invalid CDN-Cache-Control is ignored", get(), 200, hdr("Cdn-Cache-Control", `max-age="10"`, "Cache-Control", "max-age=7"), nil, def, true, 7 * time.Second},
		{"Expires with a 1-digit hour is invalid", get(), 200, hdr("Date", date, "Expires", "Wed, 25 Nov 2026 1:00:00 GMT"), nil, def, false, 0},
		{"Expires with double spaces is invalid", get(), 200, hdr("Date", date, "Expires", "Wed, 25  Nov 2026 11:00:00 GMT"), nil, def, false, 0},
		{"Expires in lower-case gmt", get(), 200, hdr("Date", date, "Expires", "Wed, 25 Nov 2026 11:00:00 gmt"), nil, def, true, time.Hour},
		{"POST", post, 200, hdr("Cache-Control", "max-age=60"), nil, def, false, 0},
		{"override keeps no-store rule", get(), 200, hdr("Cache-Control", "no-store"), override, def, false, 0},
		{"override keeps private rule", get(), 200, hdr("Cache-Control", "private, max-age=60"), override, def, false, 0},
		{"override keeps authorization rule", get("Authorization", "x"), 200, hdr("Cache-Control", "max-age=60"), override, def, false, 0},
		{"override ignores no-cache", get(), 200, hdr("Cache-Control", "no-cache"), override, def, true, 2 * time.Hour},
		{"override keeps cookie rule", get("Cookie", "s=1"), 200, hdr(), override, def, false, 0},
		{"override, cookies ignored, but the origin saw the cookie", get("Cookie", "s=1"), 200, hdr(), overrideIgnoringCookies, def, false, 0},
		{"override, cookies ignored and removed", get(), 200, hdr(), overrideIgnoringCookies, def, true, 2 * time.Hour},
		{"override, authorization, no-cache must-revalidate", get("Authorization", "x"), 200, hdr("Cache-Control", "no-cache, must-revalidate", "Etag", `"x"`), override, def, false, 0},
		{"override, authorization, max-age=0 must-revalidate", get("Authorization", "x"), 200, hdr("Cache-Control", "max-age=0, must-revalidate"), override, def, false, 0},
		{"override, authorization, s-maxage=0", get("Authorization", "x"), 200, hdr("Cache-Control", "s-maxage=0"), override, def, false, 0},
		{"route ttl, authorization, must-revalidate", get("Authorization", "x"), 200, hdr("Cache-Control", "must-revalidate", "Etag", `"x"`), routeTTL, def, false, 0},
		{"authorization, s-maxage=0", get("Authorization", "x"), 200, hdr("Cache-Control", "s-maxage=0", "Etag", `"x"`), nil, def, false, 0},
		{"override, authorization, public max-age=0", get("Authorization", "x"), 200, hdr("Cache-Control", "public, max-age=0"), override, def, true, 2 * time.Hour},
		{"override, cookie, max-age=0", get("Cookie", "s=1"), 200, hdr("Cache-Control", "max-age=0"), override, def, false, 0},
		{"override, cookie, s-maxage=0", get("Cookie", "s=1"), 200, hdr("Cache-Control", "s-maxage=0"), override, def, false, 0},
		{"override, cookie, Expires 0", get("Cookie", "s=1"), 200, hdr("Date", date, "Expires", "0"), override, def, false, 0},
		{"override, cookie, Expires past", get("Cookie", "s=1"), 200, hdr("Date", date, "Expires", "Wed, 25 Nov 2026 09:00:00 GMT"), override, def, false, 0},
		{"override, cookie, Expires future", get("Cookie", "s=1"), 200, hdr("Date", date, "Expires", "Wed, 25 Nov 2026 11:00:00 GMT"), override, def, true, 2 * time.Hour},
		{"route credential header", get("X-Api-Key", "k"), 200, hdr("Etag", `"x"`), &Route{Path: "/", TTL: time.Minute, Credentials: []string{"x-api-key"}}, def, false, 0},
		{"route credential header, max-age", get("X-Api-Key", "k"), 200, hdr("Cache-Control", "max-age=60"), &Route{Path: "/", TTL: time.Minute, Credentials: []string{"x-api-key"}}, def, true, time.Minute},
		{"route credential header, varied on", get("X-Api-Key", "k"), 200, hdr("Vary", "X-Api-Key", "Etag", `"x"`), &Route{Path: "/", TTL: time.Minute, Credentials: []string{"X-Api-Key"}}, def, true, time.Minute},
		{"extension route, html", get(), 200, hdr("Content-Type", "text/html; charset=utf-8"), &Route{Path: "/*/*.css", TTL: time.Minute, Override: true}, def, false, 0},
		{"extension route, css", get(), 200, hdr("Content-Type", "text/css"), &Route{Path: "/*/*.css", TTL: time.Minute, Override: true}, def, true, time.Minute},
		{"extension route, js", get(), 200, hdr("Content-Type", "application/javascript"), &Route{Path: "/static/*.js", TTL: time.Minute}, def, true, time.Minute},
		{"extension route, any type allowed", get(), 200, hdr("Content-Type", "text/html"), &Route{Path: "/*/*.css", TTL: time.Minute, AnyContentType: true}, def, true, time.Minute},
		{"cookie, heuristic from ETag", get("Cookie", "s=1"), 200, hdr("Etag", `"x"`), nil, def, false, 0},
		{"cookie, heuristic from Last-Modified", get("Cookie", "s=1"), 200, hdr("Date", date, "Last-Modified", "Wed, 25 Nov 2026 00:00:00 GMT"), nil, def, false, 0},
		{"cookie, route ttl", get("Cookie", "s=1"), 200, hdr("Etag", `"x"`), routeTTL, def, false, 0},
		{"cookie, route ttl, cookies ignored but sent", get("Cookie", "s=1"), 200, hdr(), routeTTLIgnoringCookies, def, false, 0},
		{"cookie, max-age", get("Cookie", "s=1"), 200, hdr("Cache-Control", "max-age=60"), nil, def, true, time.Minute},
		{"cookie, s-maxage", get("Cookie", "s=1"), 200, hdr("Cache-Control", "s-maxage=60"), nil, def, true, time.Minute},
		{"cookie, Expires", get("Cookie", "s=1"), 200, hdr("Date", date, "Expires", "Wed, 25 Nov 2026 11:00:00 GMT"), nil, def, true, time.Hour},
		{"cookie, public with ETag", get("Cookie", "s=1"), 200, hdr("Cache-Control", "public", "Etag", `"x"`), nil, def, true, def},
		{"cookie, Vary: Cookie keys it", get("Cookie", "s=1"), 200, hdr("Vary", "Accept, cookie", "Etag", `"x"`), nil, def, true, def},
		{"override ignores max-age", get(), 200, hdr("Cache-Control", "max-age=5"), override, def, true, 2 * time.Hour},
		{"override keeps set-cookie rule", get(), 200, hdr("Set-Cookie", "a"), override, def, false, 0},
		{"override only 200", get(), 500, hdr(), override, def, false, 0},
		{"status-ttl 404", get(), 404, hdr(), negative, 0, true, 10 * time.Second},
		{"status-ttl 403, not heuristic", get(), 403, hdr(), negative, 0, true, time.Minute},
		{"status-ttl 404, unlisted 401", get(), 401, hdr(), negative, 0, false, 0},
		{"status-ttl 404, explicit max-age wins", get(), 404, hdr("Cache-Control", "max-age=5"), negative, 0, true, 5 * time.Second},
		{"status-ttl 404, private", get(), 404, hdr("Cache-Control", "private"), negative, 0, false, 0},
		{"status-ttl 404, no-store", get(), 404, hdr("Cache-Control", "no-store"), negative, 0, false, 0},
		{"status-ttl 404, set-cookie", get(), 404, hdr("Set-Cookie", "a=1"), negative, 0, false, 0},
		{"status-ttl 404, cookie sent", get("Cookie", "s=1"), 404, hdr(), negative, 0, false, 0},
		{"status-ttl 404, authorization", get("Authorization", "x"), 404, hdr(), negative, 0, false, 0},
		{"status-ttl 404 on an override route", get(), 404, hdr("Cache-Control", "max-age=600"), overrideNegative, def, true, 10 * time.Second},
		{"status-ttl on an override route, unlisted 500", get(), 500, hdr(), overrideNegative, def, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := decide(storeRule{req: tc.req, cc: requestCacheControl(tc.req.Header), rt: tc.rt, defaultTTL: tc.def}, tc.status, tc.h)
			if p.storable != tc.storable {
				t.Fatalf("storable = %v (%s), want %v", p.storable, p.reason, tc.storable)
			}
			if p.storable && p.lifetime != tc.lifetime {
				// (a stored response with no lifetime is revalidated on use)
				t.Errorf("lifetime = %v, want %v", p.lifetime, tc.lifetime)
			}
		})
	}
}

func TestInitialAge(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	h := http.Header{}
	if got := initialAge(h, now.Add(-time.Second), now); got != time.Second {
		t.Errorf("response delay only: %v", got)
	}
	h.Set("Age", "30")
	if got := initialAge(h, now, now); got != 30*time.Second {
		t.Errorf("Age header: %v", got)
	}
	h.Set("Age", "7200, 0")
	if got := initialAge(h, now, now); got != 2*time.Hour {
		t.Errorf("Age list: %v", got)
	}
	h.Set("Age", "99999999999999999999")
	if got := initialAge(h, now, now); got != (1<<31)*time.Second {
		t.Errorf("huge Age: %v", got)
	}
	h.Set("Age", "30")
	h.Set("Date", now.Add(-time.Minute).Format(http.TimeFormat))
	if got := initialAge(h, now, now); got != time.Minute {
		t.Errorf("apparent age: %v", got)
	}
}

func TestParseCacheControl(t *testing.T) {
	cc := parseCacheControl(http.Header{"Cache-Control": {`no-cache="Set-Cookie, X", max-age=5`, "MAX-STALE"}})
	if !cc.noCache || !cc.noCacheFields || cc.maxAge != 5 || cc.maxStale != unlimited {
		t.Errorf("%+v", cc)
	}
	cc = parseCacheControl(http.Header{})
	if cc.maxAge != -1 || cc.sMaxAge != -1 || cc.noStore {
		t.Errorf("empty: %+v", cc)
	}
}

func BenchmarkDecide(b *testing.B) {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	h := http.Header{"Cache-Control": {"public, max-age=60"}, "Content-Type": {"application/json"}}
	b.ReportAllocs()
	for b.Loop() {
		decide(storeRule{req: r, cc: noDirectives(), defaultTTL: time.Minute}, 200, h)
	}
}

// A hit sends the dates the origin sent, byte for byte, from either
// tier, whatever their spelling: tiers.Header holds an exact IMF-fixdate
// as a number and formats it again, any other spelling as it came.
func TestStoredDatesAsSent(t *testing.T) {
	dates := map[string]string{
		"Date":          time.Now().UTC().Format(http.TimeFormat),
		"Last-Modified": "Wed, 25 Nov 2026 09:50:00 GMT",
		"Expires":       "Thu, 31 Dec 2037 23:59:59 gmt", // lower case: its own string
		"X-Old":         "Thu, 01 Jan 1970 00:00:00 GMT",
		"X-Wrong-Day":   "Mon, 25 Nov 2026 09:50:00 GMT",
		"X-Rfc850":      "Wednesday, 25-Nov-26 09:50:00 GMT",
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for k, v := range dates {
			w.Header()[k] = []string{v}
		}
		w.Write([]byte("dated"))
	})
	s := newStack(t, o, nil)
	s.raw(t, "GET", "/d")
	for _, tier := range []string{"HIT-L1", "HIT-L2"} {
		if tier == "HIT-L2" {
			s.local.Delete(t.Context(), s.h.Key("/d"))
		}
		r := s.raw(t, "GET", "/d")
		wantXCache(t, r, tier)
		for k, v := range dates {
			if got := r.header[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s %q, want %q", tier, k, got, v)
			}
		}
	}
}
