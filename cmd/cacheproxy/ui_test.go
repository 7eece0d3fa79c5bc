//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/internal/syncbuf"
	"github.com/cacheproxy/cacheproxy/proxy"
)

// TestDashboardFiles checks what the dashboard serves without the token
// (its three files, nothing else) and that everything else still needs it.
func TestDashboardFiles(t *testing.T) {
	adm, err := admin.New(admin.Options{Token: "dashboard-token", Stats: func() any { return map[string]int{"n": 1} }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(withDashboard(adm))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tests := []struct {
		method, path, token string
		wantCode            int
		wantType            string // Content-Type prefix
		wantBody            string // substring
		wantLocation        string
	}{
		{"GET", "/ui/", "", 200, "text/html", `<script src="dashboard.js"`, ""},
		{"HEAD", "/ui/", "", 200, "text/html", "", ""},
		{"GET", "/ui/index.html", "", 200, "text/html", "<title>cacheproxy dashboard</title>", ""},
		{"GET", "/ui/dashboard.js", "", 200, "text/javascript", "Authorization: 'Bearer ' + token", ""},
		{"GET", "/ui/dashboard.css", "", 200, "text/css", "--l1:", ""},
		{"GET", "/ui?inspect=/rank", "", 302, "", "", "ui/?inspect=/rank"},
		{"GET", "/ui/nope.js", "", 404, "text/plain", "", ""},
		{"GET", "/ui/../stats", "", 404, "text/plain", "", ""},
		{"GET", "/stats", "", 401, "application/json", "bearer token", ""},
		{"GET", "/stats", "dashboard-token", 200, "application/json", `"n": 1`, ""},
		{"POST", "/ui/", "", 401, "application/json", "", ""},
		{"GET", "/healthz", "", 200, "application/json", "ok", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque, _, _ = strings.Cut(tt.path, "?") // sent as written: "/ui/../stats" not cleaned
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body does not contain %q:\n%.300s", tt.wantBody, body)
			}
			if loc := resp.Header.Get("Location"); loc != tt.wantLocation {
				t.Errorf("Location %q, want %q", loc, tt.wantLocation)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			if tt.wantCode == 200 && strings.HasPrefix(tt.path, "/ui") {
				if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
			}
		})
	}
}

// TestDashboardSpellsNoVocabulary: the dashboard's files spell no X-Cache
// result nor Cache-Status detail: it shows those GET /vocabulary lists.
// Details are looked for as quoted strings; a few are also ordinary words
// of the script: "l1" and "l2" the tiers the chart groups by, 'status' a
// field of the inspect box, 'no-store' fetch's cache mode.
func TestDashboardSpellsNoVocabulary(t *testing.T) {
	var words []string
	for _, o := range proxy.Outcomes() {
		words = append(words, o.Label, "x-"+strings.ToLower(o.Label))
	}
	for _, r := range proxy.Reasons() {
		if !slices.Contains(append(proxy.Tiers(), "status", "no-store"), r.Label) {
			words = append(words, "'"+r.Label+"'", `"`+r.Label+`"`, "`"+r.Label+"`")
		}
	}
	for _, name := range []string{"ui/dashboard.js", "ui/dashboard.css", "ui/index.html"} {
		b, err := uiFiles.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range words {
			if bytes.Contains(b, []byte(w)) {
				t.Errorf("%s spells %s: take it from GET /vocabulary", name, w)
			}
		}
	}
}

// TestUIBrowser runs the dashboard in headless Chromium against the first
// of two instances sharing a Redis, while the test sends traffic in
// phases (misses, passes and bypasses; L1 hits; L2 hits; a purge), then,
// with no traffic, compares what the page shows with what the admin API
// answers: request counts and hit ratio, the chart's intervals (which must
// add up to the traffic sent while the page was open), L1, Redis, the
// fleet, the report, the last purge and the inspect box. A second tab
// opened without the token must ask for it and work once given it; a
// third, on an instance without an admin token, needs none.
//
// With CACHEPROXY_UI_SCREENSHOT=path (relative to the repository root) it
// writes a 1280x900 screenshot of the page there:
//
//	CACHEPROXY_UI_SCREENSHOT=docs/dashboard.png go test -run TestUIBrowser ./cmd/cacheproxy
//
// Without Chromium the test is skipped.
func TestUIBrowser(t *testing.T) {
	bin := chromiumPath(t)
	redis := redistest.Start(t)
	origin := httptest.NewServer(http.HandlerFunc(dashboardOrigin))
	defer origin.Close()
	cfgFile := filepath.Join(t.TempDir(), "routes.yaml")
	routes := "routes:\n  - path: /admin/\n    bypass: true\n  - path: /rank\n    ttl: 30s\n"
	if err := os.WriteFile(cfgFile, []byte(routes), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := startFleet(t, redis, origin.URL, 2, "-config", cfgFile, "-l1-ttl", "2m")
	a, b := fleet[0], fleet[1]

	br := startChromium(t, bin)
	dash := br.open(t, a.adminURL+"/ui/?inspect=/players/1#token="+fleetToken)
	dash.waitPolls(t, 1)

	// The traffic, in phases of about one poll each.
	players := func(s *server, from, to int) {
		for i := from; i <= to; i++ {
			get(t, s, fmt.Sprintf("/players/%d", i))
		}
	}
	phase := func(traffic func()) {
		n := dash.polls(t)
		traffic()
		dash.waitPolls(t, n+1)
	}
	phase(func() { // misses, passes, bypasses
		players(a, 1, 12)
		for _, p := range []string{"/rank", "/news", "/news", "/news", "/session", "/session", "/admin/users", "/admin/users"} {
			get(t, a, p)
		}
	})
	phase(func() { // L1 hits
		for range 3 {
			players(a, 1, 12)
			get(t, a, "/rank")
		}
	})
	phase(func() { // L2 hits: filled by the other instance
		players(b, 13, 24)
		players(a, 13, 24)
	})
	phase(func() { // a purge, and what follows it
		if code, _, body := fetch(t, "DELETE", a.adminURL+"/cache?url=/players/7", fleetToken); code != 200 {
			t.Fatalf("purge: %d %s", code, body)
		}
		players(a, 1, 24)
		get(t, a, "/news")
	})
	phase(func() { // mostly hits
		for range 2 {
			players(a, 1, 24)
		}
		get(t, a, "/session")
		get(t, a, "/rank")
	})

	// No more traffic: wait until each instance has announced its last
	// counters to the fleet, then for a poll that started after that.
	ids := map[string]*server{}
	for _, s := range fleet {
		ids[adminStats(t, s).Fleet.Self.ID] = s
	}
	await.Until(t, 15*time.Second, "the fleet to show every instance's last counters", func() bool {
		for _, m := range adminStats(t, a).Fleet.Members {
			var info memberInfo
			if json.Unmarshal(m.Info, &info) != nil || ids[m.ID] == nil || sumRequests(info.Requests) != sumRequests(adminStats(t, ids[m.ID]).Proxy.Requests) {
				return false
			}
		}
		return true
	})
	dash.waitPolls(t, dash.polls(t)+2)

	var page dashboardDOM
	dash.eval(t, readDashboardJS, &page)
	st := adminStats(t, a)
	checkDashboard(t, page, st)
	checkReport(t, page, a)
	checkInspect(t, page, a)

	shot := dash.screenshot(t)
	if path := os.Getenv("CACHEPROXY_UI_SCREENSHOT"); path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join(repoRoot(t), path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}

	// A tab opened now starts with the charts full (the server's history),
	// and its inspect box lists every variant of a URL that varies.
	for _, tenant := range []string{"a", "b"} {
		req, _ := http.NewRequest("GET", a.proxyURL+"/players/1", nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	st = adminStats(t, a)
	late := br.open(t, a.adminURL+"/ui/?inspect=/players/1#token="+fleetToken)
	late.waitPolls(t, 1)
	var latePage dashboardDOM
	late.eval(t, readDashboardJS, &latePage)
	var sum int64
	for _, bar := range latePage.Bars {
		n, _ := strconv.ParseInt(bar["total"], 10, 64)
		sum += n
	}
	if want := sumRequests(st.Proxy.Requests) - 2; len(latePage.Bars) < 3 || sum < want {
		t.Errorf("a tab opened late: after its first poll, %d bars with %d requests; want the history, at least %d", len(latePage.Bars), sum, want)
	}
	code, _, body := fetch(t, "GET", a.adminURL+"/cache?url=/players/1", fleetToken)
	var in proxy.Inspection
	if code != 200 || json.Unmarshal([]byte(body), &in) != nil || len(in.Variants) != 3 {
		t.Fatalf("GET /cache?url=/players/1 = %d %s; want 3 variants", code, body)
	}
	if len(latePage.Inspect.Variants) != len(in.Variants) {
		t.Errorf("inspect box lists %d variants, /cache %d: %+v", len(latePage.Inspect.Variants), len(in.Variants), latePage.Inspect.Variants)
	}
	for _, v := range in.Variants {
		var r *domRow
		for i := range latePage.Inspect.Variants {
			if latePage.Inspect.Variants[i].Key == printable(v.Key) {
				r = &latePage.Inspect.Variants[i]
			}
		}
		if r == nil || !strings.Contains(r.Cells[0], "X-Tenant: ") || r.Cells[2] != "200" {
			t.Errorf("variant %q (%v): row %+v", v.Key, v.Select, r)
		}
	}

	// The inspect box, typed into: a URL nobody asked for.
	dash.eval(t, `(() => { document.getElementById('inspect-url').value = '/never/asked'; document.getElementById('inspect-form').requestSubmit(); return true })()`, nil)
	await.Until(t, 10*time.Second, "the inspect box to say not cached", func() bool {
		var r struct{ State, Text string }
		dash.eval(t, `({state: document.getElementById('inspect-result').dataset.state, text: document.getElementById('inspect-result').textContent})`, &r)
		return r.State == "not-cached" && strings.HasPrefix(r.Text, "not cached") && strings.Contains(r.Text, "/never/asked")
	})

	// A tab without the token asks for it, and works once given it.
	bare := br.open(t, a.adminURL+"/ui/")
	bare.waitPolls(t, 1)
	var ask struct {
		FormHidden bool
		Error      string
		Requests   string
	}
	const askJS = `({formHidden: document.getElementById('token-form').hidden, error: document.getElementById('error').textContent,
		requests: document.getElementById('requests-total').textContent})`
	bare.eval(t, askJS, &ask)
	if ask.FormHidden || !strings.Contains(ask.Error, "401") || ask.Requests != "0" {
		t.Errorf("without a token: token form hidden %v, error %q, requests %q; want the form, a 401 message and no data", ask.FormHidden, ask.Error, ask.Requests)
	}
	bare.eval(t, `(() => { document.getElementById('token-input').value = '`+fleetToken+`'; document.getElementById('token-form').requestSubmit(); return true })()`, nil)
	bare.waitPolls(t, bare.polls(t)+2)
	bare.eval(t, askJS, &ask)
	if want := formatCount(sumRequests(st.Proxy.Requests)); !ask.FormHidden || ask.Error != "" || ask.Requests != want {
		t.Errorf("token typed in: token form hidden %v, error %q, requests %q; want no form, no error, %s requests", ask.FormHidden, ask.Error, ask.Requests, want)
	}

	// A loopback admin listener without a token: the page needs none.
	solo := startServer(t, nil, "-origin", origin.URL)
	get(t, solo, "/players/1")
	soloTab := br.open(t, solo.adminURL+"/ui/")
	soloTab.waitPolls(t, 2)
	var plain struct {
		FormHidden             bool
		Error, Requests, Redis string
		Fleet                  string
	}
	soloTab.eval(t, `({formHidden: document.getElementById('token-form').hidden, error: document.getElementById('error').textContent,
		requests: document.getElementById('requests-total').textContent, redis: document.getElementById('redis-state').textContent,
		fleet: document.getElementById('fleet-note').textContent})`, &plain)
	if !plain.FormHidden || plain.Error != "" || plain.Requests != "1" || plain.Redis != "none" || plain.Fleet != "no Redis: this instance alone" {
		t.Errorf("without an admin token: %+v; want no token form, no error, 1 request, Redis none, no fleet", plain)
	}

	br.checkNoExceptions(t)
}

// dashboardOrigin is the origin of TestUIBrowser: cacheable players
// (tagged, varying on X-Tenant), a rank cached by its route's ttl, news
// without freshness, a session page that sets a cookie, and an admin area
// the routes bypass.
func dashboardOrigin(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	switch {
	case strings.HasPrefix(r.URL.Path, "/players/"):
		id := strings.TrimPrefix(r.URL.Path, "/players/")
		h.Set("Cache-Control", "max-age=300")
		h.Set("Cache-Tag", "player:"+id)
		h.Set("Vary", "X-Tenant")
		fmt.Fprintf(w, `{"player": %q, "score": 100}`, id)
	case r.URL.Path == "/rank":
		io.WriteString(w, `{"top": [1, 2, 3]}`)
	case r.URL.Path == "/session":
		h.Set("Cache-Control", "max-age=60")
		h.Set("Set-Cookie", "session=abc; Path=/")
		io.WriteString(w, "hello")
	default:
		io.WriteString(w, "news or admin")
	}
}

// dashboardDOM is what readDashboardJS reads from the page.
type dashboardDOM struct {
	Polls       int
	Hash, Token string
	Error       string
	HitRatio    string
	HitRatioAll string
	Requests    string
	Origin      string
	L1Entries   string
	Redis       string
	Results     map[string]string
	// ResultTitles is the title of each result's row: the meaning GET
	// /vocabulary gives it.
	ResultTitles map[string]string
	Bars         []map[string]string
	RateSamples  int
	RatePoints   int
	Fleet        []domRow
	Report       []domRow
	Routes       []domRow
	Purges       []domRow
	Inspect      struct {
		State, URL string
		Fields     map[string]string
		Variants   []domRow
	}
}

type domRow struct {
	Key    string   // data-id, data-pattern or data-query
	Extra  string   // data-self, data-status
	Cells  []string // the cells' text
	Titles []string // the cells' titles
}

const readDashboardJS = `(() => {
	const $ = (s) => document.querySelector(s);
	const txt = (s) => $(s).textContent;
	const rows = (sel, key, extra) => [...document.querySelectorAll(sel + ' tbody tr')].filter((r) => r.dataset[key] !== undefined)
		.map((r) => ({key: r.dataset[key], extra: r.dataset[extra] || '', cells: [...r.cells].map((c) => c.textContent),
			titles: [...r.cells].map((c) => c.title)}));
	const line = $('#chart-rates polyline');
	return {
		polls: +document.body.dataset.polls,
		hash: location.hash,
		token: sessionStorage.getItem('cacheproxy-admin-token'),
		error: $('#error').hidden ? '' : txt('#error'),
		hitRatio: txt('#hit-ratio'), hitRatioAll: txt('#hit-ratio-all'),
		requests: txt('#requests-total'), origin: txt('#origin-requests'),
		l1Entries: txt('#l1-entries'), redis: txt('#redis-state'),
		results: Object.fromEntries(rows('#results', 'kind', '').map((r) => [r.key, r.cells[1]])),
		resultTitles: Object.fromEntries(rows('#results', 'kind', '').map((r) => [r.key, r.titles[0]])),
		bars: [...document.querySelectorAll('#chart-tiers g.bar')].map((g) => Object.assign({rects: String(g.querySelectorAll('rect').length)}, g.dataset)),
		rateSamples: +$('#chart-rates').dataset.samples,
		ratePoints: line ? line.getAttribute('points').split(' ').length : 0,
		fleet: rows('#fleet', 'id', 'self'),
		report: rows('#report', 'pattern', ''),
		routes: rows('#routes', 'pattern', ''),
		purges: rows('#purges', 'query', 'status'),
		inspect: {
			state: $('#inspect-result').dataset.state, url: $('#inspect-result').dataset.url,
			fields: Object.fromEntries([...document.querySelectorAll('#inspect-result dd')].map((d) => [d.dataset.field, d.textContent])),
			variants: rows('#inspect-result table.variants', 'key', ''),
		},
	};
})()`

func checkDashboard(t *testing.T, page dashboardDOM, st stats) {
	t.Helper()
	p := st.Proxy
	if page.Error != "" {
		t.Errorf("the page shows an error: %s", page.Error)
	}
	if page.Hash != "" || page.Token != fleetToken {
		t.Errorf("location.hash %q, token in sessionStorage %q: want the fragment removed and the token kept", page.Hash, page.Token)
	}
	for _, k := range dashKinds {
		if got, want := page.Results[k], formatCount(p.Requests[k]); got != want {
			t.Errorf("requests %s: page shows %q, /stats says %s", k, got, want)
		}
	}
	// The results are those GET /vocabulary lists, each with its meaning:
	// a text only that answer holds (neither /stats nor the script).
	for _, o := range proxy.Outcomes() {
		if got := page.ResultTitles[o.Label]; got != o.Meaning || got == "" {
			t.Errorf("result %s: row titled %q, want its meaning from /vocabulary %q", o.Label, got, o.Meaning)
		}
	}
	if got, want := page.Requests, formatCount(sumRequests(p.Requests)); got != want {
		t.Errorf("requests: page shows %q, /stats says %s", got, want)
	}
	checkPercent(t, "hit ratio", page.HitRatio, p.HitRatio)
	checkPercent(t, "hit ratio of all", page.HitRatioAll, p.HitRatioAll)
	if got, want := page.Origin, formatCount(p.OriginRequests); got != want {
		t.Errorf("origin requests: page shows %q, /stats says %s", got, want)
	}
	if got, want := page.L1Entries, formatCount(st.L1.Entries); got != want {
		t.Errorf("L1 entries: page shows %q, /stats says %s", got, want)
	}
	if page.Redis != "healthy" || !st.Redis.Healthy {
		t.Errorf("Redis: page shows %q, /stats says healthy %v", page.Redis, st.Redis.Healthy)
	}

	// The chart: one bar per interval between the server's samples
	// (GET /history), the first taken at its start; together they add up
	// to everything sent since, before the page opened included.
	sums := map[string]int64{}
	withData := 0
	for _, bar := range page.Bars {
		for k, v := range bar {
			n, _ := strconv.ParseInt(v, 10, 64)
			sums[k] += n
		}
		if bar["total"] != "0" {
			withData++
			if bar["rects"] == "0" {
				t.Errorf("bar with %s requests draws nothing: %v", bar["total"], bar)
			}
		}
	}
	for _, k := range dashKinds {
		field := strings.ToLower(strings.ReplaceAll(k, "-", ""))
		if got, want := sums[field], p.Requests[k]; got != want {
			t.Errorf("chart: %s adds up to %d over %d bars, want %d (sent since the start)", k, got, len(page.Bars), want)
		}
	}
	if withData < 3 || sums["hitl1"] == 0 || sums["hitl2"] == 0 || sums["miss"] == 0 || sums["pass"] == 0 || sums["bypass"] == 0 {
		t.Errorf("chart: %d bars with data, sums %v; want at least 3, with L1 and L2 hits, misses, passes and bypasses", withData, sums)
	}
	if page.RateSamples != len(page.Bars) || page.RatePoints != len(page.Bars) {
		t.Errorf("rates chart: %d samples, %d points; want %d", page.RateSamples, page.RatePoints, len(page.Bars))
	}

	// The fleet: both instances, this one marked, with their hit ratios.
	if len(page.Fleet) != len(st.Fleet.Members) || len(page.Fleet) != 2 {
		t.Errorf("fleet: page shows %d members, /stats %d", len(page.Fleet), len(st.Fleet.Members))
	}
	for _, m := range st.Fleet.Members {
		var info memberInfo
		if err := json.Unmarshal(m.Info, &info); err != nil {
			t.Fatalf("member %s: %v", m.ID, err)
		}
		var r *domRow
		for i := range page.Fleet {
			if page.Fleet[i].Key == m.ID {
				r = &page.Fleet[i]
			}
		}
		if r == nil {
			t.Errorf("fleet: member %s not shown", m.ID)
			continue
		}
		if self := strconv.FormatBool(m.ID == st.Fleet.Self.ID); r.Extra != self {
			t.Errorf("fleet: member %s marked self=%s, want %s", m.ID, r.Extra, self)
		}
		if got, want := r.Cells[2], formatCount(sumRequests(info.Requests)); got != want {
			t.Errorf("fleet: member %s requests %q, want %s", m.ID, got, want)
		}
		checkPercent(t, "fleet member "+m.ID+" hit ratio", r.Cells[3], info.HitRatio)
	}

	// The last purge, newest first.
	if len(page.Purges) == 0 || page.Purges[0].Key != "url=/players/7" || page.Purges[0].Extra != "200" {
		t.Errorf("last purges: %+v; want url=/players/7 answered 200 first", page.Purges)
	}
}

func checkReport(t *testing.T, page dashboardDOM, s *server) {
	t.Helper()
	code, _, body := fetch(t, "GET", s.adminURL+"/report?top=10", fleetToken)
	var rep proxy.Report
	if code != 200 || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("/report = %d %s", code, body)
	}
	for _, part := range []struct {
		name string
		want []proxy.ReportRow
		got  []domRow
	}{{"patterns", rep.Patterns, page.Report}, {"routes", rep.Routes, page.Routes}} {
		if len(part.got) != len(part.want) {
			t.Errorf("report %s: page shows %d rows, /report has %d", part.name, len(part.got), len(part.want))
			continue
		}
		for i, w := range part.want {
			g := part.got[i]
			reason := w.MainReasonText() // with its share, as the CLI shows it
			if reason == "" {
				reason = "–"
			}
			if g.Key != w.Pattern || g.Cells[1] != formatCount(w.Requests) || g.Cells[3] != reason {
				t.Errorf("report %s row %d: page shows %q, /report has %s, %d requests, main reason %q", part.name, i, g.Cells, w.Pattern, w.Requests, w.MainReason)
			}
			if _, _, ok := proxy.HitRatios(w.Answers); ok {
				checkPercent(t, "report "+w.Pattern+" hit ratio", g.Cells[2], w.HitRatio)
			} else if g.Cells[2] != "–" {
				t.Errorf("report %s: hit ratio %q without cacheable requests, want –", w.Pattern, g.Cells[2])
			}
		}
	}
	meanings := map[string]string{}
	for _, r := range proxy.Reasons() {
		meanings[r.Label] = r.Meaning
	}
	want := map[string]string{"/news": "no-freshness", "/session": "set-cookie", "/admin/users": "bypass-route"}
	for _, r := range page.Report {
		if reason, ok := want[r.Key]; ok {
			if r.Cells[3] != reason+" (100%)" || r.Cells[4] == "" {
				t.Errorf("report %s: reason %q, advice %q; want %s (100%%) with advice", r.Key, r.Cells[3], r.Cells[4], reason)
			}
			// The reason explained as GET /vocabulary explains it.
			if r.Titles[3] != meanings[reason] || r.Titles[3] == "" {
				t.Errorf("report %s: reason titled %q, want its meaning from /vocabulary %q", r.Key, r.Titles[3], meanings[reason])
			}
			delete(want, r.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("report: no rows for %v", want)
	}
}

func checkInspect(t *testing.T, page dashboardDOM, s *server) {
	t.Helper()
	code, _, body := fetch(t, "GET", s.adminURL+"/cache?url=/players/1", fleetToken)
	var in proxy.Inspection
	if code != 200 || json.Unmarshal([]byte(body), &in) != nil {
		t.Fatalf("GET /cache?url=/players/1 = %d %s", code, body)
	}
	f := page.Inspect.Fields
	if page.Inspect.State != "cached" || page.Inspect.URL != "/players/1" {
		t.Fatalf("inspect box: state %q for %q, want cached for /players/1 (?inspect=)", page.Inspect.State, page.Inspect.URL)
	}
	want := map[string]string{"key": printable(in.Key), "tiers": strings.Join(in.Tiers, ", "), "tags": strings.Join(in.Tags, ", "),
		"vary": strings.Join(in.Vary, ", "), "status": "200"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("inspect %s: page shows %q, /cache says %q", k, f[k], v)
		}
	}
	if f["tiers"] != "l1, l2" || f["tags"] != "player:1" {
		t.Errorf("inspect: tiers %q, tags %q; want l1, l2 and player:1", f["tiers"], f["tags"])
	}
	for _, k := range []string{"age", "ttl", "size", "stored_at"} {
		if f[k] == "" {
			t.Errorf("inspect: no %s", k)
		}
	}
}

// printable is the page's printable: control characters as \xNN.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, `\x%02x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkPercent checks a percentage shown with one decimal against a ratio.
func checkPercent(t *testing.T, what, shown string, ratio float64) {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(shown, "%"), 64)
	if err != nil || !strings.HasSuffix(shown, "%") || math.Abs(v-ratio*100) > 0.05+1e-9 {
		t.Errorf("%s: page shows %q, the API says %.4f", what, shown, ratio)
	}
}

// dashKinds are the X-Cache results, as the page lists them: the
// outcome table's.
var dashKinds = func() []string {
	var out []string
	for _, o := range proxy.Outcomes() {
		out = append(out, o.Label)
	}
	return out
}()

func sumRequests(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// formatCount formats n as the page does (toLocaleString('en-US')).
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v %s", err, out)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// --- Chromium, driven through the DevTools protocol by chromedp ---

// chromiumPath returns the Chromium binary, or fails the test: a missing
// binary is a failure, never a skip (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found on PATH: install it (apt-get install chromium; .ci/run does) to run the dashboard in a headless browser")
	return ""
}

// chromium is a headless Chromium process in a process group of its own,
// driven by chromedp over --remote-debugging-pipe.
type chromium struct {
	ctx  context.Context // its first tab (about:blank): the parent of the tabs opened
	mu   sync.Mutex
	errs []string // exceptions thrown by the pages
}

// browserTimeout bounds a Chromium's life: it is killed after it.
const browserTimeout = 2 * time.Minute

// callTimeout bounds one command to a tab.
const callTimeout = 20 * time.Second

// startChromium starts headless Chromium. At the end of the test its whole
// process group is killed, and the test fails if any of its processes
// remains.
func startChromium(t *testing.T, bin string) *chromium {
	t.Helper()
	profile := t.TempDir() // removed after the cleanup below has run
	var output syncbuf.Buffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(profile), chromedp.CombinedOutput(&output),
		// A group of its own, so that its children (renderer, GPU and
		// utility processes) are killed with it; killed as well if the
		// test binary dies.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		}))
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	first, cancelFirst := chromedp.NewContext(allocCtx)
	stop := func() { cancelFirst(); cancelAlloc(); cancel() }
	// The first run starts the browser, bound to first (not to a
	// shorter-lived context).
	if err := chromedp.Do(first); err != nil {
		stop()
		t.Fatalf("starting %s: %v\n%s", bin, err, output.String())
	}
	pgid := chromedp.FromContext(first).Browser.Process().Pid
	t.Cleanup(func() {
		stop()
		syscall.Kill(-pgid, syscall.SIGKILL)
		// Every process of the group, and any that left it, is gone.
		await.Until(t, 10*time.Second, "every Chromium process to exit", func() bool {
			return syscall.Kill(-pgid, 0) == syscall.ESRCH && len(processesWith(profile)) == 0
		})
		if t.Failed() {
			t.Logf("chromium output:\n%s", output.String())
		}
	})
	return &chromium{ctx: first}
}

// processesWith returns the PIDs of the processes whose command line
// contains s.
func processesWith(s string) []string {
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

// listen records the exceptions a page throws. It runs on chromedp's
// reading goroutine: it only appends.
func (br *chromium) listen(ev any) {
	if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
		br.mu.Lock()
		br.errs = append(br.errs, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
		br.mu.Unlock()
	}
}

func (br *chromium) checkNoExceptions(t *testing.T) {
	t.Helper()
	br.mu.Lock()
	defer br.mu.Unlock()
	for _, e := range br.errs {
		t.Errorf("the page threw: %s", e)
	}
}

// chromeTab is one page (a tab) of a chromium.
type chromeTab struct {
	ctx context.Context
}

// open opens url in a new tab of 1280x900.
func (br *chromium) open(t *testing.T, url string) *chromeTab {
	t.Helper()
	tab, cancel := chromedp.NewContext(br.ctx, chromedp.WithListener(br.listen))
	t.Cleanup(cancel)
	// The first run creates the tab, bound to tab; the calls after it
	// each have a timeout.
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	tb := &chromeTab{ctx: tab}
	ctx, cancelCall := context.WithTimeout(tab, callTimeout)
	defer cancelCall()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	return tb
}

// eval evaluates a JavaScript expression in the page and decodes its value
// into v, if not nil.
func (tb *chromeTab) eval(t *testing.T, expr string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, callTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err == nil && v != nil {
		err = json.Unmarshal(raw, v)
	}
	if err != nil {
		t.Fatalf("evaluating %.60q: %v", expr, err)
	}
}

// polls returns how many polls the dashboard has completed (0 before the
// page has loaded).
func (tb *chromeTab) polls(t *testing.T) int {
	t.Helper()
	var n int
	tb.eval(t, `+((document.body && document.body.dataset.polls) || 0)`, &n)
	return n
}

func (tb *chromeTab) waitPolls(t *testing.T, n int) {
	t.Helper()
	await.Until(t, 20*time.Second, fmt.Sprintf("the dashboard's poll #%d", n), func() bool { return tb.polls(t) >= n })
}

// screenshot returns a PNG of the tab's viewport.
func (tb *chromeTab) screenshot(t *testing.T) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, callTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: not a PNG (%v)", err)
	}
	return png
}
