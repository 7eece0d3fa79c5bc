package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// TestReportCommand puts the proxy in front of an API whose views send no
// freshness (a plain Django REST framework view), as a new user would, and
// checks that cacheproxy report names the uncached route, the reason and
// the fix, and that the fix makes it a hit.
func TestReportCommand(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Set("Set-Cookie", "sessionid=x")
			w.Header().Set("Cache-Control", "max-age=60")
		case "/static/app.js":
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		io.WriteString(w, "{}")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL)
	for range 5 {
		for _, p := range []string{"/rank", "/players/7", "/players/8", "/login", "/static/app.js"} {
			fetch(t, "GET", s.proxyURL+p, "")
		}
	}
	env := env(map[string]string{"CACHEPROXY_ADMIN": s.adminURL, "CACHEPROXY_ADMIN_TOKEN": fleetToken})
	code, out, errOut := runClient(t, []string{"report"}, env)
	if code != 0 {
		t.Fatalf("report: exit %d, %s", code, errOut)
	}
	for _, want := range []string{
		"PATTERN", "/rank", "/players/*", "no-freshness", "{path: /rank, ttl: 30s}",
		"/login", "set-cookie", "/static/app.js",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report does not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("/static/app.js  %d", 5)) && !strings.Contains(out, "80.0%") {
		t.Errorf("report without /static/app.js's hit ratio:\n%s", out)
	}
	// A column per class of outcome, and the row's counts in them:
	// /static/app.js was fetched once and answered from the cache after.
	head := "PATTERN REQUESTS HIT RATIO HIT MISS PASS ERROR MAIN REASON"
	if first, _, _ := strings.Cut(out, "\n"); strings.Join(strings.Fields(first), " ") != head {
		t.Errorf("report header %q, want the columns %q", first, head)
	}
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "/static/app.js 5 80.0% 4 1 0 0 -") {
		t.Errorf("report's /static/app.js row is not 5 requests, 80.0%%, 4 hits, 1 miss:\n%s", out)
	}
	code, out, _ = runClient(t, []string{"report", "-json", "-top", "2"}, env)
	if code != 0 || strings.Count(out, `"pattern"`) != 2 {
		t.Errorf("report -json -top 2: %d\n%s", code, out)
	}
	if code, _, _ := runClient(t, []string{"report", "-top", "0"}, env); code != 2 {
		t.Errorf("report -top 0: exit %d, want 2", code)
	}
}

// TestPurgesLogged: every purge is logged at INFO with who asked and what,
// and listed by GET /purges, newest first.
func TestPurgesLogged(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL)
	purge(t, s, "url=/rank")
	purge(t, s, "tag=player:1")
	purge(t, s, "prefix=nope")
	code, _, body := fetch(t, "GET", s.adminURL+"/purges", fleetToken)
	var got struct{ Purges []purgeRecord }
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil || len(got.Purges) != 3 {
		t.Fatalf("/purges = %d %s", code, body)
	}
	if p := got.Purges[0]; p.Query != "prefix=nope" || p.Status != 400 || !strings.HasPrefix(p.Remote, "127.0.0.1:") {
		t.Errorf("newest purge: %+v", p)
	}
	if got.Purges[2].Query != "url=/rank" || got.Purges[2].Status != 200 {
		t.Errorf("oldest purge: %+v", got.Purges[2])
	}
	await.Until(t, 15*time.Second, "the purge log lines", func() bool {
		return strings.Count(s.logs.String(), `"msg":"purge"`) == 3 && strings.Contains(s.logs.String(), `"query":"url=/rank"`)
	})
}

// TestInspectVariantsCommand: cacheproxy inspect lists the variants of a
// URL that varies (DRF sends Vary: Accept), and -H picks one.
func TestInspectVariantsCommand(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "{}")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL)
	for _, accept := range []string{"application/json", "text/html", "*/*"} {
		req, _ := http.NewRequest("GET", s.proxyURL+"/rank", nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	env := env(map[string]string{"CACHEPROXY_ADMIN": s.adminURL, "CACHEPROXY_ADMIN_TOKEN": fleetToken})
	code, out, errOut := runClient(t, []string{"inspect", "/rank"}, env)
	if code != 0 || !strings.Contains(out, "3 variants cached") || !strings.Contains(out, "text/html") || !strings.Contains(out, "application/json") {
		t.Errorf("inspect /rank: %d %s\n%s", code, errOut, out)
	}
	code, out, _ = runClient(t, []string{"inspect", "-H", "Accept: text/html", "/rank"}, env)
	if code != 0 || !strings.Contains(out, "selected variant:") || !strings.Contains(out, "status     200 OK") {
		t.Errorf("inspect -H: %d\n%s", code, out)
	}
}
