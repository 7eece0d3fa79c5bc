package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// TestAccessLog: with -access-log, one JSON line per request with what an
// operator looks for, and the request id echoed.
func TestAccessLog(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		if r.URL.Path == "/cached" {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	file := filepath.Join(t.TempDir(), "access.log")
	s := startServer(t, nil, "-origin", origin.URL, "-access-log", file)
	for _, p := range []string{"/cached", "/cached", "/plain"} {
		fetch(t, "GET", s.proxyURL+p, "")
	}
	req, _ := http.NewRequest("GET", s.proxyURL+"/cached", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); id != "abc-123" {
		t.Errorf("X-Request-Id %q, want the client's", id)
	}
	var lines []map[string]any
	await.Until(t, 15*time.Second, "four access log lines", func() bool {
		b, _ := os.ReadFile(file)
		lines = nil
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil {
				lines = append(lines, m)
			}
		}
		return len(lines) == 4
	})
	want := []struct{ path, xcache, tier, reason string }{
		{"/cached", "MISS", "origin", ""},
		{"/cached", "HIT-L1", "l1", ""},
		{"/plain", "PASS", "origin", "no-freshness"},
		{"/cached", "HIT-L1", "l1", ""},
	}
	for i, w := range want {
		l := lines[i]
		if l["path"] != w.path || l["x_cache"] != w.xcache || l["tier"] != w.tier || l["reason"] != w.reason ||
			l["status"] != float64(200) || l["bytes"] != float64(5) || l["method"] != "GET" || l["id"] == "" {
			t.Errorf("line %d: %v, want %+v", i, l, w)
		}
	}
	if o, _ := lines[0]["origin_ms"].(float64); o < 20 {
		t.Errorf("origin_ms of the miss = %v, want at least the origin's 20ms", lines[0]["origin_ms"])
	}
	if o, _ := lines[1]["origin_ms"].(float64); o != 0 {
		t.Errorf("origin_ms of a hit = %v", o)
	}
	if lines[3]["id"] != "abc-123" {
		t.Errorf("id %v", lines[3]["id"])
	}
}
