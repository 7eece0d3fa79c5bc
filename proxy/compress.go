package proxy

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// Compressed once, served many ways: a storable identity response of a
// compressible type is stored gzip-compressed, once, and served as stored
// to clients that accept gzip and decoded on the fly for those that do
// not (RFC 9110 §7.7 on transformations; coding.go decides who gets
// what). klauspost/compress does the gzip: it is faster than
// compress/gzip at equal ratio, and its encoders and decoders are reused
// through pools.

// compressMin is the smallest body the proxy compresses: below it the
// gzip framing and the allocator's size classes eat most of the gain.
const compressMin = 1 << 10

// The gzip level: gzip.BestCompression (9) for a body of up to
// bestUpTo bytes, where an API's responses are. Compressing is paid once
// a fill and every byte saved is memory for more responses: on the
// DRF-style corpus (internal/jsoncorpus, pages of 1-16 KiB) level 9
// stores 2.2% fewer bytes than level 5 (klauspost's DefaultCompression,
// used until issue 21) and 1.7% fewer than level 6, for 2.2x level 6's
// compressing time (129 against 58 µs a page of 5.5 KiB; decoding
// unchanged). A larger body is compressed at level 6, the default of
// gzip(1), nginx and Varnish: level 9 would hold its fill's first byte
// 4x longer (115 against 30 ms for 4 MiB of JSON) for 6% fewer bytes.
const (
	bestUpTo     = 64 << 10
	defaultLevel = 6
)

// compressLevel returns the gzip level for a body of n bytes, the index
// of its writers' pool in gzipWriters.
func compressLevel(n int) int {
	if n <= bestUpTo {
		return gzip.BestCompression
	}
	return defaultLevel
}

// compressible reports whether a response with header hdr and a body of
// n bytes is one the proxy compresses before storing it: a 200 without a
// content coding of its own, not marked no-transform, of a textual type
// (compressibleType), of at least compressMin bytes, and not a range.
func compressible(status int, hdr http.Header, n int) bool {
	if status != http.StatusOK || n < compressMin {
		return false
	}
	if ce := hdr.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false
	}
	if hdr.Get("Content-Range") != "" || parseCacheControl(hdr).noTransform {
		return false
	}
	return compressibleType(hdr.Get("Content-Type"))
}

// compressibleType reports whether a media type is textual, so that gzip
// pays: text/*, JSON, XML, JavaScript, SVG and their +json / +xml kin.
func compressibleType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript",
		"application/x-javascript", "application/ecmascript", "application/x-ndjson",
		"application/graphql-response+json", "application/wasm", "image/svg+xml",
		"application/xhtml+xml", "application/rss+xml", "application/atom+xml",
		"application/manifest+json", "application/x-yaml", "application/yaml",
		"application/vnd.api+json":
		return true
	}
	return false
}

// gzipWriters are the pooled gzip writers, one pool a level.
var gzipWriters [gzip.BestCompression + 1]sync.Pool

func init() {
	for level := range gzipWriters {
		gzipWriters[level].New = func() any {
			w, _ := gzip.NewWriterLevel(io.Discard, level)
			return w
		}
	}
}

var gzipReaders sync.Pool // of *gzip.Reader

// gzipped returns body compressed with gzip, and whether that pays: the
// compressed form at most 7/8 of the original. Otherwise the identity
// form is stored (random bytes, already-compressed data sent as text).
func gzipped(body []byte) ([]byte, bool) {
	var buf bytes.Buffer
	buf.Grow(len(body) / 2)
	pool := &gzipWriters[compressLevel(len(body))]
	zw := pool.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, err := zw.Write(body)
	if err == nil {
		err = zw.Close()
	}
	pool.Put(zw)
	if err != nil || buf.Len() > len(body)-len(body)/8 {
		return nil, false
	}
	// Exactly its length: the entry is packed anyway, but the fill's
	// own copy need not be twice as large.
	return bytes.Clone(buf.Bytes()), true
}

// decoding is a stored gzip body being decoded for a client: its first
// bytes, up to a limit, in buf; if more says there are more, the rest
// from zr. release gives its buffer and reader back to their pools.
type decoding struct {
	buf  *bytes.Buffer
	zr   *gzip.Reader
	more bool
}

// decode decodes the gzip body into a pooled buffer, up to limit bytes:
// what a stored body decodes to is bounded by the memory of one buffered
// body however it was compressed (an origin's gzip may expand a
// thousandfold), and the rest, if any, is left for copyTo.
func decode(body io.Reader, limit int64) (*decoding, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(body)
	} else {
		err = zr.Reset(body)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding a stored gzip body: %w", err)
	}
	d := &decoding{buf: decodeBuffers.Get().(*bytes.Buffer), zr: zr}
	n, err := d.buf.ReadFrom(io.LimitReader(zr, limit))
	if err != nil {
		d.release()
		return nil, fmt.Errorf("decoding a stored gzip body: %w", err)
	}
	d.more = n == limit
	return d, nil
}

// copyTo writes the rest of the decoding to w.
func (d *decoding) copyTo(w io.Writer) {
	io.Copy(w, d.zr)
}

func (d *decoding) release() {
	if d.buf.Cap() <= 1<<20 {
		d.buf.Reset()
		decodeBuffers.Put(d.buf)
	}
	gzipReaders.Put(d.zr)
}

// decodeBuffers holds the buffers bodies are decoded into for clients
// that do not accept gzip (up to 1 MiB each: larger ones are dropped).
var decodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// compressResponse returns the body to store for a response with status,
// header hdr (as storedHeader made it) and body: gzip-compressed if it is
// compressible and that pays, with hdr changed to say so: Content-Encoding
// gzip, Vary with Accept-Encoding (what is sent
// depends on it now), and a strong ETag made weak, since the bytes are no
// longer the origin's (RFC 9110 §8.8.1). Otherwise body, hdr untouched.
func compressResponse(status int, hdr http.Header, body []byte) []byte {
	if !compressible(status, hdr, len(body)) {
		return body
	}
	z, ok := gzipped(body)
	if !ok {
		return body
	}
	hdr["Content-Encoding"] = []string{"gzip"}
	addVaryAcceptEncoding(hdr)
	if etag := hdr.Get("Etag"); etag != "" {
		hdr["Etag"] = []string{weakened(etag)}
	}
	return z
}

// weakened returns etag as a weak validator.
func weakened(etag string) string {
	if strings.HasPrefix(etag, "W/") {
		return etag
	}
	return "W/" + etag
}

// addVaryAcceptEncoding adds Accept-Encoding to hdr's Vary unless it
// is there, or Vary is "*": to its one line, as Django's
// patch_vary_headers writes it ("Accept, Cookie, Accept-Encoding"), a
// value a stored header holds as a code (tiers.Header).
func addVaryAcceptEncoding(hdr http.Header) {
	names, star := parseVary(hdr)
	if star {
		return
	}
	for _, n := range names {
		if n == "Accept-Encoding" {
			return
		}
	}
	hdr["Vary"] = []string{strings.Join(append(hdr["Vary"][:len(hdr["Vary"]):len(hdr["Vary"])], "Accept-Encoding"), ", ")}
}
