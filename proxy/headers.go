package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// hopHeaders are the hop-by-hop headers (RFC 9110 §7.6.1), removed from
// requests and responses that cross the proxy, and never stored.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// fields reads a response's header fields: an http.Header for a response
// from the origin, a tiers.Header for a stored one.
type fields interface {
	Get(name string) string
	Values(name string) []string
}

// removeHopHeaders deletes hop-by-hop headers from h, including those
// named by its Connection fields.
func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// storedHeader returns the headers of an origin response as they are
// stored: without hop-by-hop headers, tag headers (the entry keeps its
// tags), Set-Cookie, Age, and Content-Length: a stored response's length
// is its body's (tiers.Entry.BodyLen), which writeEntry sends, so that
// no stored field can disagree with the body it describes (the proxy may
// have compressed it), and no entry pays a slot and its digits for it.
func (h *Handler) storedHeader(hdr http.Header) http.Header {
	out := hdr.Clone()
	if out == nil {
		out = make(http.Header)
	}
	removeHopHeaders(out)
	h.removeTagHeaders(out)
	out.Del("Set-Cookie")
	out.Del("Age")
	out.Del("X-Cache")
	out.Del("Cache-Status")
	out.Del("Content-Length")
	return out
}

// DefaultTagHeaders are the response headers that name an entry's tags
// (surrogate keys) for purges by tag. See Options.TagHeaders.
var DefaultTagHeaders = []string{"Cache-Tag", "Surrogate-Key"}

// removeTagHeaders removes the tag headers from a response on its way to
// a client: they are for the cache alone.
func (h *Handler) removeTagHeaders(hdr http.Header) {
	for _, name := range h.live.Load().tagHeaders {
		delete(hdr, name)
	}
}

// ageValues caches the Age header values for the first ages in seconds,
// so that a hit on a young entry allocates nothing for its Age.
var ageValues = func() [][]string {
	v := make([][]string, 3600)
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

// ageHeader returns the Age header value for age (RFC 9111 §5.1).
func ageHeader(age time.Duration) []string {
	s := int64(age / time.Second)
	if s < 0 {
		s = 0
	}
	if s < int64(len(ageValues)) {
		return ageValues[s]
	}
	return []string{strconv.FormatInt(s, 10)}
}

// parseTags returns the surrogate keys of a response: the comma- or
// space-separated values of its tag headers (Cache-Tag, Surrogate-Key).
func (h *Handler) parseTags(hdr http.Header) []string {
	var tags []string
	for _, name := range h.live.Load().tagHeaders {
		for _, v := range hdr[name] {
			tags = append(tags, strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })...)
		}
	}
	return tags
}

func hasValidator(h fields) bool {
	return h.Get("Etag") != "" || h.Get("Last-Modified") != ""
}

// writePlainError writes the proxy's own error answer: status, a one-line
// text body, never stored, with X-Cache xcache.
func writePlainError(w http.ResponseWriter, xcache []string, status int, msg string) {
	hdr := w.Header()
	hdr["X-Cache"] = xcache
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}
