package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// What reaches the origin. The request sent to the origin is built from
// the client's by one function, rewrite, for fills and pass-through alike:
// the canonical target (see canon.go) under the origin's base path, the
// origin's own host, and forwarding headers the proxy sets from what it
// knows rather than from what the client says. A stored response depends
// on the request the origin saw; every part of that request that a client
// chooses is either in the cache key (the target, and the headers a Vary
// names) or removed.

// DefaultStripHeaders are the request headers removed from every request
// that may be stored, before it reaches the origin: headers frameworks
// read to rebuild the request's URL, host, scheme or method, which are not
// part of the cache key, so that a client could make the origin answer
// for another URL or host under this URL's key. See Options.StripHeaders.
var DefaultStripHeaders = []string{
	"Forwarded",
	"X-Forwarded-Scheme",
	"X-Forwarded-Port",
	"X-Forwarded-Prefix",
	"X-Forwarded-Server",
	"X-Forwarded-Ssl",
	"X-Forwarded-Uri",
	"X-Forwarded-Path",
	"X-Host",
	"X-Original-Host",
	"X-Original-Url",
	"X-Rewrite-Url",
	"X-Override-Url",
	"X-Http-Method-Override",
	"X-Http-Method",
	"X-Method-Override",
	"X-Url-Scheme",
	"Front-End-Https",
	"X-Scheme",             // nginx examples, Tornado
	"X-Script-Name",        // WSGI mounts (Flask/Werkzeug, Django setups)
	"X-Forwarded-Protocol", // Rack, older proxies
	"X-Real-IP",            // nginx's real_ip, Rack, many frameworks' client IP
	"Client-IP",            // Rack, Symfony
	"True-Client-IP",       // Akamai, Cloudflare
	"X-Original-URI",       // nginx auth_request, IIS
}

// clientRequest is the context key under which the outbound request of a
// pass-through carries the client's request.
type clientRequest struct{}

// rewrite builds the request sent to the origin for pr.In: the canonical
// target under the origin's base path, the origin's host (or, with Hosts,
// the served host), X-Forwarded-For appended to, X-Forwarded-Proto and
// X-Forwarded-Host set by the proxy.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	t := requestTarget(in.URL)
	u := *h.origin.u
	raw := joinPath(h.origin.u.EscapedPath(), t.path)
	if p, err := url.PathUnescape(raw); err == nil {
		u.Path, u.RawPath = p, raw
	} else {
		u.Path, u.RawPath = raw, ""
	}
	u.RawQuery = t.query
	out.URL = &u
	out.Host = h.outHost(in)
	for _, name := range forwardedNames {
		if v := h.forwarded(in, name); v != nil {
			out.Header[name] = v
		} else {
			delete(out.Header, name)
		}
	}
	pr.Out = out.WithContext(context.WithValue(out.Context(), clientRequest{}, in))
}

// joinPath puts an escaped request path under the origin's escaped base
// path, with one "/" between them.
func joinPath(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	if strings.HasSuffix(base, "/") {
		return base + p[1:]
	}
	return base + p
}

// forwardedNames are the headers the proxy sets itself on every request.
var forwardedNames = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}

// forwarded returns the value the proxy sends as the forwarding header
// name for r, or nil to send none. The client's own X-Forwarded-Host and
// X-Forwarded-Proto are never passed on.
func (h *Handler) forwarded(r *http.Request, name string) []string {
	switch name {
	case "X-Forwarded-For":
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.Header["X-Forwarded-For"]
		}
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		return []string{ip}
	case "X-Forwarded-Proto":
		if r.TLS != nil {
			return []string{"https"}
		}
		return []string{"http"}
	case "X-Forwarded-Host":
		if h.hosts != nil {
			return []string{canonicalHost(r.Host)}
		}
		if h.o.PublicHost != "" {
			return []string{h.o.PublicHost}
		}
	}
	return nil
}

// outHost is the Host sent to the origin for r: the served host with
// Hosts, else "" (the origin's own host).
func (h *Handler) outHost(r *http.Request) string {
	if h.hosts != nil {
		return canonicalHost(r.Host)
	}
	return ""
}

// keyHost is the host part of r's cache key: the served host with Hosts,
// else "" (every client shares one entry, whatever Host it used: the
// origin never sees it).
func (h *Handler) keyHost(r *http.Request) string {
	if h.hosts != nil {
		return canonicalHost(r.Host)
	}
	return ""
}

// served reports whether r's Host is one this proxy serves.
func (h *Handler) served(r *http.Request) bool {
	return h.hosts == nil || h.hosts[canonicalHost(r.Host)]
}

// misdirected answers a request for a host this proxy does not serve
// (RFC 9110 §15.5.20), without asking the origin.
func (h *Handler) misdirected(w http.ResponseWriter, r *http.Request) {
	h.count(r, requestTarget(r.URL).path, nil, wrongHost, reasonNone)
	hdr := w.Header()
	hdr["X-Cache"] = wrongHost.xcache
	hdr["Cache-Status"] = wrongHost.status
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusMisdirectedRequest)
	w.Write([]byte("this proxy does not serve that host\n"))
}

// aboveRoot answers a request whose path climbs above the root in some
// reading (climbsAboveRoot) with 400: joined under the origin's base
// path, it would name something outside it. The origin is not asked.
func (h *Handler) aboveRoot(w http.ResponseWriter, r *http.Request) {
	h.count(r, requestTarget(r.URL).path, nil, badPath, reasonNone)
	w.Header()["Cache-Status"] = badPath.status
	writePlainError(w, badPath.xcache, http.StatusBadRequest, "the path climbs above the root\n")
}

// stripStorable removes from hdr, the headers of a request that may be
// stored, those that could change the response without being in its key
// (see stripped).
func (h *Handler) stripStorable(hdr http.Header) {
	s := h.live.Load()
	for name := range hdr {
		if s.stripped(name) {
			delete(hdr, name)
		}
	}
}

// stripped reports whether the request header name is one of
// Options.StripHeaders in any spelling an origin may read as it: any case
// (net/http gives names in canonical form, which the set holds), and with
// '_' for '-', which CGI and WSGI origins (Django, Flask) read alike:
// X_Real_IP and X-Real-IP are both HTTP_X_REAL_IP to them.
func (s *settings) stripped(name string) bool {
	if s.stripSet[name] {
		return true
	}
	if strings.IndexByte(name, '_') < 0 {
		return s.stripSet[http.CanonicalHeaderKey(name)]
	}
	return s.stripSet[http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))]
}

// outValues returns the values of the header name in the request the
// origin is sent for r when it is filled: what a response's Vary is
// about. Looking up and storing a variant both use it, so that a header
// the proxy sets or removes selects the same variant on both sides.
func (h *Handler) outValues(r *http.Request, name string) ([]string, bool) {
	switch name {
	case "Host":
		if host := h.outHost(r); host != "" {
			return []string{host}, true
		}
		return []string{h.origin.u.Host}, true
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host":
		v := h.forwarded(r, name)
		return v, v != nil
	case "Accept-Encoding":
		if h.live.Load().stripped(name) {
			return nil, false
		}
		// One bucket per coding, not one per spelling (coding.go).
		return bucketValues[acceptedCodings(r).bucket], true
	}
	if h.live.Load().stripped(name) || fillDropped[name] || isHopHeader(r.Header, name) {
		return nil, false
	}
	v, ok := r.Header[name]
	return v, ok
}

// bucketValues are the Accept-Encoding values a fill sends the origin,
// indexed by the request's bucket: the one coding the bucket is for.
var bucketValues = func() [][]string {
	v := make([][]string, otherCoding)
	for c := range v {
		v[c] = []string{codingTokens[c]}
	}
	return v
}()

// fillDropped are the request headers a fill never forwards: it fetches
// the whole representation and evaluates these itself.
var fillDropped = map[string]bool{
	"Range": true, "If-Range": true, "If-None-Match": true, "If-Modified-Since": true,
	"If-Match": true, "If-Unmodified-Since": true,
}

// isHopHeader reports whether name is hop-by-hop in a message with
// header hdr: listed in hopHeaders or named by its Connection fields.
func isHopHeader(hdr http.Header, name string) bool {
	for _, n := range hopHeaders {
		if n == name {
			return true
		}
	}
	for _, f := range hdr["Connection"] {
		for _, n := range strings.Split(f, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(n)) == name {
				return true
			}
		}
	}
	return false
}
