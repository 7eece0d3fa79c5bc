package proxy

// Writing an answer to the client: a stored entry, with its Age, X-Cache
// and Cache-Status, as a 304, a range or the whole response.

import (
	"bytes"
	"net/http"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy/conn"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// writeEntry writes e as the response, counted as o (see count), with the
// Cache-Status cs, its Age as of x.now. Header values are shared with e,
// never copied or modified.
func (x *exchange) writeEntry(e *tiers.Entry, o *outcome, cs []string) {
	x.h.countEntry(e, x, o)
	w, r := x.w, x.r
	hdr := w.Header()
	e.Header.CopyTo(hdr)
	hdr["Age"] = ageHeader(e.Age(x.now))
	hdr["X-Cache"] = o.xcache
	hdr["Cache-Status"] = cs
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
		conn.Arm(r, len(e.Body))
		w.Write(e.Body)
	}
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}
