package proxy

// Writing an answer to the client: a stored entry, with its Age, X-Cache
// and Cache-Status, as a 304, a range or the whole response.

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/formatted"
	"github.com/cacheproxy/cacheproxy/proxy/conn"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// writeEntry writes e as the response, its body as how says (the judge's
// deliveryOf: as stored, or decoded), counted as o for why (see count),
// with the Cache-Status cs, its Age as of now. Header values are shared
// with e, never copied or modified.
func (x *exchange) writeEntry(e *tiers.Entry, how delivery, o *outcome, cs []string, why Reason, now time.Time) {
	x.h.countEntry(e, x, o, why)
	w, r := x.w, x.r
	hdr := w.Header()
	var decodedBody []byte // nil: e's body, as stored
	var rest *decoding     // the decoding past MaxObjectBytes, streamed
	if how == decoded {
		d, err := decode(e.BodyReader(), x.h.o.MaxObjectBytes)
		if err != nil {
			x.h.o.Logger.Warn("stored body does not decode", "url", e.URL, "err", err)
			writePlainError(w, o.xcache, http.StatusBadGateway, "stored body does not decode\n")
			return
		}
		defer d.release()
		decodedBody = d.buf.Bytes()
		e.Header.CopyTo(hdr)
		asDecoded(hdr)
		if d.more {
			// Longer than any body the proxy buffers: streamed, its
			// length unknown, no ranges (RFC 9110 §14.2 allows the
			// whole response).
			rest = d
			delete(hdr, "Accept-Ranges")
		}
	} else {
		e.Header.CopyTo(hdr)
	}
	// The length sent is the body's, never a stored field (storedHeader;
	// an entry an older release wrote may hold one). net/http writes the
	// Content-Length of a body it holds whole when the handler returns
	// (http.ResponseWriter), so a small GET body's is left to it: a hit's
	// header map then holds the origin's usual five fields and our three
	// in eight slots, Go's small map, where a ninth costs three
	// allocations and ~440 ns a hit. A 304 and a range drop it anyway;
	// HEAD needs it (no body is written). TestSmallHitsContentLength
	// checks the wire.
	delete(hdr, "Content-Length")
	sent := e.BodyLen()
	if how == decoded {
		sent = len(decodedBody)
	}
	if rest == nil && bodyAllowed(e.Status) && (r.Method != http.MethodGet || sent >= netHTTPBuffers) {
		hdr["Content-Length"] = lengths.Values(int64(sent))
	}
	hdr["Age"] = ageHeader(e.Age(now))
	hdr["X-Cache"] = o.xcache
	hdr["Cache-Status"] = cs
	if e.Status == http.StatusOK && notModified(r, e.Header) {
		delete(hdr, "Content-Length")
		delete(hdr, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if _, ok := r.Header["Range"]; ok && e.Status == http.StatusOK && rest == nil {
		// A range of a stored whole response (RFC 9110 §14): 206 or 416
		// as rangeRequest decides, written by http.ServeContent, or the
		// whole 200.
		delete(hdr, "Content-Length")
		// The validators of what is sent (a decoded body's ETag is weak)
		// decide an If-Range.
		var body io.ReadSeeker = e.BodyReader()
		size := int64(e.BodyLen())
		if how == decoded {
			body, size = bytes.NewReader(decodedBody), int64(len(decodedBody))
		}
		http.ServeContent(w, rangeDecided(r, hdr, size), "", time.Time{}, body)
		return
	}
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead && bodyAllowed(e.Status) {
		if rest != nil {
			w.Write(decodedBody)
			rest.copyTo(w)
			return
		}
		if how == decoded {
			conn.Arm(r, len(decodedBody))
			w.Write(decodedBody)
			return
		}
		// As stored: the head then the tail (if Packed split the body),
		// two writes into net/http's buffered writer. Arm holds the first
		// write to the connection, which is the full 4 KiB buffer however
		// many writes fill it (see conn.Arm), so it is armed for the whole
		// body.
		conn.Arm(r, e.BodyLen())
		e.WriteBody(w)
	}
}

// lengths holds the Content-Length values of the bodies hits send, so
// that a hit of an entry whose length is one of the few a cache's hot
// entries have allocates nothing for it (formatted.Cache: 4,096 lengths,
// direct-mapped).
var lengths = formatted.New(func(n int64) string { return strconv.FormatInt(n, 10) })

// netHTTPBuffers is the body net/http buffers before it sends the header
// (bufferBeforeChunkingSize in net/http's server): a handler that writes
// less and returns gets its Content-Length written by net/http.
const netHTTPBuffers = 2048

// asDecoded changes the header of a stored gzip response sent decoded
// (deliveryOf): no Content-Encoding, a weak ETag (the
// representation is not the stored one; RFC 9110 §8.8.1), and Vary with
// Accept-Encoding. The value slices are replaced, never written into:
// they are the entry's (see tiers.Header.CopyTo).
func asDecoded(hdr http.Header) {
	delete(hdr, "Content-Encoding")
	if etag := hdr.Get("Etag"); etag != "" {
		hdr["Etag"] = []string{weakened(etag)}
	}
	addVaryAcceptEncoding(hdr)
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
