package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy/conn"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// mapTier is a hand-written fake of Tier: a map with expiry.
type mapTier struct {
	mu   sync.Mutex
	now  func() time.Time
	m    map[string]mapItem
	fail atomic.Bool // when set, every call fails
	gets atomic.Int64
}

type mapItem struct {
	e       *tiers.Entry
	expires time.Time
}

func newMapTier(now func() time.Time) *mapTier {
	return &mapTier{now: now, m: make(map[string]mapItem)}
}

var errTierDown = &tierErr{}

type tierErr struct{}

func (*tierErr) Error() string { return "tier down" }

func (t *mapTier) Get(ctx context.Context, key string) (*tiers.Entry, bool, error) {
	t.gets.Add(1)
	if t.fail.Load() {
		return nil, false, errTierDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	it, ok := t.m[key]
	if !ok || !t.now().Before(it.expires) {
		return nil, false, nil
	}
	return it.e, true, nil
}

func (t *mapTier) Set(ctx context.Context, key string, e *tiers.Entry, ttl time.Duration) error {
	if t.fail.Load() {
		return errTierDown
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[key] = mapItem{e: e, expires: t.now().Add(ttl)}
	return nil
}

func (t *mapTier) Delete(ctx context.Context, keys ...string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		delete(t.m, k)
	}
	return nil
}

// entry returns the entry stored under key, or nil.
func (t *mapTier) entry(key string) *tiers.Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key].e
}

func (t *mapTier) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is a test origin that counts its requests and answers with
// handler.
type origin struct {
	*httptest.Server
	hits  atomic.Int64
	clock atomic.Pointer[clock] // if set, the origin's Date follows it
}

func newOrigin(t *testing.T, handler http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		if c := o.clock.Load(); c != nil {
			w.Header().Set("Date", c.Now().UTC().Format(http.TimeFormat))
		}
		handler(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// stack is a proxy in front of an origin, with fake tiers.
type stack struct {
	h      *Handler
	local  *mapTier
	shared *mapTier
	clock  *clock
	srv    *httptest.Server
}

func newStack(t *testing.T, o *origin, mod func(*Options)) *stack {
	t.Helper()
	c := newClock()
	s := &stack{clock: c, local: newMapTier(c.Now), shared: newMapTier(c.Now)}
	o.clock.Store(c)
	u, _ := url.Parse(o.URL)
	opts := Options{Origin: u, DefaultTTL: 5 * time.Minute, Local: s.local, Shared: s.shared, Now: c.Now}
	if mod != nil {
		mod(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.h = h
	// Served as cmd/cacheproxy serves it: large responses coalesced, the
	// header and idle timeouts kept by the Listener.
	s.srv = httptest.NewUnstartedServer(h)
	ln := conn.Listen(s.srv.Listener, s.srv.Config, conn.Options{HeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute})
	s.srv.Listener = ln
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

type result struct {
	status int
	header http.Header
	body   string
}

func (s *stack) do(t *testing.T, method, path string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func (s *stack) get(t *testing.T, path string, hdr ...string) result {
	t.Helper()
	return s.do(t, http.MethodGet, path, hdr...)
}

func wantXCache(t *testing.T, r result, want string) {
	t.Helper()
	if got := r.header.Get("X-Cache"); got != want {
		t.Fatalf("X-Cache = %q, want %q (Cache-Status %q)", got, want, r.header.Get("Cache-Status"))
	}
}

func (t *mapTier) keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ks []string
	for k := range t.m {
		ks = append(ks, k)
	}
	return ks
}

// mustPurge purges what sel names through h, failing t if it cannot.
func mustPurge(t testing.TB, h *Handler, sel tiers.Selector) {
	t.Helper()
	if _, err := h.Purge(context.Background(), sel); err != nil {
		t.Fatalf("purge %v: %v", sel, err)
	}
}

// Holds reports whether t stores anything under key (the proxy's holder
// interface; the fake has no leases).
func (t *mapTier) Holds(ctx context.Context, key string) (bool, error) {
	_, ok, err := t.Get(ctx, key)
	return ok, err
}
