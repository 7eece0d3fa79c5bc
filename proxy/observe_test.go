package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestOriginErrorOutcome: the proxy's own 502 and 504 are the ERROR
// outcome, in X-Cache, Cache-Status, Stats and the report, for a looked-up
// request and a passed-through one alike.
func TestOriginErrorOutcome(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second)
	})
	s := newStack(t, o, func(opts *Options) { opts.FillTimeout = 500 * time.Millisecond })
	r := s.get(t, "/slow")
	if r.status != http.StatusGatewayTimeout {
		t.Fatalf("slow origin: %d, want 504", r.status)
	}
	wantXCache(t, r, "ERROR")
	if got, want := r.header.Get("Cache-Status"), "cacheproxy; fwd=uri-miss; detail=origin-error"; got != want {
		t.Errorf("Cache-Status %q, want %q", got, want)
	}
	o.Close()
	r = s.get(t, "/down")
	if r.status != http.StatusBadGateway {
		t.Fatalf("closed origin: %d, want 502", r.status)
	}
	wantXCache(t, r, "ERROR")
	r = s.do(t, http.MethodPost, "/down")
	if r.status != http.StatusBadGateway {
		t.Fatalf("closed origin POST: %d, want 502", r.status)
	}
	wantXCache(t, r, "ERROR")
	if got, want := r.header.Get("Cache-Status"), "cacheproxy; fwd=bypass; detail=origin-error"; got != want {
		t.Errorf("POST: Cache-Status %q, want %q", got, want)
	}
	st := s.h.Stats()
	if st.Requests["ERROR"] != 3 || st.Requests["MISS"] != 0 || st.Requests["BYPASS"] != 0 {
		t.Errorf("requests %v, want 3 ERROR and nothing else", st.Requests)
	}
	rep := s.h.Report(10)
	var found bool
	for _, p := range rep.Patterns {
		if p.Pattern == "/down" {
			found = true
			if p.Answers["ERROR"] != 2 || p.Reasons["origin-error"] != 2 || p.MainReason != "origin-error" {
				t.Errorf("report row %+v, want 2 ERROR for origin-error", p)
			}
		}
	}
	if !found {
		t.Errorf("no /down in the report: %+v", rep.Patterns)
	}
}

// TestOutcomesTable: every label counted is described by Outcomes, and
// HitRatios reads the classes from it.
func TestOutcomesTable(t *testing.T) {
	if len(Outcomes()) != len(labels) {
		t.Fatalf("Outcomes() has %d, labels %d", len(Outcomes()), len(labels))
	}
	for _, l := range labels {
		o, ok := OutcomeOf(l)
		if !ok || o.Class == "" || o.Tier == "" {
			t.Errorf("%s: %+v, %v", l, o, ok)
		}
	}
	cacheable, all, ok := HitRatios(map[string]int64{"HIT-L1": 1, "MISS": 1, "ERROR": 2})
	if !ok || cacheable != 0.5 || all != 0.25 {
		t.Errorf("HitRatios = %v, %v, %v; want 0.5, 0.25, true", cacheable, all, ok)
	}
}

// slowTier is a Tier whose Sets fail with a timeout while slow is set.
type slowTier struct {
	*mapTier
	slow atomic.Bool
}

func (t *slowTier) Set(ctx context.Context, key string, e *tiers.Entry, ttl time.Duration) error {
	if t.slow.Load() {
		return fmt.Errorf("shared: set: %w", context.DeadlineExceeded)
	}
	return t.mapTier.Set(ctx, key, e, ttl)
}

// TestRedisTimeoutReason: a write to L2 that times out is "redis-timeout",
// one that fails otherwise "redis-down"; the report's main reason carries
// its share of the row's requests.
func TestRedisTimeoutReason(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	slow := &slowTier{}
	s := newStack(t, o, func(opts *Options) {
		slow.mapTier = opts.Shared.(*mapTier)
		opts.Shared = slow
	})
	for i := range 40 {
		slow.slow.Store(i == 7)
		r := s.get(t, fmt.Sprintf("/t/%d", i))
		if i == 7 && !strings.Contains(r.header.Get("Cache-Status"), "detail=redis-timeout") {
			t.Errorf("Cache-Status %q, want detail=redis-timeout", r.header.Get("Cache-Status"))
		}
	}
	slow.slow.Store(false)
	for i := range 40 {
		wantXCache(t, s.get(t, fmt.Sprintf("/t/%d", i)), "HIT-L1")
	}
	var row ReportRow
	for _, p := range s.h.Report(10).Patterns {
		if p.Pattern == "/t/*" {
			row = p
		}
	}
	if row.MainReason != "redis-timeout" || row.Reasons["redis-timeout"] != 1 || row.Requests != 80 {
		t.Fatalf("report row %+v, want 1 redis-timeout of 80", row)
	}
	if got, want := row.MainReasonText(), "redis-timeout (1%)"; got != want {
		t.Errorf("MainReasonText %q, want %q", got, want)
	}
	if tierFailure(errTierDown) != reasonRedisDown || tierFailure(fmt.Errorf("x: %w", context.DeadlineExceeded)) != reasonRedisTimeout {
		t.Error("tierFailure does not tell a timeout from a failure")
	}
}
