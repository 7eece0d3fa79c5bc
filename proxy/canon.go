package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// The canonical URL. One function spells a request's target for every use
// the proxy has of it: the cache key and its Vary variants, the URL an
// entry records (and URL and prefix purges match), the route a request
// matches, the URL sent to the origin, and the invalidation after an unsafe
// request. Two spellings of one resource share one canonical form, and two
// canonical forms are two requests to the origin: the origin is sent the
// canonical form itself, so a key never stands for a response to a request
// the origin saw differently.
//
// The form is RFC 3986 §6.2.2's, on the still-encoded target: percent-
// encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~") are
// decoded; every other percent-encoding is kept, its hex digits upper-
// cased; every byte that may not appear raw in a path (or query) — "#",
// "{", "}", space, controls, bytes over 0x7f, a "%" that starts no valid
// escape — is percent-encoded. Reserved characters are never decoded:
// "/a%2Fb" and "/a/b", "/a%3Fb" and "/a?b" stay apart. The query's
// parameters are then sorted by name (see normalizeQuery). So the
// canonical URL holds no "#", no newline, no "{" or "}": no client byte can
// become a key's variant separator or a Redis Cluster hash tag.

// maxCachedURL is the longest canonical URL that is looked up or stored;
// longer ones are passed through. A URL purge or invalidation of a longer
// URL needs no ban: nothing can be stored under it. It is tiers' limit on
// a ban's value.
const maxCachedURL = tiers.MaxBanValue

// target is the canonical form of a request's URL.
type target struct {
	path  string // canonical escaped path, starting with "/"
	query string // canonical raw query, parameters sorted, without "?"
}

// len returns the length of url().
func (t target) len() int {
	if t.query == "" {
		return len(t.path)
	}
	return len(t.path) + 1 + len(t.query)
}

// url returns the canonical "/path?query" that entries record.
func (t target) url() string {
	if t.query == "" {
		return t.path
	}
	return t.path + "?" + t.query
}

// requestTarget returns the canonical target of a request received by the
// server.
func requestTarget(u *url.URL) target {
	p := u.Path
	if u.RawPath != "" || !allRaw(p, &rawOK[0]) {
		// Escaped as the client sent it, or as net/url would send it.
		p = canonicalPath(u.EscapedPath())
	} else if p == "" || p[0] != '/' {
		p = canonicalPath(p)
	} else if hasDotSegment(p) {
		p, _ = removeDotSegments(p)
	}
	return target{path: p, query: normalizeQuery(canonicalQuery(u.RawQuery))}
}

// allRaw reports whether every byte of s may stay as it is (see rawOK):
// a decoded path of such bytes is its own canonical form.
func allRaw(s string, ok *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok[s[i]] {
			return false
		}
	}
	return true
}

// CanonicalURL returns the canonical form ("/path?query") of a URL given to
// the admin API: an origin-form target ("/path?query", the form a client
// sends, "//x/y" included: a path, not an authority) or an absolute URL
// ("http://host/path?query", whose scheme and authority are dropped).
// Entries record this form, and URL purges name it.
func CanonicalURL(raw string) (string, error) {
	t, err := parseTarget(raw)
	if err != nil {
		return "", err
	}
	return t.url(), nil
}

// parseTarget reads raw as a request target: origin-form or absolute-form.
func parseTarget(raw string) (target, error) {
	if raw == "" {
		return target{}, errors.New("empty url: want /path?query")
	}
	if strings.ContainsAny(raw, "\x00\r\n") {
		return target{}, fmt.Errorf("bad url %q: control character", raw)
	}
	p, q, _ := strings.Cut(raw, "?")
	if !strings.HasPrefix(p, "/") {
		// Absolute-form: scheme://authority/path.
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
			return target{}, fmt.Errorf("bad url %q: want /path?query or http://host/path?query", raw)
		}
		p, q = u.EscapedPath(), u.RawQuery
		if p == "" {
			p = "/"
		}
		if u.Fragment != "" || strings.Contains(raw, "#") {
			return target{}, fmt.Errorf("bad url %q: a fragment is never sent to a server", raw)
		}
	}
	return target{path: canonicalPath(p), query: normalizeQuery(canonicalQuery(q))}, nil
}

// CanonicalPrefix returns the canonical form of a purge prefix: each byte
// normalised as in CanonicalURL, without sorting a query (a prefix may end
// inside one), so that the canonical URL of every URL the prefix names
// starts with it.
func CanonicalPrefix(raw string) (string, error) {
	if !strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("prefix %q must start with /", raw)
	}
	if strings.ContainsAny(raw, "\x00\r\n") {
		return "", fmt.Errorf("bad prefix %q: control character", raw)
	}
	p, q, hasQ := strings.Cut(raw, "?")
	// A prefix must not end inside an escape: "/caf%C" would be read as
	// a literal "%" and match nothing.
	if i := strings.LastIndexByte(raw, '%'); i >= 0 && len(raw)-i < 3 {
		return "", fmt.Errorf("prefix %q ends inside a percent-encoding", raw)
	}
	out := canonicalPath(p)
	if hasQ {
		out += "?" + canonicalQuery(q)
	}
	return out, nil
}

// Byte classes of RFC 3986 §2.
const (
	classUnreserved = 1 << iota // ALPHA DIGIT - . _ ~
	classPathRaw                // may appear unencoded in a path: pchar and "/"
	classQueryRaw               // may appear unencoded in a query: pchar, "/" and "?"
)

var byteClass = func() (c [256]uint8) {
	for b := 0; b < 256; b++ {
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '.', b == '_', b == '~':
			c[b] = classUnreserved | classPathRaw | classQueryRaw
		case strings.IndexByte("!$&'()*+,;=:@/", byte(b)) >= 0: // sub-delims, ":", "@", "/"
			c[b] = classPathRaw | classQueryRaw
		case b == '?':
			c[b] = classQueryRaw
		}
	}
	return c
}()

// canonicalPath returns the canonical form of an escaped path. A path
// already canonical is returned as it is, without allocating.
//
// Its dot segments ("." and "..", raw or percent-encoded) are removed
// (RFC 3986 §5.2.4), as nginx does, so that the key, the route and the
// origin read one path: "/a/../b" is "/b" everywhere, and no request
// target reaches above the origin's base path (a ".." above the root is
// dropped here; ServeHTTP refuses such a request first, see
// climbsAboveRoot).
func canonicalPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p // asterisk-form, or an absolute-form URL without path
	}
	p = canonicalBytes(p, classPathRaw)
	if hasDotSegment(p) {
		p, _ = removeDotSegments(p)
	}
	return p
}

// hasDotSegment reports whether the path p (with its unreserved escapes
// decoded) has a "." or ".." segment.
func hasDotSegment(p string) bool {
	for i := 0; i+1 < len(p); i++ {
		if p[i] != '/' || p[i+1] != '.' {
			continue
		}
		rest := p[i+2:]
		if rest == "" || rest[0] == '/' || rest[0] == '.' && (len(rest) == 1 || rest[1] == '/') {
			return true
		}
	}
	return false
}

// removeDotSegments removes the "." and ".." segments of the absolute
// path p (RFC 3986 §5.2.4). climbed reports whether a ".." would have
// gone above the root (such a ".." is dropped).
func removeDotSegments(p string) (out string, climbed bool) {
	segs := strings.Split(p[1:], "/")
	kept := segs[:0]
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				kept = append(kept, "")
			}
			continue
		case "..":
			if len(kept) == 0 {
				climbed = true
			} else {
				kept = kept[:len(kept)-1]
			}
			if last {
				kept = append(kept, "")
			}
			continue
		}
		kept = append(kept, s)
	}
	return "/" + strings.Join(kept, "/"), climbed
}

// climbsAboveRoot reports whether some reading of the escaped path p goes
// above the root: as sent, or with its escapes decoded ("%2F" a "/",
// "%2E" a ".") and backslashes read as "/", as many origins and the
// servers in front of them do. Joined under an origin's base path, such
// a path would name something outside it.
func climbsAboveRoot(p string) bool {
	if !strings.Contains(p, "..") && !strings.Contains(p, "%") {
		return false
	}
	if strings.Contains(p, "%") {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	p = strings.ReplaceAll(p, "\\", "/")
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	depth := 0
	for s := range strings.SplitSeq(p[1:], "/") {
		switch s {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// canonicalQuery returns the canonical form of a raw query, each byte
// normalised; its parameters are not reordered.
func canonicalQuery(q string) string { return canonicalBytes(q, classQueryRaw) }

// rawOK[class] says which bytes may stay as they are in a component of
// that class: byteClass without '%', as one lookup per byte.
var rawOK = func() (t [2][256]bool) {
	for b := range 256 {
		t[0][b] = b != '%' && byteClass[b]&classPathRaw != 0
		t[1][b] = b != '%' && byteClass[b]&classQueryRaw != 0
	}
	return t
}()

func canonicalBytes(s string, raw uint8) string {
	ok := &rawOK[0]
	if raw == classQueryRaw {
		ok = &rawOK[1]
	}
	i := 0
	for i < len(s) && ok[s[i]] {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if byteClass[v]&classUnreserved != 0 {
				b.WriteByte(v)
			} else {
				writeEscaped(&b, v)
			}
			i += 2
		case c == '%' || byteClass[c]&raw == 0:
			writeEscaped(&b, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func writeEscaped(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&15])
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// routePath returns the path a route is matched against: the canonical
// path fully decoded ("%2F" is a "/" here), its dot segments removed
// (RFC 3986 §5.2.4) and runs of "/" merged, so that no spelling of a path
// ("//admin/x", "/x/../admin/x", "/./admin/x", "/admin%2Fx") escapes the
// route of its plain form. Origins differ in how they read these
// spellings; a route applies to every one an origin might read as its
// path. A path already plain is returned without allocating.
func routePath(canonical string) string {
	if !strings.Contains(canonical, "%") && !strings.Contains(canonical, "//") && !strings.Contains(canonical, "/.") {
		return canonical
	}
	p := canonical
	if strings.Contains(p, "%") {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	// Backslashes are separators to some servers (IIS, some routers).
	p = strings.ReplaceAll(p, "\\", "/")
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		switch s {
		case "", ".":
			continue
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			continue
		}
		segs = append(segs, s)
	}
	out := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
		out += "/"
	}
	return out
}

// canonicalHost returns the lower-cased host name of a Host header,
// without port or trailing dot.
func canonicalHost(hostport string) string {
	host := hostport
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// urlSpace is whose URLs a Location or Content-Location names.
type urlSpace int

const (
	// foreignSpace: another site's; never invalidated.
	foreignSpace urlSpace = iota
	// clientSpace: this proxy's, as its clients name them.
	clientSpace
	// originSpace: the origin's, under its base path.
	originSpace
)

// urlSpaceOf says whose URL u, a Location or Content-Location resolved
// against the client's URL r, is (RFC 9111 §4.4: only same-site targets
// are invalidated). Authorities, host and port (the scheme's default if
// none), decide: the origin's authority is the origin's URL space, even
// when the proxy shares its host name on another port; a relative
// reference, the public host, a served host or the client's Host (its
// port, if it names one, compared too) is the proxy's own. Origins build
// absolute links from the Host they receive, which is theirs by default
// (see rewrite).
func (h *Handler) urlSpaceOf(u *url.URL, r *http.Request) urlSpace {
	if u.Host == "" {
		return clientSpace
	}
	if authority(u.Scheme, u.Host) == authority(h.origin.u.Scheme, h.origin.u.Host) {
		return originSpace
	}
	host := canonicalHost(u.Host)
	switch {
	case host == canonicalHost(r.Host) && (!hasPort(r.Host) || authority(u.Scheme, u.Host) == authority(requestScheme(r), r.Host)):
		return clientSpace
	case h.o.PublicHost != "" && host == canonicalHost(h.o.PublicHost), h.hosts[host]:
		return clientSpace
	}
	return foreignSpace
}

// authority returns the canonical host of hostport and its port, the
// scheme's default (80 for http, 443 for https) if it names none.
func authority(scheme, hostport string) string {
	port := ""
	if hasPort(hostport) {
		port = hostport[strings.LastIndexByte(hostport, ':')+1:]
	}
	if port == "" {
		port = "80"
		if strings.EqualFold(scheme, "https") {
			port = "443"
		}
	}
	return canonicalHost(hostport) + ":" + port
}

// hasPort reports whether hostport ends with a port: "h:80", "[::1]:80",
// not "::1" or "[::1]".
func hasPort(hostport string) bool {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return false
	}
	if strings.HasPrefix(hostport, "[") {
		return i > strings.IndexByte(hostport, ']')
	}
	return strings.Count(hostport, ":") == 1
}

// requestScheme is the scheme a client used to reach the proxy.
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// normalizeQuery sorts the parameters of a raw query by name, keeping the
// order of repeated names (whose order can matter to an origin), and drops
// empty parameters. Encoding is left as sent. A query already in order
// is returned as it is, without allocating.
func normalizeQuery(raw string) string {
	if raw == "" || strings.IndexByte(raw, '&') < 0 {
		return raw
	}
	var buf [16]string
	params := buf[:0]
	sorted, prev := true, ""
	for p := range strings.SplitSeq(raw, "&") {
		if p == "" {
			sorted = false // drop it
			continue
		}
		if name := paramName(p); name < prev {
			sorted = false
		} else {
			prev = name
		}
		params = append(params, p)
	}
	if sorted {
		return raw
	}
	// Insertion sort: stable, and queries are short.
	for i := 1; i < len(params); i++ {
		for j := i; j > 0 && paramName(params[j]) < paramName(params[j-1]); j-- {
			params[j], params[j-1] = params[j-1], params[j]
		}
	}
	return strings.Join(params, "&")
}

func paramName(p string) string {
	if i := strings.IndexByte(p, '='); i >= 0 {
		return p[:i]
	}
	return p
}
