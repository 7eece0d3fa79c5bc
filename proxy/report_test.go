package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPattern(t *testing.T) {
	for in, want := range map[string]string{
		"/":                             "/",
		"/rank":                         "/rank",
		"/players/42":                   "/players/*",
		"/players/42/games":             "/players/*/**",
		"/players/me":                   "/players/me",
		"/api/v1/users/1":               "/api/v1/**",
		"/caf%C3%A9":                    "/*",
		"/a/" + strings.Repeat("x", 30): "/a/*",
	} {
		if got := pattern(in); got != want {
			t.Errorf("pattern(%q) = %q, want %q", in, got, want)
		}
		if patternHash(in) != patternHash(want) && !strings.Contains(want, "*") {
			t.Errorf("%q and its pattern %q hash apart", in, want)
		}
	}
	if patternHash("/players/1") != patternHash("/players/2") || patternHash("/players/1") == patternHash("/rank") {
		t.Error("pattern hashes do not follow patterns")
	}
}

func TestReport(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/rank"): // a plain DRF view: nothing
		case strings.HasPrefix(r.URL.Path, "/me"):
			w.Header().Set("Set-Cookie", "s=1")
			w.Header().Set("Cache-Control", "max-age=60")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, func(opts *Options) { opts.Routes = []Route{{Path: "/players/", TTL: time.Minute}} })
	for range 3 {
		s.get(t, "/rank")
		s.get(t, "/me")
	}
	for i := range 4 {
		s.get(t, fmt.Sprintf("/players/%d", i%2))
	}
	rep := s.h.Report(10)
	rows := map[string]ReportRow{}
	for _, r := range rep.Patterns {
		rows[r.Pattern] = r
	}
	if r := rows["/rank"]; r.Requests != 3 || r.Answers["PASS"] != 3 || r.MainReason != "no-freshness" ||
		!strings.Contains(r.Advice, "{path: /rank, ttl: 30s}") ||
		!strings.Contains(r.Advice, "`routes:` in the -config file") || !strings.Contains(r.Advice, "kill -HUP") {
		t.Errorf("/rank: %+v", r)
	}
	if r := rows["/me"]; r.MainReason != "set-cookie" || r.HitRatio != 0 {
		t.Errorf("/me: %+v", r)
	}
	if r := rows["/players/*"]; r.Requests != 4 || r.HitRatio != 0.5 || r.Answers["HIT-L1"] != 2 {
		t.Errorf("/players/*: %+v", r)
	}
	if rep.Patterns[0].Requests < rep.Patterns[len(rep.Patterns)-1].Requests {
		t.Error("patterns not sorted by traffic")
	}
	if len(rep.Routes) != 1 || rep.Routes[0].Pattern != "/players/" || rep.Routes[0].Requests != 4 {
		t.Errorf("routes: %+v", rep.Routes)
	}
}

// TestReportBounded: however many distinct paths, the report keeps at
// most reportSlots patterns and counts the rest as "other".
func TestReportBounded(t *testing.T) {
	r := newReport()
	for i := range 5000 {
		r.add(fmt.Sprintf("/p%c%c/x", 'a'+i%26, 'a'+i/26%26), nil, missed, reasonNone)
	}
	n := 0
	for i := range r.slots {
		if r.slots[i].name.Load() != nil {
			n++
		}
	}
	if n > reportSlots || r.other.byLabel[missed.idx].Load() == 0 {
		t.Errorf("%d patterns kept, other = %d", n, r.other.byLabel[missed.idx].Load())
	}
}
