package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

func TestMissThenHitL1(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "hello")
	})
	s := newStack(t, o, nil)
	r := s.get(t, "/a?b=2&a=1")
	wantXCache(t, r, "MISS")
	if cs := r.header.Get("Cache-Status"); cs != "cacheproxy; fwd=uri-miss; fwd-status=200; stored" {
		t.Errorf("Cache-Status = %q", cs)
	}
	s.clock.Advance(3 * time.Second)
	r = s.get(t, "/a?a=1&b=2") // same key: parameters sorted
	wantXCache(t, r, "HIT-L1")
	if r.body != "hello" {
		t.Errorf("body = %q", r.body)
	}
	if got := r.header.Get("Age"); got != "3" {
		t.Errorf("Age = %q, want 3", got)
	}
	if cs := r.header.Get("Cache-Status"); cs != "cacheproxy; hit; detail=l1" {
		t.Errorf("Cache-Status = %q", cs)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
	st := s.h.Stats()
	if st.Requests["HIT-L1"] != 1 || st.Requests["MISS"] != 1 || st.OriginRequests != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestHitL2PromotesToL1(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/p"), "MISS")
	key := baseKey("cacheproxy", "", target{path: "/p"})
	s.local.Delete(nil, key)
	wantXCache(t, s.get(t, "/p"), "HIT-L2")
	wantXCache(t, s.get(t, "/p"), "HIT-L1")
	// L1 holds a packed copy, not the entry as the shared tier gave it
	// (from Redis: the one allocation of its encoding).
	if l1, l2 := s.local.entry(key), s.shared.entry(key); l1 == l2 || string(l1.AppendBody(nil)) != string(l2.AppendBody(nil)) {
		t.Error("L1 holds the shared tier's entry itself, not a packed copy of it")
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
}

func TestNotStored(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header map[string]string
		req    []string
		xcache string // and the Cache-Status detail
		detail string
	}{
		{"no-store", 200, map[string]string{"Cache-Control": "no-store, max-age=60"}, nil, "PASS", "no-store"},
		{"private", 200, map[string]string{"Cache-Control": "private, max-age=60"}, nil, "PASS", "private"},
		{"no-cache", 200, map[string]string{"Cache-Control": "no-cache"}, nil, "PASS", "no-cache"},
		{"set-cookie", 200, map[string]string{"Set-Cookie": "a=b", "Cache-Control": "max-age=60"}, nil, "PASS", "set-cookie"},
		{"authorization", 200, map[string]string{"Cache-Control": "max-age=60"}, []string{"Authorization", "Bearer x"}, "PASS", "authorization"},
		{"vary star", 200, map[string]string{"Vary": "*", "Cache-Control": "max-age=60"}, nil, "PASS", "vary-star"},
		{"500 without freshness", 500, nil, nil, "PASS", "status"},
		{"no freshness, no validator", 200, nil, nil, "PASS", "no-freshness"},
		{"max-age=0", 200, map[string]string{"Cache-Control": "max-age=0"}, nil, "PASS", "no-freshness"},
		{"expired", 200, map[string]string{"Expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, nil, "PASS", "no-freshness"},
		{"cookie", 200, map[string]string{"Etag": `"e"`}, []string{"Cookie", "s=1"}, "PASS", "cookie-request"},
		{"request no-store", 200, map[string]string{"Cache-Control": "max-age=60"}, []string{"Cache-Control", "no-store"}, "BYPASS", "request-no-store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, "body")
			})
			s := newStack(t, o, nil)
			for i := 0; i < 2; i++ {
				r := s.get(t, "/x", tc.req...)
				if x := r.header.Get("X-Cache"); x != tc.xcache || !strings.HasSuffix(r.header.Get("Cache-Status"), "; detail="+tc.detail) {
					t.Fatalf("request %d: X-Cache = %q, Cache-Status %q; want %s with detail=%s", i, x, r.header.Get("Cache-Status"), tc.xcache, tc.detail)
				}
				if r.body != "body" || r.status != tc.status {
					t.Fatalf("got %d %q", r.status, r.body)
				}
			}
			if n := o.hits.Load(); n != 2 {
				t.Errorf("origin requests = %d, want 2", n)
			}
			if s.local.len() != 0 || s.shared.len() != 0 {
				t.Errorf("something was stored: l1=%d l2=%d", s.local.len(), s.shared.len())
			}
		})
	}
}

func TestSetCookieKeptForItsClient(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=1")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	if got := s.get(t, "/").header.Get("Set-Cookie"); got != "session=1" {
		t.Errorf("Set-Cookie = %q", got)
	}
}

func TestAuthorizationWithPublicIsStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/", "Authorization", "Bearer a"), "MISS")
	wantXCache(t, s.get(t, "/", "Authorization", "Bearer b"), "HIT-L1")
}

func TestAuthorizedRequestDoesNotGetImplicitlySharedEntry(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.Header.Get("Authorization"))
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.get(t, "/"), "MISS")
	r := s.get(t, "/", "Authorization", "Bearer me")
	if r.body != "Bearer me" {
		t.Errorf("authorized request got %q", r.body)
	}
}

func TestMaxAgeExpiry(t *testing.T) {
	n := 0
	var mu sync.Mutex
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		v := n
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=10")
		fmt.Fprint(w, v)
	})
	s := newStack(t, o, nil)
	if r := s.get(t, "/"); r.body != "1" {
		t.Fatal(r.body)
	}
	s.clock.Advance(9 * time.Second)
	if r := s.get(t, "/"); r.body != "1" || r.header.Get("X-Cache") != "HIT-L1" {
		t.Fatalf("before expiry: %q %q", r.body, r.header.Get("X-Cache"))
	}
	s.clock.Advance(2 * time.Second)
	if r := s.get(t, "/"); r.body != "2" || r.header.Get("X-Cache") != "MISS" {
		t.Fatalf("after expiry: %q %q", r.body, r.header.Get("X-Cache"))
	}
}

func TestOriginAgeCountsAgainstFreshness(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("Age", "8")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/")
	r := s.get(t, "/")
	wantXCache(t, r, "HIT-L1")
	if r.header.Get("Age") != "8" {
		t.Errorf("Age = %q, want 8", r.header.Get("Age"))
	}
	s.clock.Advance(3 * time.Second)
	wantXCache(t, s.get(t, "/"), "MISS")
}

func TestVaryVariants(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang="+r.Header.Get("Accept-Language"))
	})
	s := newStack(t, o, nil)
	if r := s.get(t, "/v", "Accept-Language", "en"); r.body != "lang=en" {
		t.Fatal(r.body)
	}
	r := s.get(t, "/v", "Accept-Language", "fr")
	if r.body != "lang=fr" {
		t.Fatalf("fr got %q", r.body)
	}
	wantXCache(t, r, "MISS")
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "fwd=vary-miss") {
		t.Errorf("Cache-Status = %q", cs)
	}
	r = s.get(t, "/v", "Accept-Language", "en")
	wantXCache(t, r, "HIT-L1")
	if r.body != "lang=en" {
		t.Fatalf("en got %q", r.body)
	}
	r = s.get(t, "/v")
	wantXCache(t, r, "MISS")
	if r.body != "lang=" {
		t.Fatalf("no header got %q", r.body)
	}
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin requests = %d, want 3", n)
	}
}

func TestHeadAfterGet(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "hello")
	})
	s := newStack(t, o, nil)
	s.get(t, "/h")
	r := s.do(t, http.MethodHead, "/h")
	wantXCache(t, r, "HIT-L1")
	if r.body != "" || r.header.Get("Content-Length") != "5" {
		t.Errorf("HEAD: body %q, Content-Length %q", r.body, r.header.Get("Content-Length"))
	}
	if o.hits.Load() != 1 {
		t.Errorf("origin requests = %d", o.hits.Load())
	}
}

func TestHeadMissFillsGet(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("origin got %s", r.Method)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "hello")
	})
	s := newStack(t, o, nil)
	if r := s.do(t, http.MethodHead, "/h"); r.body != "" {
		t.Fatal(r.body)
	}
	r := s.get(t, "/h")
	wantXCache(t, r, "HIT-L1")
	if r.body != "hello" {
		t.Fatal(r.body)
	}
}

func TestOverMaxObjectStreamedNotStored(t *testing.T) {
	big := strings.Repeat("z", 100<<10)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				io.WriteString(w, big[:len(big)/2])
				w.(http.Flusher).Flush()
				io.WriteString(w, big[len(big)/2:])
			})
			s := newStack(t, o, func(o *Options) { o.MaxObjectBytes = 10 << 10 })
			for i := 0; i < 2; i++ {
				r := s.get(t, "/big")
				if r.body != big {
					t.Fatalf("body length %d, want %d", len(r.body), len(big))
				}
				wantXCache(t, r, "PASS")
				if cs := r.header.Get("Cache-Status"); !strings.HasSuffix(cs, "detail=too-large") {
					t.Errorf("Cache-Status %q", cs)
				}
			}
			if o.hits.Load() != 2 || s.local.len() != 0 || s.shared.len() != 0 {
				t.Errorf("origin %d, l1 %d, l2 %d", o.hits.Load(), s.local.len(), s.shared.len())
			}
		})
	}
}

func TestConcurrentColdMissOneOriginRequest(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "cold")
	})
	s := newStack(t, o, nil)
	const n = 100
	var wg sync.WaitGroup
	bodies := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.get(t, "/cold")
			bodies <- r.body
		}()
	}
	// Let the requests pile up on the one fill, then release it.
	await.Until(t, 10*time.Second, "all requests waiting on the one fill", func() bool { return s.h.flights.waiting("cacheproxy:1:G:/cold") == n })
	close(release)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "cold" {
			t.Fatalf("body %q", b)
		}
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	if got := s.h.Stats().Collapsed; got != n-1 {
		t.Errorf("collapsed = %d, want %d", got, n-1)
	}
}

func TestUnshareableResponseNotSharedUnderConcurrency(t *testing.T) {
	for _, hdr := range []string{"Cache-Control: private, max-age=60", "Set-Cookie: id=%d"} {
		t.Run(hdr, func(t *testing.T) {
			release := make(chan struct{})
			var mu sync.Mutex
			seq := 0
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				<-release
				mu.Lock()
				seq++
				v := seq
				mu.Unlock()
				name, val, _ := strings.Cut(hdr, ": ")
				if strings.Contains(val, "%d") {
					val = fmt.Sprintf(val, v)
				}
				w.Header().Set(name, val)
				fmt.Fprintf(w, "user-%d", v)
			})
			s := newStack(t, o, nil)
			const n = 20
			var wg sync.WaitGroup
			bodies := make(chan string, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					bodies <- s.get(t, "/me").body
				}()
			}
			await.Until(t, 10*time.Second, "all requests waiting on the one fill", func() bool { return s.h.flights.waiting("cacheproxy:1:G:/me") == n })
			close(release)
			wg.Wait()
			close(bodies)
			seen := map[string]bool{}
			for b := range bodies {
				if seen[b] {
					t.Fatalf("response %q was given to two clients", b)
				}
				seen[b] = true
			}
			if got := o.hits.Load(); got != n {
				t.Errorf("origin requests = %d, want %d", got, n)
			}
		})
	}
}

func TestPassThroughMethods(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	s := newStack(t, o, nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "M-SEARCH", "PROPFIND"} {
		r := s.do(t, m, "/m")
		wantXCache(t, r, "BYPASS")
		if !strings.HasPrefix(r.body, m) {
			t.Errorf("%s: body %q", m, r.body)
		}
	}
	if s.local.len() != 0 {
		t.Errorf("stored %d entries", s.local.len())
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/other")
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	s := newStack(t, o, nil)
	s.get(t, "/target")
	s.get(t, "/other")
	wantXCache(t, s.get(t, "/target"), "HIT-L1")
	s.do(t, http.MethodPost, "/target")
	wantXCache(t, s.get(t, "/target"), "MISS")
	wantXCache(t, s.get(t, "/other"), "MISS")
}

func TestRouteRules(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, func(opts *Options) {
		opts.Routes = []Route{
			{Path: "/skip/", Bypass: true},
			{Path: "/forced/*", TTL: time.Minute, Override: true},
		}
	})
	s.get(t, "/forced/a")
	wantXCache(t, s.get(t, "/forced/a"), "HIT-L1")
	wantXCache(t, s.get(t, "/skip/a"), "BYPASS")
	wantXCache(t, s.get(t, "/other"), "PASS")
	wantXCache(t, s.get(t, "/other"), "PASS")
}

func TestOriginErrors(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	})
	s := newStack(t, o, func(opts *Options) { opts.FillTimeout = 200 * time.Millisecond })
	if r := s.get(t, "/slow"); r.status != http.StatusGatewayTimeout {
		t.Errorf("slow origin: %d, want 504", r.status)
	}
	o.Close()
	if r := s.get(t, "/down"); r.status != http.StatusBadGateway {
		t.Errorf("closed origin: %d, want 502", r.status)
	}
	if r := s.do(t, http.MethodPost, "/down"); r.status != http.StatusBadGateway {
		t.Errorf("closed origin POST: %d, want 502", r.status)
	}
}

func TestConditionalHit(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/c")
	r := s.get(t, "/c", "If-None-Match", `W/"v1"`)
	if r.status != http.StatusNotModified || r.body != "" {
		t.Errorf("got %d %q, want 304", r.status, r.body)
	}
	if r := s.get(t, "/c", "If-None-Match", `"v2"`); r.status != 200 {
		t.Errorf("other etag: %d", r.status)
	}
}

func TestRequestDirectives(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.get(t, "/r")
	s.clock.Advance(10 * time.Second)
	wantXCache(t, s.get(t, "/r", "Cache-Control", "max-age=5"), "MISS")
	wantXCache(t, s.get(t, "/r", "Cache-Control", "no-cache"), "MISS")
	wantXCache(t, s.get(t, "/r", "Pragma", "no-cache"), "MISS")
	wantXCache(t, s.get(t, "/r", "Cache-Control", "min-fresh=120"), "MISS")
	wantXCache(t, s.get(t, "/r"), "HIT-L1")
}

func TestSharedTierDownFailsOpen(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	s.shared.fail.Store(true)
	wantXCache(t, s.get(t, "/f"), "MISS")
	wantXCache(t, s.get(t, "/f"), "HIT-L1")
	if s.h.Stats().SharedErrors == 0 {
		t.Error("shared errors not counted")
	}
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Hop") != "" || r.Header.Get("Keep-Alive") != "" {
			t.Errorf("hop-by-hop request headers reached the origin: %v", r.Header)
		}
		// No X-Forwarded-Host without Options.PublicHost: the client's
		// Host never reaches the origin.
		if r.Header.Get("X-Forwarded-For") == "" || r.Header["X-Forwarded-Host"] != nil || r.Header.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("X-Forwarded headers: %v", r.Header)
		}
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "1")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "x")
	})
	s := newStack(t, o, nil)
	for i := 0; i < 2; i++ {
		r := s.get(t, "/hop", "Connection", "X-Hop", "X-Hop", "1", "Keep-Alive", "timeout=5")
		if r.header.Get("X-Secret") != "" {
			t.Errorf("request %d: hop-by-hop response header passed", i)
		}
	}
}

func TestClientGoneCancelsOriginRequestUnlessOthersWait(t *testing.T) {
	arrived := make(chan struct{}, 2)
	cancelled := make(chan struct{}, 2)
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-release:
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, "done")
		}
	})
	s := newStack(t, o, nil)
	// Unblock the origin handler however the test ends, or closing the
	// origin server waits for it forever.
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	call := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+"/gone", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	// Alone: the client leaves, the origin request is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	go call(ctx)
	<-arrived
	cancel()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("origin request not cancelled after its only client left")
	}

	// With another waiter: the first leaves, the fill goes on for the second.
	ctx1, cancel1 := context.WithCancel(context.Background())
	go call(ctx1)
	<-arrived
	second := make(chan string)
	go func() {
		body, _ := call(context.Background())
		second <- body
	}()
	await.Until(t, 10*time.Second, "two waiters on the fill", func() bool { return s.h.flights.waiting("cacheproxy:1:G:/gone") == 2 })
	cancel1()
	await.Until(t, 10*time.Second, "one waiter left on the fill", func() bool { return s.h.flights.waiting("cacheproxy:1:G:/gone") == 1 })
	unblock()
	if body := <-second; body != "done" {
		t.Fatalf("the remaining waiter got %q", body)
	}
	select {
	case <-cancelled:
		t.Fatal("origin request cancelled although a waiter remained")
	default:
	}
}

func TestRangeOfStoredResponse(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			t.Errorf("origin got Range %q", r.Header.Get("Range"))
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"r1"`)
		fmt.Fprint(w, "0123456789")
	})
	s := newStack(t, o, nil)
	// On a miss the whole response is fetched and stored, the range served.
	r := s.get(t, "/r", "Range", "bytes=2-4")
	if r.status != http.StatusPartialContent || r.body != "234" {
		t.Fatalf("miss: %d %q", r.status, r.body)
	}
	r = s.get(t, "/r", "Range", "bytes=-3")
	if r.status != http.StatusPartialContent || r.body != "789" || r.header.Get("Content-Range") != "bytes 7-9/10" {
		t.Fatalf("hit: %d %q %q", r.status, r.body, r.header.Get("Content-Range"))
	}
	wantXCache(t, r, "HIT-L1")
	if r := s.get(t, "/r", "Range", "bytes=20-30"); r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable: %d", r.status)
	}
	if r := s.get(t, "/r", "Range", "bytes=0-1", "If-Range", `"other"`); r.status != 200 || r.body != "0123456789" {
		t.Errorf("If-Range mismatch: %d %q", r.status, r.body)
	}
	if o.hits.Load() != 1 {
		t.Errorf("origin hits %d", o.hits.Load())
	}
}
