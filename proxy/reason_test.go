package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestReasonTable: every reason has one label of its own, and a detail
// given to an answer from the cache is one the table calls a hit.
func TestReasonTable(t *testing.T) {
	seen := map[string]Reason{}
	for r := Reason(1); r < numReasons; r++ {
		l := r.String()
		if l == "" || strings.ContainsAny(l, " ;=\"") {
			t.Errorf("reason %d: label %q", r, l)
		}
		if prev, ok := seen[l]; ok {
			t.Errorf("reasons %d and %d share the label %q", prev, r, l)
		}
		seen[l] = r
	}
	if got := Reasons(); len(got) != int(numReasons)-1 || got[0].Label != reasonL1.String() {
		t.Errorf("Reasons() = %d reasons starting %+v", len(got), got[0])
	}
	if reasonNone.String() != "" || numReasons.String() != "" || numReasons.Advice("/x") != "" {
		t.Error("no reason, or one out of range, has a label or advice")
	}
	if a := reasonNoFreshness.Advice("/players/*"); !strings.Contains(a, "{path: /players/*, ttl: 30s}") || strings.Contains(a, routePlaceholder) {
		t.Errorf("advice %q does not name the route", a)
	}
	for _, o := range declared {
		if o.detail != reasonNone && reasons[o.detail].Hit != (o.class == ClassHit) {
			t.Errorf("outcome %s: detail %s, hit %v in the reason table", o.label, o.detail, reasons[o.detail].Hit)
		}
	}
}

// TestVocabularyServesEveryDeclaration: GET /vocabulary lists every
// outcome and every reason declared, each as its table describes it, and
// every label it lists says what it means. Adding an outcome or a reason
// without it being served fails here.
func TestVocabularyServesEveryDeclaration(t *testing.T) {
	srv := httptest.NewServer(VocabularyAPI())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v Vocabulary
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /vocabulary: %d, %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	outcomes := map[string]OutcomeInfo{}
	for _, o := range v.Outcomes {
		if _, dup := outcomes[o.Label]; dup {
			t.Errorf("outcome %s served twice", o.Label)
		}
		outcomes[o.Label] = o
		if o.Meaning == "" || !slices.Contains(Classes(), o.Class) || !slices.Contains(Tiers(), o.Tier) {
			t.Errorf("outcome %+v: want a meaning, one of the classes and one of the tiers", o)
		}
	}
	reasonsServed := map[string]ReasonInfo{}
	for _, r := range v.Reasons {
		reasonsServed[r.Label] = r
		if r.Meaning == "" {
			t.Errorf("reason %s: no meaning", r.Label)
		}
	}
	if len(declared) < 2 || len(v.Outcomes) != len(labels) {
		t.Errorf("%d outcomes declared, %d labels, %d served", len(declared), len(labels), len(v.Outcomes))
	}
	for _, o := range declared {
		got, ok := outcomes[o.label]
		if !ok || got.Class != o.class || got.Label != labels[o.idx] {
			t.Errorf("outcome %s (%s): served as %+v, %v", o.label, o.class, got, ok)
		}
		if o.detail != reasonNone {
			if r, ok := reasonsServed[o.detail.String()]; !ok || r.Hit != (o.class == ClassHit) {
				t.Errorf("outcome %s: its detail %s served as %+v, %v", o.label, o.detail, r, ok)
			}
		}
	}
	if len(v.Reasons) != int(numReasons)-1 {
		t.Errorf("%d reasons declared, %d served", int(numReasons)-1, len(v.Reasons))
	}
	for r := Reason(1); r < numReasons; r++ {
		if got, ok := reasonsServed[r.String()]; !ok || got != reasons[r] {
			t.Errorf("reason %s: served as %+v, %v; declared %+v", r, got, ok, reasons[r])
		}
	}
}

// TestTraceAgreesWithHeaders: the outcome and reason a Trace records (what
// the access log and tail show) are those X-Cache and Cache-Status say,
// for answers of every kind.
func TestTraceAgreesWithHeaders(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fresh":
			w.Header().Set("Cache-Control", "max-age=60")
		case "/cookie":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Set-Cookie", "a=b")
		case "/down":
			panic(http.ErrAbortHandler) // the origin fails
		}
		fmt.Fprint(w, "body")
	})
	s := newStack(t, o, func(opts *Options) { opts.Routes = []Route{{Path: "/bypass/*", Bypass: true}} })
	var mu sync.Mutex
	var last *Trace
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, tr := WithTrace(r.Context())
		s.h.ServeHTTP(w, r.WithContext(ctx))
		mu.Lock()
		last = tr
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	cases := []struct {
		method, path string
		hdr          []string
		xcache       string
		reason       string
	}{
		{"GET", "/fresh", nil, "MISS", ""},
		{"GET", "/fresh", nil, "HIT-L1", ""},
		{"GET", "/fresh", []string{"Cache-Control", "no-cache"}, "MISS", "request-no-cache"},
		{"GET", "/nofresh", nil, "PASS", "no-freshness"},
		{"GET", "/cookie", nil, "PASS", "set-cookie"},
		{"GET", "/fresh", []string{"Cache-Control", "no-store"}, "BYPASS", "request-no-store"},
		{"GET", "/bypass/x", nil, "BYPASS", "bypass-route"},
		{"POST", "/fresh", nil, "BYPASS", "method"},
		{"GET", "/other", []string{"Cache-Control", "only-if-cached"}, "MISS", "only-if-cached"},
		{"GET", "/down", nil, "ERROR", "origin-error"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			req.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		xcache, cs := resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Status")
		if xcache != tc.xcache || !strings.HasSuffix(cs, "; detail="+tc.reason) && tc.reason != "" {
			t.Errorf("%s %s %v: X-Cache %s, Cache-Status %s; want %s, %s", tc.method, tc.path, tc.hdr, xcache, cs, tc.xcache, tc.reason)
		}
		// The header's reason, read the way a log reader would: the
		// detail of a forwarded answer.
		var want string
		if _, d, ok := strings.Cut(cs, "; detail="); ok && strings.Contains(cs, "; fwd=") {
			want, _, _ = strings.Cut(d, ";")
		}
		mu.Lock()
		tr := last
		mu.Unlock()
		info, ok := tr.Outcome()
		if !ok || info.Label != xcache || info != mustOutcome(t, xcache) || tr.Reason() != want {
			t.Errorf("%s %s %v: trace says %+v (%v) reason %q; headers say %s, %q (%s)", tc.method, tc.path, tc.hdr, info, ok, tr.Reason(), xcache, want, cs)
		}
	}
}

func mustOutcome(t *testing.T, label string) OutcomeInfo {
	t.Helper()
	o, ok := OutcomeOf(label)
	if !ok {
		t.Fatalf("no outcome %q", label)
	}
	return o
}
