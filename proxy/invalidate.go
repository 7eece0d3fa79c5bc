package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// The invalidation after an unsafe request (RFC 9111 §4.4): a successful
// response to a method not known to be safe invalidates the request's URL
// and its same-site Location and Content-Location. What one invalidation
// takes is decided in one place, invalidationFor:
//
//   - nothing, when no tier holds anything for the URL and no fill of it
//     is running: there is nothing it could invalidate, and no ban is
//     recorded, so a client cannot grow the ban log with URLs that are
//     not cached;
//   - a ban (Handler.Purge, fleet-wide), when something may be stored or
//     a fill is running, as long as the client's budget of ban bytes
//     (banbudget.go) allows it;
//   - past the budget, the URL's keys deleted from L2 and from this
//     instance's L1 (dropURL): it costs that URL only, never the ban log.

// safeMethods are the methods known to be safe (RFC 9110 §9.2.1 and the
// IANA HTTP Method Registry's "Safe: yes"). A successful response to any
// other method invalidates (RFC 9111 §4.4: "unsafe request methods
// (including methods whose safety is unknown)"; the conformance suite's
// invalidate-M-SEARCH checks it). An extension method such as PURGE or
// FOOBAR therefore invalidates a URL that is cached, as POST does; what
// keeps any of them from emptying the cache is invalidationFor: no ban
// for a URL nothing holds, and a budget of ban bytes per client. Method
// names are case-sensitive (RFC 9110 §9.1): "get" is an extension method.
var safeMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true,
	// WebDAV (RFC 4918), DeltaV (RFC 3253), WebDAV SEARCH (RFC 5323),
	// and QUERY (the HTTP QUERY method draft, safe by definition).
	"PROPFIND": true, "REPORT": true, "SEARCH": true, "QUERY": true,
}

// isUnsafe reports whether a successful response to method invalidates
// stored responses (RFC 9111 §4.4): any method not known to be safe.
func isUnsafe(method string) bool { return !safeMethods[method] }

// invalidateAfterUnsafe invalidates the stored responses for the target
// URI of an unsafe request and for its Location and Content-Location when
// they are in this proxy's URL space (RFC 9111 §4.4), as invalidationFor
// decides. The URLs are the client's: the request's canonical target, and
// the Location resolved against it (one on the origin's own authority is
// read in the origin's URL space, its base path removed).
func (h *Handler) invalidateAfterUnsafe(resp *http.Response) {
	in, _ := resp.Request.Context().Value(clientRequest{}).(*http.Request)
	if in == nil {
		return
	}
	targets := []string{requestTarget(in.URL).url()}
	for _, name := range []string{"Location", "Content-Location"} {
		v := resp.Header.Get(name)
		if v == "" {
			continue
		}
		if t, ok := h.clientURL(in, v); ok {
			targets = append(targets, t)
		}
	}
	client := clientOf(in.RemoteAddr)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(in.Context()), 5*time.Second)
	defer cancel()
	for _, target := range targets {
		if len(target) > maxCachedURL {
			continue // never stored: nothing to purge
		}
		need := h.invalidationFor(ctx, client, target)
		h.m.invalidations[need].Add(1)
		switch need {
		case invalidateBan:
			res, err := h.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: target})
			switch {
			case err == nil && len(res.Missing) > 0:
				err = fmt.Errorf("not confirmed by %s", strings.Join(res.Missing, ", "))
			case err == nil && !res.Complete():
				err = fmt.Errorf("redis lost its record of the instances (restarted empty or flushed) recently: one cut off from it since may serve the URL until %s",
					res.UnknownUntil.UTC().Format(time.RFC3339))
			}
			if err != nil {
				h.o.Logger.Warn("invalidation after unsafe request not confirmed", "url", target, "err", err)
			}
		case invalidateDrop:
			complete := h.dropURL(ctx, target)
			if h.overBudgetLog.allow(h.o.Now()) {
				h.o.Logger.Warn("client over its budget of ban bytes: invalidation deleted the URL's keys instead of recording a ban",
					"client", client, "url", target, "complete", complete)
			}
		}
	}
}

// invalidationFor decides what invalidating the canonical URL u after an
// unsafe request of client takes (see the top of this file).
//
// "Nothing stored" must also cover a fill that asked the origin before
// the unsafe request changed what it answers, and stores that old answer
// after this check: so a URL needs a ban while a fill of it is running
// here (fillsRunning) or, in a fleet, on any instance (its fill lease,
// which the holder keeps from before its origin request until after it
// stored the response; fills that take no lease are those of a URL
// already stored, which the check sees, or those of an instance alone in
// its fleet, which is this one). A fill that starts after the check asks
// the origin after the unsafe request was answered, and so gets the new
// answer.
func (h *Handler) invalidationFor(ctx context.Context, client, u string) invalidation {
	if !h.mayHold(ctx, u) {
		return invalidateNone
	}
	if !h.budgets.take(client, tiers.BanCost(u), h.o.Now()) {
		return invalidateDrop
	}
	return invalidateBan
}

// mayHold reports whether any tier may hold an entry of the canonical URL
// u, or a fill of it may be running: a fill here, anything under one of
// its base keys in L1, anything or a fill lease under it in L2. A tier
// that fails or cannot tell counts as holding it.
func (h *Handler) mayHold(ctx context.Context, u string) bool {
	for _, key := range h.baseKeys(u) {
		if h.filling.has(key) || h.chain.mayHold(ctx, key) {
			return true
		}
		if h.chain.shared == nil && h.o.Fleet != nil {
			return true // the other instances are out of sight
		}
	}
	return false
}

// baseKeys returns the base keys of the canonical URL u: one, or with
// Hosts one per served host.
func (h *Handler) baseKeys(u string) []string {
	if h.hosts == nil {
		return []string{h.Key(u)}
	}
	p, q, _ := strings.Cut(u, "?")
	keys := make([]string, 0, len(h.hosts))
	for host := range h.hosts {
		keys = append(keys, baseKey(h.o.KeyPrefix, host, target{path: p, query: q}))
	}
	return keys
}

// dropURL deletes the entries of the canonical URL u from L2 and from this
// instance's L1: its base keys and the variants their Vary markers list.
// It reports false if some variant is not listed (it is left; so are the
// other instances' L1 copies, which live at most the L1 TTL).
func (h *Handler) dropURL(ctx context.Context, u string) bool {
	complete := true
	for _, key := range h.baseKeys(u) {
		complete = h.chain.drop(ctx, key) && complete
	}
	return complete
}

// fillsRunning counts the fills running in this process per base key.
// The zero value is ready to use; safe for concurrent use.
type fillsRunning struct {
	mu sync.Mutex
	n  map[string]int
}

// begin counts a fill of key as running until end is called.
func (f *fillsRunning) begin(key string) (end func()) {
	f.mu.Lock()
	if f.n == nil {
		f.n = make(map[string]int)
	}
	f.n[key]++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		if f.n[key]--; f.n[key] == 0 {
			delete(f.n, key)
		}
		f.mu.Unlock()
	}
}

// has reports whether a fill of key is running.
func (f *fillsRunning) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[key] > 0
}

// everyMinute lets something happen at most once a minute. The zero value
// is ready to use; safe for concurrent use.
type everyMinute struct{ last atomic.Int64 }

// allow reports whether it may happen now, and if so notes it.
func (e *everyMinute) allow(now time.Time) bool {
	last := e.last.Load()
	return now.UnixNano()-last >= int64(time.Minute) && e.last.CompareAndSwap(last, now.UnixNano())
}

// clientURL returns the canonical client-facing URL that a Location or
// Content-Location value of a response to in names, if it is in this
// proxy's URL space (see urlSpaceOf): its own, or the origin's under the
// base path.
func (h *Handler) clientURL(in *http.Request, v string) (string, bool) {
	ref, err := url.Parse(v)
	if err != nil || (ref.Scheme != "" && ref.Scheme != "http" && ref.Scheme != "https") {
		return "", false
	}
	base := &url.URL{Path: in.URL.Path, RawPath: in.URL.RawPath}
	u := base.ResolveReference(ref)
	p := u.EscapedPath()
	switch h.urlSpaceOf(u, in) {
	case foreignSpace:
		return "", false
	case originSpace:
		// Its URL space is under the base path.
		basePath := strings.TrimSuffix(h.origin.u.EscapedPath(), "/")
		rest, ok := strings.CutPrefix(p, basePath)
		if !ok || (rest != "" && rest[0] != '/') {
			return "", false
		}
		if rest == "" {
			rest = "/"
		}
		p = rest
	}
	return target{path: canonicalPath(p), query: normalizeQuery(canonicalQuery(u.RawQuery))}.url(), true
}
