package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/promtest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/internal/syncbuf"
	"github.com/cacheproxy/cacheproxy/proxy"
)

// scrapeMetrics parses the admin API's /metrics with Prometheus's own parser.
func scrapeMetrics(t *testing.T, s *server) promtest.Families {
	t.Helper()
	code, _, body := fetch(t, "GET", s.adminURL+"/metrics", fleetToken)
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return promtest.Parse(t, body)
}

// TestMetricsFromStart: before any request, /metrics has every series
// docs/observability.md lists, each outcome and tier at zero; after a
// miss and a hit, the request duration histogram counts each under its
// outcome and the bytes served are counted by tier.
func TestMetricsFromStart(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL)
	mf := scrapeMetrics(t, s)
	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile("`(cacheproxy_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1)
	if len(documented) < 10 {
		t.Fatalf("docs/observability.md lists %d series", len(documented))
	}
	for _, m := range documented {
		name := m[1]
		if strings.HasPrefix(name, "cacheproxy_redis_") || strings.HasPrefix(name, "cacheproxy_purges_") ||
			strings.HasPrefix(name, "cacheproxy_invalidations_") || strings.HasPrefix(name, "cacheproxy_subscription_") ||
			name == "cacheproxy_l1_flushes_total" || name == "cacheproxy_l1_usable" {
			if name != "cacheproxy_redis_errors_total" {
				continue // with -redis only: see TestRedisMetricsFromStart
			}
		}
		if mf[name] == nil {
			t.Errorf("documented series %s is absent from a fresh /metrics", name)
		}
	}
	for _, o := range proxy.Outcomes() {
		if m := mf.Series("cacheproxy_requests_total", "result", o.Label); m == nil || m.GetCounter().GetValue() != 0 {
			t.Errorf("cacheproxy_requests_total{result=%q} = %v, want 0", o.Label, m)
		} else if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "class" && l.GetValue() == string(o.Class) }) {
			t.Errorf("cacheproxy_requests_total{result=%q} has labels %v, want class=%q", o.Label, m.GetLabel(), o.Class)
		}
		if m := mf.Series("cacheproxy_request_duration_seconds", "result", o.Label); m == nil || m.GetHistogram().GetSampleCount() != 0 {
			t.Errorf("cacheproxy_request_duration_seconds{result=%q} = %v, want an empty histogram", o.Label, m)
		}
	}
	for _, tier := range proxy.Tiers() {
		if mf.Series("cacheproxy_served_bytes_total", "tier", tier) == nil {
			t.Errorf("no cacheproxy_served_bytes_total{tier=%q}", tier)
		}
	}

	fetch(t, "GET", s.proxyURL+"/a", "")
	fetch(t, "GET", s.proxyURL+"/a", "")
	mf = scrapeMetrics(t, s)
	for label, want := range map[string]uint64{"MISS": 1, "HIT-L1": 1, "PASS": 0} {
		if m := mf.Series("cacheproxy_request_duration_seconds", "result", label); m.GetHistogram().GetSampleCount() != want {
			t.Errorf("duration of %s: %d samples, want %d", label, m.GetHistogram().GetSampleCount(), want)
		}
	}
	for tier, want := range map[string]float64{"l1": 5, "origin": 5, "l2": 0} {
		if m := mf.Series("cacheproxy_served_bytes_total", "tier", tier); m.GetCounter().GetValue() != want {
			t.Errorf("bytes served by %s: %v, want %v", tier, m.GetCounter().GetValue(), want)
		}
	}
}

// TestRedisMetricsFromStart: with -redis, every documented Redis and
// fleet series is on a fresh /metrics, the reply errors of every purpose
// and kind at zero.
func TestRedisMetricsFromStart(t *testing.T) {
	redis := redistest.Start(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL, "-redis", redis.URL())
	mf := scrapeMetrics(t, s)
	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("`(cacheproxy_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		if mf[m[1]] == nil {
			t.Errorf("documented series %s is absent from a fresh /metrics with -redis", m[1])
		}
	}
	for _, purpose := range []string{"read", "write", "fleet", "subscribe"} {
		for _, kind := range []string{"READONLY", "MOVED", "other"} {
			m := mf.Series("cacheproxy_redis_reply_errors_total", "purpose", purpose)
			found := false
			for _, x := range mf["cacheproxy_redis_reply_errors_total"].GetMetric() {
				var p, k string
				for _, l := range x.GetLabel() {
					switch l.GetName() {
					case "purpose":
						p = l.GetValue()
					case "kind":
						k = l.GetValue()
					}
				}
				found = found || p == purpose && k == kind
			}
			if m == nil || !found {
				t.Errorf("no cacheproxy_redis_reply_errors_total{purpose=%q,kind=%q}", purpose, kind)
			}
		}
	}
}

// TestAccessLogCombined: -access-log-format combined writes the combined
// log format, with host-controlled fields escaped; json carries host,
// user_agent and referer.
func TestAccessLogCombined(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	dir := t.TempDir()
	for _, format := range []string{"combined", "json"} {
		file := filepath.Join(dir, format+".log")
		s := startServer(t, nil, "-origin", origin.URL, "-access-log", file, "-access-log-format", format)
		req, _ := http.NewRequest("GET", s.proxyURL+"/p?q=1", nil)
		req.Host = "api.example"
		req.Header.Set("User-Agent", `evil" agent`)
		req.Header.Set("Referer", "https://example.com/from")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var line string
		await.Until(t, 15*time.Second, "the access log line", func() bool {
			b, _ := os.ReadFile(file)
			line = string(b)
			return strings.HasSuffix(line, "\n")
		})
		switch format {
		case "combined":
			re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /p\?q=1 HTTP/1\.1" 200 5 "https://example\.com/from" "evil\\x22 agent"\n$`)
			if !re.MatchString(line) {
				t.Errorf("combined line %q does not match %s", line, re)
			}
		case "json":
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("json line %q: %v", line, err)
			}
			if m["host"] != "api.example" || m["user_agent"] != `evil" agent` || m["referer"] != "https://example.com/from" || m["x_cache"] != "PASS" {
				t.Errorf("json line %v", m)
			}
		}
	}
	if _, err := loadConfig([]string{"-origin", origin.URL, "-access-log-format", "clf"}, env(nil)); err == nil ||
		!strings.Contains(err.Error(), "access-log-format") {
		t.Errorf("-access-log-format clf: %v, want an error naming the field", err)
	}
}

// TestTailRoute: GET /tail streams the requests that match its filter as
// JSON lines; a bad filter is a 400.
func TestTailRoute(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL)
	if code, _, body := fetch(t, "GET", s.adminURL+"/tail?outcome=NOPE", fleetToken); code != 400 || !strings.Contains(body, "HIT-L1") {
		t.Errorf("/tail?outcome=NOPE: %d %s, want 400 listing the outcomes", code, body)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.adminURL+"/tail?prefix=/api/&outcome=HIT-L1", nil)
	req.Header.Set("Authorization", "Bearer "+fleetToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("/tail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan served, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var rec served
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				lines <- rec
			}
		}
		close(lines)
	}()
	for _, p := range []string{"/api/x", "/api/x", "/other", "/other", "/api/y"} {
		fetch(t, "GET", s.proxyURL+p, "")
	}
	fetch(t, "GET", s.proxyURL+"/api/y", "")
	var got []string
	timeout := time.After(15 * time.Second)
	for len(got) < 2 {
		select {
		case rec := <-lines:
			got = append(got, rec.Path+" "+rec.XCache)
		case <-timeout:
			t.Fatalf("tail lines: %v, want the two HIT-L1 under /api/", got)
		}
	}
	if got[0] != "/api/x HIT-L1" || got[1] != "/api/y HIT-L1" {
		t.Errorf("tail lines %v, want /api/x and /api/y, HIT-L1", got)
	}
}

// TestWatchCommands: cacheproxy tail shows the requests that match its
// filters, purges lists the purges, and stats -watch refreshes with rates.
func TestWatchCommands(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", origin.URL)
	getenv := env(map[string]string{"CACHEPROXY_ADMIN": s.adminURL, "CACHEPROXY_ADMIN_TOKEN": fleetToken})

	// tail: started before the traffic, ended by -n.
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		var out, errOut syncbuf.Buffer
		code := run(t.Context(), []string{"tail", "-outcome", "MISS", "-prefix", "/t/", "-n", "2"}, getenv, &out, &errOut)
		done <- result{code, out.String(), errOut.String()}
	}()
	await.Until(t, 15*time.Second, "the tail to be open", func() bool {
		// Requests before the tail is open are not shown: send until two are.
		fetch(t, "GET", s.proxyURL+"/t/"+time.Now().Format("150405.000000"), "")
		fetch(t, "GET", s.proxyURL+"/other/"+time.Now().Format("150405.000000"), "")
		return len(done) > 0
	})
	r := <-done
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("tail: exit %d, %q %s", r.code, r.out, r.errOut)
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3} 200 MISS +GET 127\.0\.0\.1:\d+ /t/\S+ 5 B \d+\.\dms$`).MatchString(l) {
			t.Errorf("tail line %q", l)
		}
	}
	if code, _, errOut := runClient(t, []string{"tail", "-status", "6xx"}, getenv); code != 1 || !strings.Contains(errOut, "status") {
		t.Errorf("tail -status 6xx: exit %d, %s; want 1 naming the status", code, errOut)
	}

	// purges
	purge(t, s, "url=/t/1")
	purge(t, s, "tag=player%3A7")
	code, out, errOut := runClient(t, []string{"purges"}, getenv)
	if code != 0 || !regexp.MustCompile(`(?s)AT +STATUS +PURGE +FROM\n.* 200 +tag=player:7 +127\.0\.0\.1:\d+\n.* 200 +url=/t/1 `).MatchString(out) {
		t.Errorf("purges: exit %d, %s\n%s", code, errOut, out)
	}

	// stats -watch: two frames, the second with rates.
	ctx, cancel := context.WithCancel(t.Context())
	var watch syncbuf.Buffer
	go func() {
		var errOut syncbuf.Buffer
		done <- result{code: run(ctx, []string{"stats", "-watch", "-interval", "200ms"}, getenv, &watch, &errOut), errOut: errOut.String()}
	}()
	await.Until(t, 15*time.Second, "two frames of stats -watch", func() bool {
		fetch(t, "GET", s.proxyURL+"/t/1", "")
		return strings.Contains(watch.String(), "interval hit ratio")
	})
	cancel()
	if r := <-done; r.code != 0 {
		t.Errorf("stats -watch ended with %d: %s", r.code, r.errOut)
	}
	if out := watch.String(); strings.Count(out, "requests  ") < 2 || !regexp.MustCompile(`rate +\d+\.\d req/s: HIT-L1 \d`).MatchString(out) {
		t.Errorf("stats -watch:\n%s", out)
	}
}
