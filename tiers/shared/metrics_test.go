package shared

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// gather registers c in a fresh registry and returns what it gathers:
// each series' value by its name and labels, as name{k="v",...}.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(ls)
			name := mf.GetName()
			if len(ls) > 0 {
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[name] = m.GetGauge().GetValue()
			default:
				t.Fatalf("%s: neither a counter nor a gauge", name)
			}
		}
	}
	return got
}

func wantMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s missing from %v", name, got)
		} else if g != v {
			t.Errorf("%s = %v, want %v", name, g, v)
		}
	}
}

func TestTierCollector(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	if err := tier.Set(context.Background(), "k", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	got := gather(t, tier.Collector())
	wantMetrics(t, got, map[string]float64{
		"cacheproxy_redis_up":                           1,
		"cacheproxy_redis_client_errors_total":          0,
		`cacheproxy_redis_failing{purpose="read"}`:      0,
		`cacheproxy_redis_failing{purpose="write"}`:     0,
		`cacheproxy_redis_failing{purpose="fleet"}`:     0,
		`cacheproxy_redis_failing{purpose="subscribe"}`: 0,
	})
	// Every reply-error series is there from start, at zero (dashboards
	// and alerts do not break on absence); none counted an error.
	for name, v := range got {
		if strings.HasPrefix(name, "cacheproxy_redis_reply_errors_total{") && v != 0 {
			t.Errorf("%s = %v, want 0 (no error replies)", name, v)
		}
	}
	if _, ok := got[`cacheproxy_redis_reply_errors_total{kind="ERR",purpose="read"}`]; !ok {
		t.Errorf("no reply-error series at zero in %v", got)
	}
}

func TestFleetCollector(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	if _, err := a.fleet.Purge(context.Background(), tiers.Selector{Kind: tiers.BanURL, Value: "/rank"}, ""); err != nil {
		t.Fatal(err)
	}
	got := gather(t, a.fleet.Collector())
	wantMetrics(t, got, map[string]float64{
		`cacheproxy_purges_total{kind="url"}`:      1,
		`cacheproxy_purges_total{kind="prefix"}`:   0,
		"cacheproxy_subscription_reconnects_total": 0,
		"cacheproxy_l1_usable":                     1,
	})
	for _, name := range []string{"cacheproxy_invalidations_received_total", "cacheproxy_l1_flushes_total"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing from %v", name, got)
		}
	}
}
