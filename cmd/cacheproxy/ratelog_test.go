package main

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/syncbuf"
)

// jsonLines returns the JSON lines written to b.
func jsonLines(b *syncbuf.Buffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestRateLimitedLog(t *testing.T) {
	var buf syncbuf.Buffer
	log := slog.New(newRateLimited(slog.NewJSONHandler(&buf, nil), 300*time.Millisecond))
	for i := range 100 {
		log.Warn("origin request failed", "n", i)
		log.Info("not limited", "n", i)
	}
	log.Warn("another failure")
	await.Until(t, 15*time.Second, "the summary line", func() bool {
		for _, l := range jsonLines(&buf) {
			if l["msg"] == "origin request failed" && l["repeated"] != nil {
				return true
			}
		}
		return false
	})
	var warns, infos, others int
	var repeated float64
	for _, l := range jsonLines(&buf) {
		switch l["msg"] {
		case "origin request failed":
			warns++
			if r, ok := l["repeated"].(float64); ok {
				repeated = r
				if l["n"].(float64) != 99 {
					t.Errorf("summary carries n=%v, want the last record's 99", l["n"])
				}
			}
		case "not limited":
			infos++
		case "another failure":
			others++
		}
	}
	if warns != 2 || repeated != 99 || infos != 100 || others != 1 {
		t.Errorf("warns %d (repeated %v), infos %d, others %d; want 2 (99), 100, 1", warns, repeated, infos, others)
	}
}
