// Package proxy is the HTTP behaviour of cacheproxy: a reverse proxy that
// answers GET and HEAD from a local tier, then a shared tier, then the
// origin, storing what RFC 9111 lets a shared cache store.
//
// The Handler speaks net/http only; the tiers it uses are the small Tier
// interface, so this package depends on neither ristretto nor Redis.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"path"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Handler is a caching reverse proxy. It is an http.Handler, safe for
// concurrent use. Create it with New.
type Handler struct {
	origin      *urlBase
	prefix      string
	defaultTTL  time.Duration
	l1TTL       time.Duration
	maxObject   int64
	fillTimeout time.Duration
	routes      []Route
	local       Tier
	shared      Tier
	transport   http.RoundTripper
	pass        *httputil.ReverseProxy
	log         *slog.Logger
	now         func() time.Time
	status      *cacheStatus
	flights     flightGroup
	m           *metrics
	bans        *tiers.Bans
	localUsable func() bool
	purge       func(ctx context.Context, kind tiers.BanKind, value string) error
	maxTTL      time.Duration
	publicHost  string
	hosts       map[string]bool // nil: every Host, none in the key
	strip       []string        // canonical names, see Options.StripHeaders
	stripSet    map[string]bool
	inflight    budget
	bodyTimeout time.Duration
}

// New returns a Handler for opts, or an error naming the option that is
// not valid.
func New(opts Options) (*Handler, error) {
	if opts.Origin == nil {
		return nil, errors.New("proxy: Origin is required")
	}
	if opts.Origin.Scheme != "http" && opts.Origin.Scheme != "https" {
		return nil, fmt.Errorf("proxy: Origin %q: scheme must be http or https", opts.Origin)
	}
	if opts.Origin.Host == "" {
		return nil, fmt.Errorf("proxy: Origin %q: no host", opts.Origin)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DefaultTTL", opts.DefaultTTL}, {"L1TTL", opts.L1TTL}, {"FillTimeout", opts.FillTimeout}, {"MaxTTL", opts.MaxTTL}, {"LockTimeout", opts.LockTimeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("proxy: %s must not be negative, got %v", d.name, d.v)
		}
	}
	if opts.MaxObjectBytes < 0 {
		return nil, fmt.Errorf("proxy: MaxObjectBytes must not be negative, got %d", opts.MaxObjectBytes)
	}
	if opts.MaxInflightBytes < 0 {
		return nil, fmt.Errorf("proxy: MaxInflightBytes must not be negative, got %d", opts.MaxInflightBytes)
	}
	if opts.BodyTimeout < 0 {
		return nil, fmt.Errorf("proxy: BodyTimeout must not be negative, got %v", opts.BodyTimeout)
	}
	for i, rt := range opts.Routes {
		if rt.Path == "" || rt.Path[0] != '/' {
			return nil, fmt.Errorf("proxy: Routes[%d].Path %q must start with /", i, rt.Path)
		}
		if isGlob(rt.Path) {
			if _, err := path.Match(strings.TrimSuffix(rt.Path, "/**"), "/"); err != nil {
				return nil, fmt.Errorf("proxy: Routes[%d].Path %q: %v", i, rt.Path, err)
			}
		}
		if rt.TTL < 0 {
			return nil, fmt.Errorf("proxy: Routes[%d].TTL must not be negative", i)
		}
	}
	if opts.PublicHost != "" && len(opts.Hosts) > 0 {
		return nil, errors.New("proxy: PublicHost and Hosts exclude each other")
	}
	if err := checkHost(opts.PublicHost); opts.PublicHost != "" && err != nil {
		return nil, fmt.Errorf("proxy: PublicHost %q: %v", opts.PublicHost, err)
	}
	var hosts map[string]bool
	for i, hn := range opts.Hosts {
		if err := checkHost(hn); err != nil {
			return nil, fmt.Errorf("proxy: Hosts[%d] %q: %v", i, hn, err)
		}
		if hosts == nil {
			hosts = make(map[string]bool)
		}
		hosts[canonicalHost(hn)] = true
	}
	strip := opts.StripHeaders
	if strip == nil {
		strip = DefaultStripHeaders
	}
	stripSet := make(map[string]bool, len(strip))
	var stripNames []string
	for _, n := range strip {
		n = http.CanonicalHeaderKey(strings.TrimSpace(n))
		if n == "" || stripSet[n] {
			continue
		}
		stripSet[n] = true
		stripNames = append(stripNames, n)
	}
	h := &Handler{
		origin:      newURLBase(opts.Origin),
		prefix:      opts.KeyPrefix,
		defaultTTL:  opts.DefaultTTL,
		l1TTL:       opts.L1TTL,
		maxObject:   opts.MaxObjectBytes,
		fillTimeout: opts.FillTimeout,
		routes:      append([]Route(nil), opts.Routes...),
		local:       opts.Local,
		shared:      opts.Shared,
		transport:   opts.Transport,
		log:         opts.Logger,
		now:         opts.Now,
		m:           newMetrics(),
		bans:        opts.Bans,
		localUsable: opts.LocalUsable,
		purge:       opts.Purge,
		maxTTL:      opts.MaxTTL,
		publicHost:  opts.PublicHost,
		hosts:       hosts,
		strip:       stripNames,
		stripSet:    stripSet,
		inflight:    budget{max: opts.MaxInflightBytes},
		bodyTimeout: opts.BodyTimeout,
	}
	if h.bans == nil {
		h.bans = new(tiers.Bans)
	}
	if h.localUsable == nil {
		h.localUsable = func() bool { return true }
	}
	if h.purge == nil {
		h.purge = func(_ context.Context, kind tiers.BanKind, value string) error {
			h.PurgeLocal(kind, value)
			return nil
		}
	}
	if h.maxTTL == 0 {
		h.maxTTL = 24 * time.Hour
	}
	if h.prefix == "" {
		h.prefix = "cacheproxy"
	}
	if h.l1TTL == 0 {
		h.l1TTL = 30 * time.Second
	}
	if h.maxObject == 0 {
		h.maxObject = 8 << 20
	}
	if h.fillTimeout == 0 {
		h.fillTimeout = 30 * time.Second
	}
	h.flights.lockTimeout = opts.LockTimeout
	if h.flights.lockTimeout == 0 {
		h.flights.lockTimeout = 5 * time.Second
	}
	if h.inflight.max == 0 {
		h.inflight.max = 256 << 20
	}
	if h.bodyTimeout == 0 {
		h.bodyTimeout = 60 * time.Second
	}
	if h.transport == nil {
		h.transport = defaultTransport()
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.status = newCacheStatus("cacheproxy")
	h.pass = h.newPassthrough()
	return h, nil
}

// ServeHTTP answers r from the tiers or the origin.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.served(r) {
		h.misdirected(w)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.passThrough(w, r)
		return
	}
	t := requestTarget(r.URL)
	rt := h.route(t.path)
	if rt != nil && rt.Bypass || t.len() > maxCachedURL {
		h.passThrough(w, r)
		return
	}
	reqCC := requestCacheControl(r.Header)
	if reqCC.noStore {
		// The request forbids storing anything of this exchange.
		h.passThrough(w, r)
		return
	}
	key := baseKey(h.prefix, h.keyHost(r), t)
	now := h.now()
	fwd := "request"
	var stale *tiers.Entry
	if !reqCC.noCache && reqCC.maxAge != 0 {
		fwd = "uri-miss"
		if h.local != nil && h.localUsable() {
			var e *tiers.Entry
			e, stale, fwd = h.lookup(r.Context(), h.local, key, r, reqCC, now)
			if e != nil {
				h.m.hitL1.Add(1)
				h.writeEntry(w, r, e, xHitL1, h.status.hitL1, now)
				return
			}
			if stale != nil && staleWhileRevalidate(stale, now) {
				h.m.request("STALE")
				h.writeEntry(w, r, stale, xStale, h.status.staleRevalidating, now)
				h.refreshInBackground(r, key, rt, stale)
				return
			}
		}
	} else if h.local != nil && h.localUsable() {
		// The request wants the origin's word: revalidate what is
		// stored rather than fetch it whole (RFC 9111 §5.2.1.4).
		if e, st, _ := h.lookup(r.Context(), h.local, key, r, reqCC, now); e != nil {
			stale = e
		} else {
			stale = st
		}
	}
	if reqCC.onlyIfCached {
		h.onlyIfCached(w, r, key, reqCC)
		return
	}
	if h.shared != nil {
		// An L2 hit needs no fill: answer it here, without the flight's
		// goroutine and timer. The fill re-checks L2 before the origin.
		e, st, _ := h.lookup(r.Context(), h.shared, key, r, reqCC, now)
		if fwd == "request" && e != nil {
			// The request wants the origin's word: revalidate the copy.
			e, st = nil, e
		}
		if e != nil {
			h.promote(r.Context(), key, r, e, now)
			h.m.request("HIT-L2")
			h.writeEntry(w, r, e, xHitL2, h.status.hitL2, now)
			return
		}
		if st != nil && (stale == nil || st.StoredAt.After(stale.StoredAt)) {
			stale = st
		}
		if fwd != "request" && stale != nil && stale == st && staleWhileRevalidate(stale, now) {
			// Stale in Redis, within its stale-while-revalidate window:
			// served as a stale L1 copy would be.
			h.m.request("STALE")
			h.writeEntry(w, r, stale, xStale, h.status.staleRevalidating, now)
			h.refreshInBackground(r, key, rt, stale)
			return
		}
	}
	h.miss(w, r, key, rt, reqCC, fwd, stale)
}

// requestCacheControl parses a request's cache directives; a request with
// Pragma: no-cache and no Cache-Control is treated as no-cache
// (RFC 9111 §5.4).
func requestCacheControl(hdr http.Header) cacheControl {
	// Most requests have no Cache-Control: look it up as net/http stores
	// it rather than have Values canonicalize the name on every request.
	if _, ok := hdr["Cache-Control"]; ok {
		return parseCacheControl(hdr)
	}
	cc := noDirectives()
	for _, p := range hdr["Pragma"] {
		if strings.Contains(strings.ToLower(p), "no-cache") {
			cc.noCache = true
		}
	}
	return cc
}

// lookup finds the entry for r in t. It returns the entry if it may
// answer r now; else, if one is stored but stale, that entry (to
// revalidate or to serve if the origin fails); and the Cache-Status
// forward reason. Tier errors count as misses.
func (h *Handler) lookup(ctx context.Context, t Tier, key string, r *http.Request, reqCC cacheControl, now time.Time) (fresh, stale *tiers.Entry, fwd string) {
	e, ok, err := t.Get(ctx, key)
	if err != nil {
		h.tierError(t, err)
		return nil, nil, "uri-miss"
	}
	if !ok || h.bans.Dead(e) {
		return nil, nil, "uri-miss"
	}
	if e.Kind == tiers.KindVary {
		e, ok, err = t.Get(ctx, h.variantKey(key, e.Vary, r))
		if err != nil {
			h.tierError(t, err)
			return nil, nil, "vary-miss"
		}
		if !ok || e.Kind != tiers.KindResponse || h.bans.Dead(e) {
			return nil, nil, "vary-miss"
		}
	}
	switch usability(e, r, reqCC, now) {
	case usable:
		return e, nil, ""
	case stored:
		return nil, e, "stale"
	}
	return nil, nil, "miss"
}

// use says whether a stored entry may answer a request.
type use int

const (
	usable    use = iota // fresh enough, or stale as the request allows
	stored               // stale: usable only after revalidation
	forbidden            // not for this request at all
)

// usability decides whether e may answer r at now: a request with
// Authorization gets only responses that say a shared cache may serve
// them (RFC 9111 §3.5); otherwise e must be fresh enough for the
// request's directives, or stale within its max-stale (RFC 9111 §4.2.4).
func usability(e *tiers.Entry, r *http.Request, reqCC cacheControl, now time.Time) use {
	if _, auth := r.Header["Authorization"]; auth {
		cc := parseCacheControl(e.Header)
		if !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate {
			return forbidden
		}
	}
	age := e.Age(now)
	remaining := e.Lifetime - age
	if reqCC.maxAge >= 0 && age > time.Duration(reqCC.maxAge)*time.Second {
		return stored
	}
	if reqCC.minFresh >= 0 && remaining < time.Duration(reqCC.minFresh)*time.Second {
		return stored
	}
	if remaining > 0 {
		return usable
	}
	if reqCC.maxStale < 0 || !mayServeStale(e) {
		return stored
	}
	if reqCC.maxStale == unlimited || -remaining <= time.Duration(reqCC.maxStale)*time.Second {
		return usable
	}
	return stored
}

func (h *Handler) tierError(t Tier, err error) {
	if t == h.shared {
		h.m.sharedErrors.Add(1)
	}
	h.log.Debug("cache tier error", "err", err)
}

// writeEntry writes e as the response to r. Header values are shared with
// e, never copied or modified.
func (h *Handler) writeEntry(w http.ResponseWriter, r *http.Request, e *tiers.Entry, xcache, cacheStatus []string, now time.Time) {
	hdr := w.Header()
	e.Header.CopyTo(hdr)
	hdr["Age"] = ageHeader(e.Age(now))
	hdr["X-Cache"] = xcache
	hdr["Cache-Status"] = cacheStatus
	if e.Status == http.StatusOK && notModified(r, e.Header) {
		delete(hdr, "Content-Length")
		delete(hdr, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if _, ok := r.Header["Range"]; ok && e.Status == http.StatusOK {
		// A range of a stored whole response (RFC 9110 §14): 206, 416,
		// or the whole 200 for an If-Range that does not match.
		delete(hdr, "Content-Length")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(e.Body))
		return
	}
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead && bodyAllowed(e.Status) {
		armCoalescing(r, len(e.Body))
		w.Write(e.Body)
	}
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// notModified evaluates the request's If-None-Match, or if absent its
// If-Modified-Since, against a stored 200 response (RFC 9110 §13.2.2).
func notModified(r *http.Request, stored tiers.Header) bool {
	if inm := r.Header["If-None-Match"]; len(inm) > 0 {
		etag := stored.Get("Etag")
		if etag == "" {
			return false
		}
		for _, line := range inm {
			for _, t := range strings.Split(line, ",") {
				t = strings.TrimSpace(t)
				if t == "*" || weakEqual(t, etag) {
					return true
				}
			}
		}
		return false
	}
	ims := r.Header["If-Modified-Since"]
	if len(ims) == 0 {
		return false
	}
	since, err := http.ParseTime(ims[0])
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(stored.Get("Last-Modified"))
	if err != nil {
		// RFC 9111 §4.3.2: without Last-Modified, use Date.
		if lm, err = http.ParseTime(stored.Get("Date")); err != nil {
			return false
		}
	}
	return !lm.After(since)
}

// weakEqual compares two entity tags with the weak comparison function.
func weakEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// route returns the first route matching the canonical path p, or nil.
// Routes match the path with its escapes decoded, dot segments removed
// and slashes merged (see routePath); a bypass route also matches
// whatever the case of the path, since an origin may read paths without
// regard to case, and a bypass must not be evaded by spelling.
func (h *Handler) route(p string) *Route {
	if len(h.routes) == 0 {
		return nil
	}
	rp := routePath(p)
	var lower string
	for i := range h.routes {
		rt := &h.routes[i]
		if routeMatch(rt.Path, rp) {
			return rt
		}
		if rt.Bypass {
			if lower == "" {
				lower = strings.ToLower(rp)
			}
			if routeMatch(strings.ToLower(rt.Path), lower) {
				return rt
			}
		}
	}
	return nil
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// routeMatch matches a request path against a route pattern: a prefix,
// or a path.Match glob where a trailing "/**" matches any depth.
func routeMatch(pattern, p string) bool {
	if !isGlob(pattern) {
		return strings.HasPrefix(p, pattern)
	}
	if base, ok := strings.CutSuffix(pattern, "/**"); ok {
		// Match the leading segments against base.
		segs := strings.Count(base, "/")
		cut := p
		for i, n := 0, 0; i < len(p); i++ {
			if p[i] == '/' {
				n++
				if n > segs {
					cut = p[:i]
					break
				}
			}
		}
		ok, _ := path.Match(base, cut)
		return ok && len(p) > len(cut)
	}
	ok, _ := path.Match(pattern, p)
	return ok
}

// checkHost accepts a host name (or address), with an optional port.
func checkHost(hn string) error {
	if hn == "" || strings.ContainsAny(hn, "/?#@ \t") {
		return errors.New("want a host name such as api.example.com")
	}
	return nil
}
