package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
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
			h.countPass(resp.Request, bypassed)
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
				h.countPass(r, bypassed)
				h.writeClientError(w, r, status, berr)
				return
			}
			if r.Context().Err() == nil { // else the client left: not an answer
				h.countPass(r, errorOutcome(err))
			}
			h.writeError(w, r, err, fwdBypass)
		},
	}
}

// passThrough forwards r to the origin without looking it up or storing
// the response, for the reason detail (Cache-Status). Its body is read
// under the body timeout, and first buffered if Options.RequestBuffering
// says so. It is counted once the origin answered (as BYPASS), or failed
// to (as ERROR), before the client gets anything.
func (h *Handler) passThrough(w http.ResponseWriter, r *http.Request, detail Reason) {
	t := requestTarget(r.URL)
	hdr := w.Header()
	hdr["X-Cache"] = bypassed.xcache
	hdr["Cache-Status"] = bypassed.forwarded(forward{detail: detail})
	traceOf(r).answered(bypassed, detail) // until counted: a client gone is not
	st := &passState{path: t.path, detail: detail}
	r = r.WithContext(context.WithValue(r.Context(), passKey{}, st))
	req, held, err := h.bufferRequest(h.withBodyTimeout(w, r))
	defer h.inflight.give(held)
	if err != nil {
		status, berr := clientBodyStatus(req)
		if status == 0 {
			status, berr = http.StatusBadRequest, err
		}
		h.countPass(r, bypassed)
		h.writeClientError(w, r, status, berr)
		return
	}
	h.m.originRequests.Add(1)
	start := h.o.Now()
	h.pass.ServeHTTP(w, req)
	took := h.o.Now().Sub(start)
	h.m.originLatency.Observe(took.Seconds())
	if tr := traceOf(r); tr != nil {
		tr.addOrigin(took)
	}
	h.countPass(r, bypassed) // if neither the response nor the error was
}

// passState is a pass-through request's, carried in its context: what
// to count it under, and whether it has been.
type passState struct {
	path    string
	detail  Reason
	counted bool
}

type passKey struct{}

// countPass counts the pass-through request r once, as o (the ERROR
// outcome with its own detail).
func (h *Handler) countPass(r *http.Request, o *outcome) {
	st, ok := r.Context().Value(passKey{}).(*passState)
	if !ok || st.counted {
		return
	}
	st.counted = true
	h.count(r, st.path, h.live.Load().route(st.path).rt, o, st.detail)
}

// errorOutcome is the outcome of an answer to an origin failure: ERROR,
// with the detail origin-busy when no origin request slot was free.
func errorOutcome(err error) *outcome {
	if errors.Is(err, errOriginBusy) {
		return originBusy
	}
	return originError
}

// errorStatus maps an origin failure to a status: no origin request slot
// free (Options.MaxOriginConns) is 503, a timeout 504, anything else 502.
func errorStatus(err error) int {
	var ne net.Error
	if errors.Is(err, errOriginBusy) {
		return http.StatusServiceUnavailable
	}
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// writeError answers r after an origin failure with the proxy's own 502
// or 504 (the ERROR outcome; fwd is the request's Cache-Status forward
// reason). A client that has gone gets nothing and is not logged: it is
// not the origin's fault.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error, fwd fwdReason) {
	if r.Context().Err() != nil {
		return
	}
	status := errorStatus(err)
	h.o.Logger.Warn("origin request failed", "method", r.Method, "url", r.URL.String(), "status", status, "err", err)
	msg := "origin unreachable\n"
	switch status {
	case http.StatusGatewayTimeout:
		msg = "origin timed out\n"
	case http.StatusServiceUnavailable:
		msg = "origin busy\n"
		w.Header().Set("Retry-After", "1")
	}
	o := errorOutcome(err)
	w.Header()["Cache-Status"] = o.forwarded(forward{fwd: fwd})
	writePlainError(w, o.xcache, status, msg)
}
