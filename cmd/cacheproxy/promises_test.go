package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// slowVersionedOrigin serves "v<version>" after delay, cacheable for five
// minutes.
func slowVersionedOrigin(t *testing.T, delay time.Duration) *origintest.Origin {
	return origintest.New(t, origintest.Options{Delay: delay, Body: func(w http.ResponseWriter, r *http.Request, version int64) {
		fmt.Fprintf(w, "v%d", version)
	}})
}

// TestNoStaleAnswerAfterAPurge races reads with purges on a fleet of two,
// with a slow origin so that fills are in flight when purges land: after a
// purge answered 200, no read that started after it returns the version
// from before it.
func TestNoStaleAnswerAfterAPurge(t *testing.T) {
	redis := redistest.Start(t)
	o := slowVersionedOrigin(t, 100*time.Millisecond)
	fleet := startFleet(t, redis, o.URL, 2)
	client := &http.Client{Timeout: 10 * time.Second}
	// purgedAt[v] is when the purge that retired version v answered 200.
	var mu sync.Mutex
	purgedAt := map[int64]time.Time{}
	var stale, reads atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func(s *server) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				resp, err := client.Get(s.proxyURL + "/race")
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				v, _ := strconv.ParseInt(strings.TrimPrefix(string(b), "v"), 10, 64)
				reads.Add(1)
				mu.Lock()
				if at, ok := purgedAt[v]; ok && start.After(at) {
					stale.Add(1)
					t.Errorf("read started %v after the purge of v%d answered 200, got v%d (%s)",
						start.Sub(at), v, v, resp.Header.Get("X-Cache"))
				}
				mu.Unlock()
			}
		}(fleet[i%2])
	}
	const rounds = 100
	for round := range rounds {
		time.Sleep(time.Duration(20+round%7*15) * time.Millisecond) // land purges at every phase of a fill
		old := o.Version.Add(1) - 1
		code, res := purge(t, fleet[round%2], "url=/race")
		if code != http.StatusOK {
			t.Fatalf("round %d: purge = %d %+v", round, code, res)
		}
		mu.Lock()
		purgedAt[old] = time.Now()
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	if stale.Load() != 0 || reads.Load() < rounds {
		t.Errorf("%d stale answers after a 200 purge in %d reads", stale.Load(), reads.Load())
	}
}

// TestStaleIfErrorForEveryWaiterThroughRedis: with L1 off (every copy in
// Redis), when the origin fails every waiter on the fill gets the stale
// copy, not only the first.
func TestStaleIfErrorForEveryWaiterThroughRedis(t *testing.T) {
	redis := redistest.Start(t)
	var failing atomic.Bool
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			time.Sleep(200 * time.Millisecond)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		io.WriteString(w, "good")
	}))
	defer o.Close()
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL()}, "-origin", o.URL, "-l1-max-bytes", "0")
	await.Until(t, 15*time.Second, "ready", func() bool { code, _, _ := fetch(t, "GET", s.adminURL+"/readyz", ""); return code == 200 })
	if x, _ := get(t, s, "/sie"); x != "MISS" {
		t.Fatalf("first: %s", x)
	}
	time.Sleep(1500 * time.Millisecond)
	failing.Store(true)
	var wg sync.WaitGroup
	bad := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(s.proxyURL + "/sie")
			if err != nil {
				bad <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "good" || resp.Header.Get("X-Cache") != "STALE" {
				bad <- fmt.Sprintf("%d %q %s", resp.StatusCode, b, resp.Header.Get("X-Cache"))
			}
		}()
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Errorf("a waiter got %s, want 200 STALE", b)
	}
}

// TestHungOriginDoesNotHoldTheKey: the origin hangs on one request; other
// requests for the key, on the same instance and on another, wait at most
// -lock-timeout and then fetch on their own, and the origin, answering
// again, serves them at once.
func TestHungOriginDoesNotHoldTheKey(t *testing.T) {
	redis := redistest.Start(t)
	release := make(chan struct{})
	var n atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select { // the first request hangs
			case <-release:
			case <-time.After(20 * time.Second):
			}
		}
		w.Header().Set("Cache-Control", "max-age=300")
		io.WriteString(w, "ok")
	}))
	defer o.Close()
	defer close(release) // before the origin closes: it waits for the hung request
	fleet := startFleet(t, redis, o.URL, 2, "-lock-timeout", "1s")
	go func() {
		if resp, err := http.Get(fleet[0].proxyURL + "/hung"); err == nil {
			resp.Body.Close()
		}
	}()
	await.Until(t, 15*time.Second, "the hung request at the origin", func() bool { return n.Load() == 1 })
	for _, s := range fleet {
		start := time.Now()
		code, _, body := fetch(t, "GET", s.proxyURL+"/hung", "")
		if code != 200 || body != "ok" {
			t.Errorf("got %d %q", code, body)
		}
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("a request waited %v for a hung fill, with -lock-timeout 1s", d)
		}
	}
}

// TestStaleWhileRevalidateFromRedis: with L1 off, an entry stale in Redis
// within its stale-while-revalidate window is served at once, and
// refreshed in the background.
func TestStaleWhileRevalidateFromRedis(t *testing.T) {
	redis := redistest.Start(t)
	var version atomic.Int64
	version.Store(1)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1) - 1
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", v)
	}))
	defer o.Close()
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL()}, "-origin", o.URL, "-l1-max-bytes", "0")
	await.Until(t, 15*time.Second, "ready", func() bool { code, _, _ := fetch(t, "GET", s.adminURL+"/readyz", ""); return code == 200 })
	get(t, s, "/swr")
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	x, body := get(t, s, "/swr")
	if x != "STALE" || body != "v1" {
		t.Errorf("stale in Redis: %s %q, want STALE v1", x, body)
	}
	if d := time.Since(start); d > 2*time.Second && x != "STALE" {
		t.Errorf("took %v: fetched while the client waited", d)
	}
	await.Until(t, 15*time.Second, "the background revalidation", func() bool {
		_, body := get(t, s, "/swr")
		return body == "v2"
	})
}

// TestL1AloneKeepsEntriesPastL1TTL: without -redis an entry lives as long
// as its freshness allows, not only -l1-ttl.
func TestL1AloneKeepsEntriesPastL1TTL(t *testing.T) {
	o := slowVersionedOrigin(t, 0)
	s := startServer(t, nil, "-origin", o.URL, "-l1-ttl", "1s")
	get(t, s, "/long")
	time.Sleep(2 * time.Second)
	if x, body := get(t, s, "/long"); x != "HIT-L1" || body != "v1" {
		t.Errorf("after -l1-ttl without Redis: %s %q, want HIT-L1 v1", x, body)
	}
}

// TestNoJoiningAFillFromBeforeThePurge: a request that arrives after a
// purge answered 200 never gets the response of a fill that started
// before it, on the same instance or another.
func TestNoJoiningAFillFromBeforeThePurge(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2)
	hold := o.Hold("/held")
	first := make(chan string, 1)
	go func() {
		resp, err := http.Get(fleet[0].proxyURL + "/held")
		if err != nil {
			first <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- string(b)
	}()
	<-o.Arrived() // the fill read v1 and waits
	o.Version.Add(1)
	if code, res := purge(t, fleet[1], "url=/held"); code != http.StatusOK {
		t.Fatalf("purge = %d %+v", code, res)
	}
	o.Unhold("/held") // later fetches answer at once
	second := make(chan string, 2)
	for _, s := range fleet {
		go func() {
			resp, err := http.Get(s.proxyURL + "/held")
			if err != nil {
				second <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			second <- string(b)
		}()
	}
	time.Sleep(300 * time.Millisecond) // let them join the held fill, if they would
	close(hold)
	if got := <-first; got != "v1 /held" {
		t.Errorf("the request from before the purge got %q", got)
	}
	for range fleet {
		if got := <-second; got != "v2 /held" {
			t.Errorf("a request from after the purge's 200 got %q, fetched before it", got)
		}
	}
}

// TestOutageLogsAreRateLimited: with the origin and Redis down, a flood of
// failing requests logs each failure's cause once per interval, and
// go-redis's own messages arrive as JSON lines of the process's log, not
// as plain text.
func TestOutageLogsAreRateLimited(t *testing.T) {
	redis := redistest.Start(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	originURL := origin.URL
	origin.Close() // refused from now on
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL()}, "-origin", originURL, "-log-level", "info")
	await.Until(t, 15*time.Second, "ready", func() bool { code, _, _ := fetch(t, "GET", s.adminURL+"/readyz", ""); return code == 200 })
	redis.Kill()
	for i := range 200 {
		if code, _, _ := fetch(t, "GET", fmt.Sprintf("%s/down/%d", s.proxyURL, i), ""); code != http.StatusBadGateway {
			t.Fatalf("request %d: %d, want 502", i, code)
		}
	}
	logs := s.logs.String()
	if n := strings.Count(logs, `"msg":"origin request failed"`); n < 1 || n > 3 {
		t.Errorf("%d origin failure lines for 200 failed requests, want the first (and a summary at most)", n)
	}
	for _, line := range strings.Split(logs, "\n") {
		if line != "" && !strings.HasPrefix(line, "{") {
			t.Errorf("a log line that is not JSON: %q", line)
		}
	}
}
