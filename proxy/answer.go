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
		// A range of a stored whole response (RFC 9110 §14): 206 or 416
		// as rangeRequest decides, written by http.ServeContent, or the
		// whole 200.
		delete(hdr, "Content-Length")
		http.ServeContent(w, rangeDecided(r, e.Header, int64(len(e.Body))), "", time.Time{}, bytes.NewReader(e.Body))
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

// rangeDecided returns r as http.ServeContent should see it once
// rangeRequest has decided its Range against a stored body of size
// bytes: without If-Range (decided), and without Range too when the
// answer is the whole 200. r itself is not modified.
func rangeDecided(r *http.Request, hdr fields, size int64) *http.Request {
	_, verdict := rangeRequest(r, hdr, size)
	_, ifRange := r.Header["If-Range"]
	if verdict != rangeWhole && !ifRange {
		return r
	}
	out := r.WithContext(r.Context())
	out.Header = r.Header.Clone()
	delete(out.Header, "If-Range")
	if verdict == rangeWhole {
		delete(out.Header, "Range")
	}
	return out
}
