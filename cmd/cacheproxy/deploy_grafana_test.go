package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/promtest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/proxy"
)

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMetric   = regexp.MustCompile(`\b((?:cacheproxy|go|process)_[a-zA-Z0-9_:]*)\s*(\{[^}]*\})?`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promGrouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// promResult is a query's selection of X-Cache results: result="..." or
// result=~"a|b".
var promResult = regexp.MustCompile(`\bresult\s*(=~|=)\s*"([^"]*)"`)

// TestGrafanaDashboard checks that every metric the dashboard's queries
// name (and every label they select or group by) is in the /metrics of an
// instance with Redis, after hits, misses, origin requests and a purge;
// that every X-Cache result they name is one the proxy answers with; and
// that none lists every result of a class (it selects class=... instead,
// so that a result added to the class is counted).
func TestGrafanaDashboard(t *testing.T) {
	var dash struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(readFile(t, deployFile("grafana-dashboard.json"))), &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	type panel struct {
		Title   string            `json:"title"`
		Type    string            `json:"type"`
		Panels  []json.RawMessage `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	exprs := map[string]string{} // expr → where
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("panel: %v", err)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				exprs[tg.Expr] = "panel " + strconv.Quote(p.Title)
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) == nil && q.Query != "" {
			exprs[q.Query] = "variable " + v.Name
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("the dashboard has %d queries", len(exprs))
	}
	byClass := map[proxy.Class][]string{}
	for _, o := range proxy.Outcomes() {
		byClass[o.Class] = append(byClass[o.Class], o.Label)
	}
	for expr, where := range exprs {
		for _, m := range promResult.FindAllStringSubmatch(strings.ReplaceAll(expr, `\"`, `"`), -1) {
			named := strings.Split(m[2], "|")
			for _, l := range named {
				if _, ok := proxy.OutcomeOf(l); !ok {
					t.Errorf("%s: selects result %q, which the proxy never answers with\nquery: %s", where, l, expr)
				}
			}
			for class, labels := range byClass {
				if len(labels) > 1 && !slices.ContainsFunc(labels, func(l string) bool { return !slices.Contains(named, l) }) {
					t.Errorf("%s: lists every %s result (%s): select class=%q\nquery: %s", where, class, m[2], class, expr)
				}
			}
		}
	}

	redis := redistest.Start(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL()}, "-origin", origin.URL, "-key-prefix", "grafana")
	await.Until(t, 15*time.Second, "ready", func() bool { code, _, _ := fetch(t, "GET", s.adminURL+"/readyz", ""); return code == 200 })
	ageEpoch(t, redis.Client(), "grafana")
	for range 3 {
		fetch(t, "GET", s.proxyURL+"/a", "")
	}
	if code, _, body := fetch(t, "DELETE", s.adminURL+"/cache?url=/a", ""); code != 200 {
		t.Fatalf("purge: %d %s", code, body)
	}
	_, _, body := fetch(t, "GET", s.adminURL+"/metrics", "")
	sc := promtest.Parse(t, body)

	// Labels Prometheus adds at scrape time, and the histogram's le.
	known := map[string]bool{"instance": true, "job": true, "le": true}
	for expr, where := range exprs {
		bare := promString.ReplaceAllString(expr, `""`)
		exprLabels := map[string]bool{}
		for _, m := range promMetric.FindAllStringSubmatch(bare, -1) {
			name := m[1]
			series, ok := sc.Labels(name)
			if !ok {
				t.Errorf("%s: %s is not in /metrics\nquery: %s", where, name, expr)
				continue
			}
			for l := range series {
				exprLabels[l] = true
			}
			for _, lm := range promMatcher.FindAllStringSubmatch(m[2], -1) {
				if l := lm[1]; !known[l] && !series[l] {
					t.Errorf("%s: %s has no label %q\nquery: %s", where, name, l, expr)
				}
			}
		}
		for _, g := range promGrouping.FindAllStringSubmatch(bare, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !known[l] && !exprLabels[l] {
					t.Errorf("%s: groups by %q, a label of none of its metrics\nquery: %s", where, l, expr)
				}
			}
		}
	}
}
