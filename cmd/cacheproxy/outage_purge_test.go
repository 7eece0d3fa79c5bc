package main

import (
	"net/http"
	"testing"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// TestOutagePurgeDropsOnlyNamed: a purge made while Redis is down answers
// 503 and drops from the instance's L1 what it names, for every kind,
// and nothing else: the rest stays an L1 hit (issue 19, point 3: a tag
// purge used to empty the whole L1). What it names is fetched again and
// cached again at once.
func TestOutagePurgeDropsOnlyNamed(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	a := startFleet(t, redis, o.URL, 1)[0]
	paths := []string{"/players/1", "/players/2", "/rank/a", "/rank/b", "/other"}
	for _, p := range paths {
		warm(t, []*server{a}, p, "v1 "+p)
	}
	redis.Kill()
	o.Version.Store(2)
	gone := map[string]bool{}
	for _, step := range []struct {
		query string
		names []string
	}{
		{"tag=player:1", []string{"/players/1"}},
		{"prefix=/rank/", []string{"/rank/a", "/rank/b"}},
		{"url=/players/2", []string{"/players/2"}},
		{"all=true", []string{"/other"}},
	} {
		if code, _ := purge(t, a, step.query); code != http.StatusServiceUnavailable {
			t.Fatalf("purge %s with Redis dead = %d, want 503", step.query, code)
		}
		for _, p := range step.names {
			gone[p] = true
		}
		for _, p := range paths {
			x, body := get(t, a, p)
			switch {
			case gone[p] && body != "v2 "+p:
				t.Errorf("after purge %s, %s = %s %q: the purged version", step.query, p, x, body)
			case !gone[p] && (x != "HIT-L1" || body != "v1 "+p):
				t.Errorf("after purge %s, %s = %s %q, want HIT-L1 \"v1 %s\": the purge dropped more than it names",
					step.query, p, x, body, p)
			}
			if gone[p] {
				if x, _ := get(t, a, p); x != "HIT-L1" {
					t.Errorf("after purge %s, %s fetched again is %s, want HIT-L1", step.query, p, x)
				}
			}
		}
	}
}
