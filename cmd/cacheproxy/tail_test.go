package main

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestTailDropsRatherThanBlocks: a tail nobody reads holds tailBuffer
// lines and counts the rest as dropped; publishing never waits.
func TestTailDropsRatherThanBlocks(t *testing.T) {
	var hub tailHub
	if hub.watched() {
		t.Fatal("watched with no tail")
	}
	sub, ok := hub.subscribe(tailFilter{})
	if !ok || !hub.watched() {
		t.Fatal("subscribe failed")
	}
	done := make(chan struct{})
	go func() {
		for range tailBuffer + 500 {
			hub.publish(served{Path: "/x", Status: 200})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on a tail nobody reads")
	}
	if len(sub.ch) != tailBuffer || sub.dropped.Load() != 500 {
		t.Errorf("%d lines held, %d dropped; want %d and 500", len(sub.ch), sub.dropped.Load(), tailBuffer)
	}
	hub.unsubscribe(sub)
	if hub.watched() {
		t.Error("watched after the last tail left")
	}
	var subs []*tailSub
	for range maxTails {
		s, ok := hub.subscribe(tailFilter{})
		if !ok {
			t.Fatal("fewer than maxTails tails allowed")
		}
		subs = append(subs, s)
	}
	if _, ok := hub.subscribe(tailFilter{}); ok {
		t.Errorf("a tail beyond maxTails (%d) was allowed", maxTails)
	}
}

func TestTailFilter(t *testing.T) {
	rec := served{Path: "/api/players/7?x=1", Host: "api.example", Method: "GET", Status: 503, XCache: "ERROR"}
	for _, c := range []struct {
		query string
		match bool
		err   string
	}{
		{"", true, ""},
		{"prefix=/api/", true, ""},
		{"prefix=/web/", false, ""},
		{"outcome=miss,error", true, ""},
		{"outcome=HIT-L1", false, ""},
		{"status=5xx", true, ""},
		{"status=404,2xx", false, ""},
		{"status=503&method=get&host=API.example", true, ""},
		{"method=POST", false, ""},
		{"outcome=NOPE", false, "unknown outcome"},
		{"status=6xx", false, "status"},
		{"status=99", false, "status"},
		{"prefix=api", false, "must start with /"},
		{"url=/x", false, "unknown filter"},
	} {
		q, _ := url.ParseQuery(c.query)
		f, err := parseTailFilter(q)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one saying %q", c.query, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.query, err)
		} else if f.match(rec) != c.match {
			t.Errorf("%q: match %v, want %v", c.query, !c.match, c.match)
		}
	}
}

// FuzzParseTailFilter: any query parses or is refused, never panics, and
// a status filter it accepts names real statuses.
func FuzzParseTailFilter(f *testing.F) {
	for _, s := range []string{"status=5xx,404", "outcome=MISS&prefix=/a", "status=1xx", "status=600", "method=,,", "host=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		tf, err := parseTailFilter(q)
		if err != nil {
			return
		}
		for _, r := range tf.statuses {
			if r.lo < 100 || r.hi > 599 || r.lo > r.hi {
				t.Errorf("%q: status range %v", raw, r)
			}
		}
		tf.match(served{})
	})
}

// FuzzCombinedLine: whatever a client sends, a combined log line is one
// line, its quoted fields closed where they should be.
func FuzzCombinedLine(f *testing.F) {
	f.Add("GET", "/a?b", "curl/8", "https://x/\"y")
	f.Add("GET", "/\n", "\x00\xff\\", "")
	f.Fuzz(func(t *testing.T, method, path, ua, ref string) {
		line := string(appendCombined(nil, served{Remote: "1.2.3.4:5", Method: method, Path: path, Proto: "HTTP/1.1",
			Status: 200, UserAgent: ua, Referer: ref, Time: time.Unix(0, 0)}))
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("not one line: %q", line)
		}
		if n := strings.Count(line, `"`); n != 6 {
			t.Fatalf("%d quotes, want 6: %q", n, line)
		}
	})
}
