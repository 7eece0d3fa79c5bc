package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type response struct {
	code   int
	header http.Header
	body   []byte
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
	return v
}

type rankBody struct {
	Players []rankedPlayer `json:"players"`
}

func TestLeaderboard(t *testing.T) {
	srv := httptest.NewServer(newLeaderboard(150, 0).Handler())
	defer srv.Close()

	r := do(t, srv, "GET", "/rank", "")
	if r.code != 200 || r.header.Get("Cache-Tag") != "rank" || r.header.Get("Cache-Control") != "" {
		t.Fatalf("GET /rank: %d, Cache-Tag %q, Cache-Control %q", r.code, r.header.Get("Cache-Tag"), r.header.Get("Cache-Control"))
	}
	top := decode[rankBody](t, r).Players
	if len(top) != rankSize {
		t.Fatalf("GET /rank: %d players, want %d", len(top), rankSize)
	}
	for i, p := range top {
		if p.Rank != i+1 || (i > 0 && p.Score > top[i-1].Score) {
			t.Fatalf("GET /rank: entry %d = %+v after %+v", i, p, top[max(i-1, 0)])
		}
	}

	id := top[50].ID
	r = do(t, srv, "GET", fmt.Sprintf("/players/%d", id), "")
	if r.code != 200 || r.header.Get("Cache-Tag") != fmt.Sprintf("player:%d", id) || r.header.Get("Cache-Control") != "" {
		t.Fatalf("GET /players/%d: %d, Cache-Tag %q", id, r.code, r.header.Get("Cache-Tag"))
	}
	if p := decode[rankedPlayer](t, r); p != top[50] {
		t.Errorf("GET /players/%d = %+v, want %+v", id, p, top[50])
	}
	for _, path := range []string{"/players/0", "/players/151", "/players/abc"} {
		if r := do(t, srv, "GET", path, ""); r.code != 404 {
			t.Errorf("GET %s = %d, want 404", path, r.code)
		}
	}

	// A big game puts the player first.
	r = do(t, srv, "POST", "/games", fmt.Sprintf(`{"player": %d, "score": %d}`, id, maxScore))
	if r.code != 201 || r.header.Get("Location") != fmt.Sprintf("/players/%d", id) {
		t.Fatalf("POST /games: %d %q", r.code, r.body)
	}
	if p := decode[rankedPlayer](t, r); p.Rank != 1 || p.Score != top[50].Score+maxScore || p.Games != top[50].Games+1 {
		t.Errorf("POST /games = %+v", p)
	}
	if first := decode[rankBody](t, do(t, srv, "GET", "/rank", "")).Players[0]; first.ID != id {
		t.Errorf("after the game, first is %+v, want id %d", first, id)
	}

	for _, tt := range []struct {
		body string
		code int
	}{
		{`{"player": 1, "score": 10`, 400},
		{`{"player": 1}`, 400},
		{`{"player": 1, "score": -5}`, 400},
		{`{"player": 1, "score": 10, "cheat": true}`, 400},
		{`{"player": 9999, "score": 10}`, 404},
	} {
		if r := do(t, srv, "POST", "/games", tt.body); r.code != tt.code {
			t.Errorf("POST /games %s = %d %q, want %d", tt.body, r.code, r.body, tt.code)
		}
	}
	if r := do(t, srv, "GET", "/games", ""); r.code != 405 {
		t.Errorf("GET /games = %d, want 405", r.code)
	}
}

func TestDeterministicSeed(t *testing.T) {
	a, b := newLeaderboard(1000, 0), newLeaderboard(1000, 0)
	if fmt.Sprint(a.ranking()) != fmt.Sprint(b.ranking()) {
		t.Error("two leaderboards with the same size differ")
	}
}

func TestBlob(t *testing.T) {
	srv := httptest.NewServer(newLeaderboard(1, 0).Handler())
	defer srv.Close()
	a := do(t, srv, "GET", "/blob/a?size=100000", "")
	if a.code != 200 || len(a.body) != 100000 || a.header.Get("Cache-Control") != "max-age=300" {
		t.Fatalf("GET /blob/a: %d, %d bytes, Cache-Control %q", a.code, len(a.body), a.header.Get("Cache-Control"))
	}
	if again := do(t, srv, "GET", "/blob/a?size=100000", ""); !bytes.Equal(again.body, a.body) || again.header.Get("ETag") != a.header.Get("ETag") {
		t.Error("the same blob differs between requests")
	}
	if b := do(t, srv, "GET", "/blob/b?size=100000", ""); bytes.Equal(b.body, a.body) {
		t.Error("blobs a and b are equal")
	}
	if d := do(t, srv, "GET", "/blob/a", ""); len(d.body) != defaultBlobSize {
		t.Errorf("default size: %d bytes, want %d", len(d.body), defaultBlobSize)
	}
	for _, q := range []string{"-1", "x", fmt.Sprint(maxBlobSize + 1)} {
		if r := do(t, srv, "GET", "/blob/a?size="+q, ""); r.code != 400 {
			t.Errorf("size=%s: %d, want 400", q, r.code)
		}
	}
}

func TestConcurrentGames(t *testing.T) {
	lb := newLeaderboard(10, 0)
	srv := httptest.NewServer(lb.Handler())
	defer srv.Close()
	before, _ := lb.lookup(3)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			do(t, srv, "POST", "/games", `{"player": 3, "score": 7}`)
			do(t, srv, "GET", "/rank", "")
			do(t, srv, "GET", "/players/3", "")
		})
	}
	wg.Wait()
	after, _ := lb.lookup(3)
	if after.Score != before.Score+20*7 || after.Games != before.Games+20 {
		t.Errorf("after 20 games of 7: %+v, before %+v", after, before)
	}
}

func TestLatency(t *testing.T) {
	srv := httptest.NewServer(newLeaderboard(1, 30*time.Millisecond).Handler())
	defer srv.Close()
	start := time.Now()
	do(t, srv, "GET", "/players/1", "")
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("request took %v, want at least the 30ms latency", d)
	}
}

func TestRunFlags(t *testing.T) {
	for _, args := range [][]string{{"-latency", "-1s"}, {"-players", "-3"}, {"-latency", "soon"}, {"extra"}} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, &stderr); code != 2 {
			t.Errorf("run %q = %d, want 2 (stderr %q)", args, code, stderr.String())
		}
	}
	// A cancelled context stops a running server cleanly.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	if code := run(ctx, []string{"-listen", "127.0.0.1:0"}, &stderr); code != 0 {
		t.Errorf("run with a cancelled context = %d, want 0 (stderr %q)", code, stderr.String())
	}
}

func TestETagAndNotModified(t *testing.T) {
	srv := httptest.NewServer(newLeaderboard(10, 0).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/rank")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/rank", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: %d, want 304", resp.StatusCode)
	}
}
