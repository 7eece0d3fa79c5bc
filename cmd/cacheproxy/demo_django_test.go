package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoDjango runs scripts/demo-django.sh (the DRF leaderboard of
// examples/django behind cacheproxy) and checks what it shows: every
// request a MISS without a route, a MISS then a HIT with the /rank route,
// /rank invalidated by the Content-Location of a POST through the proxy,
// and refreshed by a purge by tag after a write the proxy did not see; and
// the ranking's links (request.build_absolute_uri()) name the proxy's
// -public-host, not Django's own address. A missing Django fails the
// test: .ci/run installs it.
func TestDemoDjango(t *testing.T) {
	bin := buildCacheproxy(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "demo-django.sh"))
	cmd.Env = append(os.Environ(), "CACHEPROXY_BIN="+bin)
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String(), "apt-get install python3-django") {
			t.Fatalf("Django is missing: %s", out.String())
		}
		t.Fatalf("demo-django.sh: %v\n%s", err, out.String())
	}
	t.Logf("demo-django.sh:\n%s", out.String())

	// The requests of each part, as "METHOD PATH STATUS X-CACHE STORED LEADER".
	line := regexp.MustCompile(`^\s+(GET|POST)\s+(\S+)\s+HTTP (\d+)\s+X-Cache: (\S+)\s+Cache-Status: (.*?)(?:\s+leader (\S+) \d+)?$`)
	parts := map[string][]string{}
	part := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "==> ") {
			part, _, _ = strings.Cut(strings.TrimPrefix(l, "==> "), ".")
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		xcache := m[4]
		if strings.HasPrefix(xcache, "HIT-") {
			xcache = "HIT"
		}
		stored := "-"
		if strings.Contains(m[5], "; stored") {
			stored = "stored"
		}
		parts[part] = append(parts[part], strings.Join([]string{m[1], m[2], m[3], xcache, stored, m[6]}, " "))
	}
	want := map[string][]string{
		"1": { // no route: nothing stored
			"GET /rank 200 PASS - ada",
			"GET /rank 200 PASS - ada",
			"GET /players/1 200 PASS - ",
		},
		"2": { // {path: /rank, ttl: 30s}
			"GET /rank 200 MISS stored ada",
			"GET /rank 200 HIT - ada",
			"GET /players/1 200 PASS - ",
		},
		"3": { // POST through the proxy: Content-Location: /rank
			"POST /games 201 BYPASS - linus",
			"GET /rank 200 MISS stored linus",
			"GET /rank 200 HIT - linus",
		},
		"4": { // a write behind the proxy's back, then purge -tag rank
			"GET /rank 200 HIT - linus",
			"GET /rank 200 MISS stored ada",
			"GET /rank 200 HIT - ada",
		},
	}
	for p, w := range want {
		if got := parts[p]; strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("part %s of the demo:\n%s\nwant:\n%s", p, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
	proxyAddr := regexp.MustCompile(`cacheproxy on http://(\S+)`).FindStringSubmatch(out.String())
	link := regexp.MustCompile(`links: (\S+)`).FindStringSubmatch(out.String())
	switch {
	case proxyAddr == nil || link == nil:
		t.Error("the demo does not show the proxy's address and the ranking's links")
	case link[1] != "http://"+proxyAddr[1]+"/players/1":
		t.Errorf("the ranking links to %s through the proxy, want http://%s/players/1 (-public-host, USE_X_FORWARDED_HOST)", link[1], proxyAddr[1])
	}
	if !strings.Contains(out.String(), "purged tag rank") {
		t.Error("the demo does not show cacheproxy purge -tag rank answering")
	}
}
