package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers"
	"github.com/cacheproxy/cacheproxy/tiers/local"
	"github.com/cacheproxy/cacheproxy/tiers/shared"
)

// instance is one proxy with a real L1 and a real Redis L2.
type instance struct {
	srv *httptest.Server
	h   *proxy.Handler
	l1  *local.Cache
	l2  *shared.Tier
}

func newInstance(t *testing.T, origin string, redisURL string) *instance {
	t.Helper()
	l1, err := local.New(local.Options{MaxBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l1.Close)
	// A generous per-call bound: these tests are about the protocol, and
	// a loaded machine running -race can stall a call past 100 ms.
	l2, err := shared.New(shared.Options{URL: redisURL, Bans: new(tiers.Bans), RetryInterval: 100 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l2.Close() })
	u, _ := url.Parse(origin)
	h, err := proxy.New(proxy.Options{Origin: u, Local: l1, Shared: l2, DefaultTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &instance{srv: srv, h: h, l1: l1, l2: l2}
}

func get(t *testing.T, base, path string) (status int, xcache, body string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache"), string(b)
}

// countingOrigin serves "content of <path>" cacheable for a minute.
func countingOrigin(t *testing.T) *origintest.Origin {
	return origintest.New(t, origintest.Options{CacheControl: "max-age=60", Body: origintest.Content})
}

func TestSecondInstanceHitsL2ThenL1(t *testing.T) {
	redis := redistest.Start(t)
	o := countingOrigin(t)
	a := newInstance(t, o.URL, redis.URL())
	b := newInstance(t, o.URL, redis.URL())
	if _, x, _ := get(t, a.srv.URL, "/rank"); x != "MISS" {
		t.Fatalf("A first: %s", x)
	}
	if _, x, body := get(t, b.srv.URL, "/rank"); x != "HIT-L2" || body != "content of /rank" {
		t.Fatalf("B first: %s %q", x, body)
	}
	// The promotion into B's L1 is applied asynchronously: until it is,
	// B answers from L2 again, never from the origin.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, x, _ := get(t, b.srv.URL, "/rank")
		if x == "HIT-L1" {
			break
		}
		if x != "HIT-L2" || time.Now().After(deadline) {
			t.Fatalf("B after the L2 hit: %s, want HIT-L2 until HIT-L1", x)
		}
	}
	if o.Total() != 1 {
		t.Errorf("origin requests = %d, want 1", o.Total())
	}
}

func TestRedisKilledRequestsStillServed(t *testing.T) {
	redis := redistest.Start(t)
	o := countingOrigin(t)
	a := newInstance(t, o.URL, redis.URL())
	b := newInstance(t, o.URL, redis.URL())
	get(t, a.srv.URL, "/before")
	redis.Kill()
	for i := 0; i < 20; i++ {
		for _, in := range []*instance{a, b} {
			if st, _, _ := get(t, in.srv.URL, fmt.Sprintf("/during/%d", i%5)); st != 200 {
				t.Fatalf("status %d with Redis down", st)
			}
		}
	}
	if a.h.Stats().SharedErrors == 0 {
		t.Error("no Redis error counted")
	}
	redis.Restart()
	// A fills again once Redis is back; B then finds it in L2.
	i := 0
	await.Until(t, 10*time.Second, "B to get HIT-L2 after Redis restarted", func() bool {
		path := fmt.Sprintf("/after/%d", i)
		i++
		get(t, a.srv.URL, path)
		_, x, _ := get(t, b.srv.URL, path)
		return x == "HIT-L2"
	})
}

func TestRedisDownAtStart(t *testing.T) {
	o := countingOrigin(t)
	a := newInstance(t, o.URL, "redis://127.0.0.1:1/0")
	for i := 0; i < 3; i++ {
		if st, _, _ := get(t, a.srv.URL, "/x"); st != 200 {
			t.Fatalf("status %d", st)
		}
	}
	if _, x, _ := get(t, a.srv.URL, "/x"); x != "HIT-L1" {
		t.Errorf("X-Cache %s, want HIT-L1 with Redis down", x)
	}
}

func TestStampedeAcrossInstancesOneOriginRequest(t *testing.T) {
	redis := redistest.Start(t)
	var n atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "cold")
	}))
	t.Cleanup(o.Close)
	ins := []*instance{newInstance(t, o.URL, redis.URL()), newInstance(t, o.URL, redis.URL()), newInstance(t, o.URL, redis.URL())}
	const per = 100
	errs := make(chan error, 3*per)
	start := make(chan struct{})
	for _, in := range ins {
		for i := 0; i < per; i++ {
			go func(base string) {
				<-start
				resp, err := http.Get(base + "/stampede")
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "cold" {
					err = fmt.Errorf("got %d %q", resp.StatusCode, b)
				}
				errs <- err
			}(in.srv.URL)
		}
	}
	close(start)
	for i := 0; i < 3*per; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Load(); got != 1 {
		for _, in := range ins {
			t.Logf("stats %+v, l2 errors %d", in.h.Stats(), in.l2.Errors())
		}
		t.Errorf("origin requests = %d, want 1", got)
	}
}

func TestLeaseHolderGoneOthersFetch(t *testing.T) {
	redis := redistest.Start(t)
	o := countingOrigin(t)
	a := newInstance(t, o.URL, redis.URL())
	// A lease held by an instance that died: it lapses, then A fetches.
	if err := redis.Client().Set(t.Context(), "cacheproxy:lease:{1:G:/orphan}", "dead", 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if st, _, body := get(t, a.srv.URL, "/orphan"); st != 200 || body != "content of /orphan" {
		t.Fatalf("got %d %q", st, body)
	}
	if o.Total() != 1 {
		t.Errorf("origin requests = %d", o.Total())
	}
}
