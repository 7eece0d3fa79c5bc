package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

func TestAdminParams(t *testing.T) {
	cases := []struct{ raw, key, want string }{
		{"url=/x%2Fy", "url", "/x%2Fy"},               // as typed: the URL's own escapes
		{"url=%2Fx%252Fy", "url", "/x%2Fy"},           // escaped as a query value (the CLI)
		{"url=/rank?b=2&a=1", "url", "/rank?b=2&a=1"}, // the rest of the query is the URL's
		{"url=%2Frank%3Fb%3D2%26a%3D1", "url", "/rank?b=2&a=1"},
		{"url=http://h/a%20b", "url", "http://h/a%20b"},
		{"prefix=/caf%C3%A9/", "prefix", "/caf%C3%A9/"},
		{"tag=a%20b", "tag", "a b"},
		{"url=/a&tag=b", "url", "/a"}, // another selector: the purge refuses two
		{"url=/a&tag=b", "tag", "b"},
		{"all=true", "all", "true"},
	}
	for _, tc := range cases {
		if got := adminParams(tc.raw).Get(tc.key); got != tc.want {
			t.Errorf("adminParams(%q)[%s] = %q, want %q", tc.raw, tc.key, got, tc.want)
		}
	}
}

func TestParseSelector(t *testing.T) {
	long := "/" + strings.Repeat("a", tiers.MaxBanValue)
	cases := []struct {
		raw  string
		want tiers.Selector
		err  string
	}{
		{raw: "url=/rank?b=2&a=1", want: tiers.Selector{Kind: tiers.BanURL, Value: "/rank?a=1&b=2"}},
		{raw: "url=/%7euser/caf%c3%a9", want: tiers.Selector{Kind: tiers.BanURL, Value: "/~user/caf%C3%A9"}},
		{raw: "prefix=/players/", want: tiers.Selector{Kind: tiers.BanPrefix, Value: "/players/"}},
		{raw: "tag=player:42", want: tiers.Selector{Kind: tiers.BanTag, Value: "player:42"}},
		{raw: "all=true", want: tiers.All},
		{raw: "", err: "give exactly one of"},
		{raw: "url=/a&tag=b", err: "give exactly one of"},
		{raw: "all=false", err: "want all=true"},
		{raw: "tag=a%20b", err: "one non-empty name"},
		{raw: "tag=", err: "one non-empty name"},
		{raw: "tag=a,b", err: "one non-empty name"},
		{raw: "url=" + long, err: "at most"},
	}
	for _, tc := range cases {
		got, err := ParseSelector(tc.raw)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSelector(%.40q) = %v, %v; want an error with %q", tc.raw, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSelector(%q) = %v, %v; want %v", tc.raw, got, err, tc.want)
		}
	}
	for raw, want := range map[string]tiers.Selector{
		"url=/rank?b=2&a=1&soft=1": {Kind: tiers.BanURL, Value: "/rank?a=1&b=2", Soft: true},
		"soft=1&tag=player:42":     {Kind: tiers.BanTag, Value: "player:42", Soft: true},
		"all=true&soft=true":       {Kind: tiers.BanAll, Soft: true},
		"prefix=/p/&soft=0":        {Kind: tiers.BanPrefix, Value: "/p/"},
	} {
		if got, err := ParseSelector(raw); err != nil || got != want {
			t.Errorf("ParseSelector(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	if _, err := ParseSelector("url=/a&soft=maybe"); err == nil {
		t.Error("soft=maybe accepted")
	}
	if _, err := ParseSelector("url=" + long); !errors.Is(err, tiers.ErrBanTooLong) {
		t.Errorf("a URL longer than tiers.MaxBanValue: %v, want ErrBanTooLong", err)
	}
}

// FuzzParseSelector: no admin query makes ParseSelector panic; what it
// accepts is in canonical form, and the same selector sent again (as the
// CLI escapes it) parses to itself.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"url=/rank?b=2&a=1", "url=%2Fx%252Fy", "url=/x%2Fy", "prefix=/caf%C3%A9/",
		"tag=player:42", "all=true", "url=/a?b=1&soft=1", "soft=true&tag=x", "url=//evil/x", "url=http://h/a%20b", "url=/a&tag=b", "tag=a%2Cb", "url=/%ZZ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		sel, err := ParseSelector(raw)
		if err != nil {
			return
		}
		switch sel.Kind {
		case tiers.BanURL:
			if c, err := CanonicalURL(sel.Value); err != nil || c != sel.Value {
				t.Fatalf("ParseSelector(%q) = %v, not canonical (%q, %v)", raw, sel, c, err)
			}
		case tiers.BanPrefix:
			if c, err := CanonicalPrefix(sel.Value); err != nil || c != sel.Value {
				t.Fatalf("ParseSelector(%q) = %v, not canonical (%q, %v)", raw, sel, c, err)
			}
		}
		again := sel.Kind.String() + "=" + url.QueryEscape(sel.Value)
		if sel.Kind == tiers.BanAll {
			again = "all=true"
		}
		if sel.Soft {
			again = "soft=1&" + again
		}
		if got, err := ParseSelector(again); err != nil || got != sel {
			t.Fatalf("ParseSelector(%q) = %v; sent again as %q: %v, %v", raw, sel, again, got, err)
		}
	})
}

// fleetAnswer is a Fleet that records nothing and answers res.
type fleetAnswer tiers.PurgeResult

func (f fleetAnswer) Purge(context.Context, tiers.Selector, string) (tiers.PurgeResult, error) {
	return tiers.PurgeResult(f), nil
}

// The purge API answers 200 only for a complete purge: 202 when an
// instance is missing, and when Redis lost its record of the instances
// too recently to know them all (unknown_until in the answer).
func TestPurgeAPIAnswers(t *testing.T) {
	until := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		res  tiers.PurgeResult
		code int
		want []string
	}{
		{"complete", tiers.PurgeResult{Confirmed: []string{"a", "b"}}, http.StatusOK, []string{`"confirmed":["a","b"]`}},
		{"missing", tiers.PurgeResult{Confirmed: []string{"a"}, Missing: []string{"b"},
			MissingUntil: map[string]time.Time{"b": until}}, http.StatusAccepted, []string{`"missing":["b"]`, `"missing_until":{"b":"2026-12-07T09:00:00Z"}`}},
		{"membership unknown", tiers.PurgeResult{Confirmed: []string{"a", "b"}, UnknownUntil: until},
			http.StatusAccepted, []string{`"missing":[]`, `"unknown_until":"2026-12-07T09:00:00Z"`}},
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, o, func(opts *Options) { opts.Fleet = fleetAnswer(tc.res) })
			rec := httptest.NewRecorder()
			s.h.PurgeAPI().ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/cache?url=/rank", nil))
			var body bytes.Buffer
			if err := json.Compact(&body, rec.Body.Bytes()); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.code {
				t.Errorf("code %d, want %d: %s", rec.Code, tc.code, &body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body.String(), w) {
					t.Errorf("answer %s lacks %s", &body, w)
				}
			}
			if tc.res.UnknownUntil.IsZero() && strings.Contains(body.String(), "unknown_until") {
				t.Errorf("answer %s names unknown_until", &body)
			}
		})
	}
}
