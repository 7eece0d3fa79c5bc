package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// urlBase is the origin's scheme, host and path prefix.
type urlBase struct {
	u *url.URL
}

func newURLBase(u *url.URL) *urlBase {
	c := *u
	c.RawQuery, c.Fragment = "", ""
	return &urlBase{u: &c}
}

// defaultTransport is http.DefaultTransport tuned for one origin: many idle
// connections kept, since every request goes to the same host.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 0
	return t
}

// originRequest builds the request a fill sends to the origin for r. A
// fill asks for the whole representation with GET (a HEAD is answered
// from it), without r's validators or ranges, which are evaluated here.
func (h *Handler) originRequest(ctx context.Context, r *http.Request) *http.Request {
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Method = http.MethodGet
	out.Body = nil
	out.ContentLength = 0
	removeHopHeaders(out.Header)
	for name := range fillDropped {
		delete(out.Header, name)
	}
	h.stripStorable(out.Header)
	// The bucket of the client's Accept-Encoding, as the variant key has
	// it (outValues): whatever the origin sends for it suits every
	// client of the bucket.
	if ae, ok := h.outValues(r, "Accept-Encoding"); ok {
		out.Header["Accept-Encoding"] = ae
	}
	pr := &httputil.ProxyRequest{In: r, Out: out}
	h.rewrite(pr)
	out = pr.Out
	if _, ok := out.Header["User-Agent"]; !ok {
		// Like ReverseProxy: don't let the client library add its own.
		out.Header.Set("User-Agent", "")
	}
	return out
}

// newPassthrough returns the reverse proxy for requests that are not
// looked up: other methods, bypassed routes, no-store requests. Bodies
// stream both ways.
func (h *Handler) newPassthrough() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: h.o.Transport,
		ErrorLog:  slog.NewLogLogger(h.o.Logger.Handler(), slog.LevelWarn),
		ModifyResponse: func(resp *http.Response) error {
			h.m.originOK()
			// Ours are set on the client's response by passThrough.
			delete(resp.Header, "X-Cache")
			delete(resp.Header, "Cache-Status")
			h.removeTagHeaders(resp.Header)
			if isUnsafe(resp.Request.Method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
				h.invalidateAfterUnsafe(resp)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if status, berr := clientBodyStatus(r); status != 0 {
				h.writeClientError(w, r, status, berr)
				return
			}
			h.writeError(w, r, err, bypassed)
		},
	}
}

// passThrough forwards r to the origin without looking it up or storing
// the response, for the reason detail (Cache-Status). Its body is read
// under the body timeout.
func (h *Handler) passThrough(w http.ResponseWriter, r *http.Request, detail string) {
	t := requestTarget(r.URL)
	h.count(t.path, h.route(t.path).rt, bypassed, detail)
	hdr := w.Header()
	hdr["X-Cache"] = bypassed.xcache
	hdr["Cache-Status"] = bypassed.forwarded(forward{detail: detail})
	h.m.originRequests.Add(1)
	start := h.o.Now()
	h.pass.ServeHTTP(w, h.withBodyTimeout(w, r))
	took := h.o.Now().Sub(start)
	h.m.originLatency.Observe(took.Seconds())
	if tr := traceOf(r); tr != nil {
		tr.addOrigin(took)
	}
}

// isUnsafe reports whether a method is not safe (RFC 9110 §9.2.1), so a
// successful response to it invalidates stored responses (RFC 9111 §4.4).
func isUnsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, "PROPFIND", "SEARCH", "REPORT":
		return false
	}
	return true
}

// invalidateAfterUnsafe purges the stored responses for the target URI of
// an unsafe request and for its Location and Content-Location when they
// are on the same host (RFC 9111 §4.4), fleet-wide when in a fleet. The
// URLs are the client's: the request's canonical target, and the
// Location resolved against it (one on the origin's own host is read in
// the origin's URL space, its base path removed).
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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(in.Context()), 5*time.Second)
	defer cancel()
	for _, target := range targets {
		if len(target) > maxCachedURL {
			continue // never stored: nothing to purge
		}
		res, err := h.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: target})
		if err == nil && len(res.Missing) > 0 {
			err = fmt.Errorf("not confirmed by %s", strings.Join(res.Missing, ", "))
		}
		if err != nil {
			h.o.Logger.Warn("invalidation after unsafe request not confirmed", "url", target, "err", err)
		}
	}
}

// clientURL returns the canonical client-facing URL that a Location or
// Content-Location value of a response to in names, if it is on this
// proxy's host.
func (h *Handler) clientURL(in *http.Request, v string) (string, bool) {
	ref, err := url.Parse(v)
	if err != nil || (ref.Scheme != "" && ref.Scheme != "http" && ref.Scheme != "https") {
		return "", false
	}
	base := &url.URL{Path: in.URL.Path, RawPath: in.URL.RawPath}
	u := base.ResolveReference(ref)
	if !h.sameOrigin(u, in) {
		return "", false
	}
	p := u.EscapedPath()
	if u.Host != "" && canonicalHost(u.Host) == canonicalHost(h.origin.u.Host) {
		// On the origin's own host: its URL space is under the base path.
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

// errorStatus maps an origin failure to a status: a timeout is 504,
// anything else 502.
func errorStatus(err error) int {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// writeError answers r after an origin failure. A client that has gone
// gets nothing and is not logged: it is not the origin's fault.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error, o *outcome) {
	if r.Context().Err() != nil {
		return
	}
	status := errorStatus(err)
	h.o.Logger.Warn("origin request failed", "method", r.Method, "url", r.URL.String(), "status", status, "err", err)
	msg := "origin unreachable\n"
	if status == http.StatusGatewayTimeout {
		msg = "origin timed out\n"
	}
	writePlainError(w, o.xcache, status, msg)
}
