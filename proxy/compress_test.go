package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/cacheproxy/cacheproxy/internal/jsoncorpus"
	"github.com/cacheproxy/cacheproxy/tiers"
)

func gzipOf(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func gunzipString(t *testing.T, s string) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// jsonBody returns a compressible JSON document of about n bytes.
func jsonBody(n int) string {
	var b strings.Builder
	b.WriteString(`{"results":[`)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"player %d","score":%d},`, i, i, i*7%1000)
	}
	b.WriteString(`{}]}`)
	return b.String()
}

// A compressible identity response is stored once, gzip: a gzip client
// gets the stored bytes with Vary: Accept-Encoding and a weak ETag; a
// client without Accept-Encoding gets them decoded, with its length; both
// hit the one entry, in L1 and L2 alike.
func TestCompressedOnceServedBothWays(t *testing.T) {
	body := jsonBody(8 << 10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Etag", `"v1"`)
		io.WriteString(w, body)
	})
	s := newStack(t, o, nil)
	z := s.raw(t, "GET", "/api", "Accept-Encoding", "gzip")
	wantXCache(t, z, "MISS")
	if z.header.Get("Content-Encoding") != "gzip" || gunzipString(t, z.body) != body {
		t.Fatalf("gzip client: Content-Encoding %q, %d bytes", z.header.Get("Content-Encoding"), len(z.body))
	}
	if z.header.Get("Etag") != `W/"v1"` || !strings.Contains(z.header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("gzip client: ETag %q, Vary %q; want W/\"v1\" and Accept-Encoding", z.header.Get("Etag"), z.header.Get("Vary"))
	}
	if len(z.body) >= len(body)/2 {
		t.Errorf("stored %d bytes for %d", len(z.body), len(body))
	}
	id := s.raw(t, "GET", "/api")
	wantXCache(t, id, "HIT-L1")
	if id.header.Get("Content-Encoding") != "" || id.body != body || id.header.Get("Content-Length") != fmt.Sprint(len(body)) {
		t.Fatalf("identity client: Content-Encoding %q, Content-Length %q, body equal %v",
			id.header.Get("Content-Encoding"), id.header.Get("Content-Length"), id.body == body)
	}
	if id.header.Get("Etag") != `W/"v1"` || !strings.Contains(id.header.Get("Vary"), "Accept-Encoding") {
		t.Errorf("identity client: ETag %q, Vary %q", id.header.Get("Etag"), id.header.Get("Vary"))
	}
	for name, tier := range map[string]*mapTier{"L1": s.local, "L2": s.shared} {
		e := tier.entry(s.h.Key("/api"))
		if e == nil || e.Header.Get("Content-Encoding") != "gzip" || e.BodyLen() != len(z.body) {
			t.Errorf("%s does not hold the one gzip copy", name)
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin asked %d times, want 1", n)
	}
	// From L2 alone, the identity client is still served decoded.
	s.local.Delete(t.Context(), s.h.Key("/api"))
	id = s.raw(t, "GET", "/api")
	wantXCache(t, id, "HIT-L2")
	if id.body != body || id.header.Get("Content-Encoding") != "" {
		t.Errorf("identity client from L2: Content-Encoding %q", id.header.Get("Content-Encoding"))
	}
}

// Conditional requests and ranges of a compressed entry: the weak ETag
// validates either form; a range is of the representation sent (RFC 9110
// §14.1.2: of the encoded bytes for a gzip client, of the decoded for an
// identity one); If-Range, a strong comparison, never matches a weak
// ETag, so it gets the whole response.
func TestCompressedConditionalsAndRanges(t *testing.T) {
	body := jsonBody(4 << 10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Etag", `"v1"`)
		io.WriteString(w, body)
	})
	s := newStack(t, o, nil)
	z := s.raw(t, "GET", "/doc", "Accept-Encoding", "gzip")
	for _, ae := range []string{"gzip", ""} {
		hdr := []string{"If-None-Match", `W/"v1"`}
		if ae != "" {
			hdr = append(hdr, "Accept-Encoding", ae)
		}
		if r := s.raw(t, "GET", "/doc", hdr...); r.status != http.StatusNotModified {
			t.Errorf("If-None-Match W/\"v1\" (Accept-Encoding %q): %d, want 304", ae, r.status)
		}
		if r := s.raw(t, "GET", "/doc", append(hdr[2:], "If-None-Match", `"v2"`)...); r.status != http.StatusOK {
			t.Errorf("If-None-Match \"v2\" (Accept-Encoding %q): %d, want 200", ae, r.status)
		}
	}
	r := s.raw(t, "GET", "/doc", "Range", "bytes=10-19")
	if r.status != http.StatusPartialContent || r.body != body[10:20] || r.header.Get("Content-Encoding") != "" {
		t.Errorf("identity range: %d %q, want 206 %q", r.status, r.body, body[10:20])
	}
	r = s.raw(t, "GET", "/doc", "Range", "bytes=10-19", "Accept-Encoding", "gzip")
	if r.status != http.StatusPartialContent || r.body != z.body[10:20] || r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("gzip range: %d, Content-Encoding %q, want 206 of the gzip bytes", r.status, r.header.Get("Content-Encoding"))
	}
	r = s.raw(t, "GET", "/doc", "Range", "bytes=10-19", "If-Range", `"v1"`)
	if r.status != http.StatusOK || r.body != body {
		t.Errorf("If-Range with the origin's strong ETag: %d, want the whole 200", r.status)
	}
}

// What is not compressed: no-transform (stored and served as the origin
// sent it), a body that gzip does not shrink, a small body, a type that is
// not textual.
func TestNotCompressed(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 4<<10)
	for i := range noise {
		noise[i] = byte(rnd.UintN(256))
	}
	text := jsonBody(4 << 10)
	cases := []struct {
		path, ct, cc, body string
	}{
		{"/no-transform", "application/json", "max-age=60, no-transform", text},
		{"/noise", "application/json", "max-age=60", string(noise)},
		{"/small", "application/json", "max-age=60", `{"id":1}`},
		{"/png", "image/png", "max-age=60", text},
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		for _, c := range cases {
			if c.path == r.URL.Path {
				w.Header().Set("Cache-Control", c.cc)
				w.Header().Set("Content-Type", c.ct)
				w.Header().Set("Etag", `"v1"`)
				io.WriteString(w, c.body)
			}
		}
	})
	s := newStack(t, o, nil)
	for _, c := range cases {
		r := s.raw(t, "GET", c.path, "Accept-Encoding", "gzip")
		if r.body != c.body || r.header.Get("Content-Encoding") != "" || r.header.Get("Etag") != `"v1"` {
			t.Errorf("%s: %d, Content-Encoding %q, ETag %q, body equal %v", c.path, r.status, r.header.Get("Content-Encoding"), r.header.Get("Etag"), r.body == c.body)
		}
		if e := s.local.entry(s.h.Key(c.path)); e == nil || string(e.AppendBody(nil)) != c.body {
			t.Errorf("%s: not stored as sent", c.path)
		}
	}
}

// The spellings of one bucket make one variant: an origin that varies on
// Accept-Encoding is asked once for "gzip, deflate, br" and
// "gzip, deflate, br, zstd", and is sent the bucket ("br").
func TestAcceptEncodingBuckets(t *testing.T) {
	var sent []string
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		ae := r.Header.Get("Accept-Encoding")
		sent = append(sent, ae)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		switch ae {
		case "br":
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, "\x0b\x02\x80hello\x03")
		case "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, gzipOf(t, "hello"))
		default:
			io.WriteString(w, "hello")
		}
	})
	s := newStack(t, o, nil)
	// A br body, which the proxy does not decode, is a variant of the br
	// bucket: browsers with and without zstd share it.
	wantXCache(t, s.raw(t, "GET", "/v", "Accept-Encoding", "gzip, deflate, br"), "MISS")
	wantXCache(t, s.raw(t, "GET", "/v", "Accept-Encoding", "gzip, deflate, br, zstd"), "HIT-L1")
	wantXCache(t, s.raw(t, "GET", "/v", "Accept-Encoding", "br;q=1.0, gzip;q=0.8, *;q=0.1"), "HIT-L1")
	wantXCache(t, s.raw(t, "GET", "/v", "Accept-Encoding", "gzip"), "MISS")
	// A gzip body serves every client (decoded for those that do not
	// accept gzip): stored once, in place of the variants.
	wantXCache(t, s.raw(t, "GET", "/v", "Accept-Encoding", "x-gzip, deflate"), "HIT-L1")
	r := s.raw(t, "GET", "/v")
	wantXCache(t, r, "HIT-L1")
	if r.body != "hello" || r.header.Get("Content-Encoding") != "" || r.header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("identity client got %q, Content-Encoding %q, Vary %q", r.body, r.header.Get("Content-Encoding"), r.header.Get("Vary"))
	}
	wantXCache(t, s.raw(t, "GET", "/v", "Accept-Encoding", "identity"), "HIT-L1")
	r = s.raw(t, "GET", "/v", "Accept-Encoding", "gzip, deflate, br")
	wantXCache(t, r, "HIT-L1")
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("a br client got Content-Encoding %q, want the stored gzip", r.header.Get("Content-Encoding"))
	}
	if want := []string{"br", "gzip"}; fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Errorf("origin was sent Accept-Encoding %q, want %q", sent, want)
	}
}

// selectingHeaders keeps Accept-Encoding among the headers that select a
// stored variant only where the stored coding does not serve every
// client: enumerated over codings, no-transform and the other headers.
func TestSelectingHeaders(t *testing.T) {
	for _, ce := range []string{"", "identity", "gzip", "br", "zstd", "deflate", "x-mine", "gzip, br"} {
		for _, cc := range []string{"", "max-age=60", "no-transform"} {
			for _, vary := range [][]string{nil, {"Accept-Encoding"}, {"Origin"}, {"Accept-Encoding", "Origin"}, {"Origin", "Accept-Encoding"}} {
				hdr := http.Header{}
				if ce != "" {
					hdr.Set("Content-Encoding", ce)
				}
				if cc != "" {
					hdr.Set("Cache-Control", cc)
				}
				h := tiers.MakeHeader(hdr)
				got := selectingHeaders(vary, h)
				servesAll := ce == "" || ce == "identity" || ce == "gzip" && cc != "no-transform"
				want := slices.DeleteFunc(slices.Clone(vary), func(n string) bool { return servesAll && n == "Accept-Encoding" })
				if len(want) == 0 {
					want = nil
				}
				if !slices.Equal(got, want) {
					t.Errorf("Content-Encoding %q, Cache-Control %q, Vary %q: selecting %q, want %q", ce, cc, vary, got, want)
				}
				// Whatever it drops, every client is served from the copy.
				if len(got) < len(vary) {
					for _, a := range []acceptance{identityOnly, {accepts: 1<<identity | 1<<brCoding, bucket: brCoding}} {
						if deliveryOf(h, a) == refused {
							t.Errorf("Content-Encoding %q, Cache-Control %q: Accept-Encoding dropped but %+v is refused", ce, cc, a)
						}
					}
				}
			}
		}
	}
}

// An origin that compresses but forgets Vary: Accept-Encoding. Its gzip
// body is decoded for a client that did not accept gzip; its brotli body,
// which the proxy cannot decode, never reaches such a client: the entry
// does not answer it, and the origin is asked again with the client's
// bucket.
func TestForgottenVaryNeverSendsAnUnacceptedCoding(t *testing.T) {
	body := "plain text the origin compresses"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/nt" {
			w.Header().Set("Cache-Control", "max-age=60, no-transform")
		}
		switch ae := r.Header.Get("Accept-Encoding"); {
		case strings.Contains(ae, "br") && strings.HasPrefix(r.URL.Path, "/br"):
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, "\x0b\x0f\x80brotli bytes")
		case strings.Contains(ae, "gzip"):
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, gzipOf(t, body))
		default:
			io.WriteString(w, body)
		}
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.raw(t, "GET", "/gz", "Accept-Encoding", "gzip"), "MISS")
	r := s.raw(t, "GET", "/gz")
	wantXCache(t, r, "HIT-L1")
	if r.header.Get("Content-Encoding") != "" || r.body != body {
		t.Errorf("identity client got Content-Encoding %q, %q", r.header.Get("Content-Encoding"), r.body)
	}
	// gzip, but no-transform: the proxy may not decode it.
	wantXCache(t, s.raw(t, "GET", "/nt", "Accept-Encoding", "gzip"), "MISS")
	r = s.raw(t, "GET", "/nt")
	wantXCache(t, r, "MISS") // fetched as identity, not decoded
	if r.header.Get("Content-Encoding") != "" || r.body != body {
		t.Errorf("no-transform: identity client got Content-Encoding %q (X-Cache %s)", r.header.Get("Content-Encoding"), r.header.Get("X-Cache"))
	}
	wantXCache(t, s.raw(t, "GET", "/br", "Accept-Encoding", "gzip, deflate, br"), "MISS")
	r = s.raw(t, "GET", "/br")
	if r.header.Get("Content-Encoding") != "" || r.body != body {
		t.Errorf("identity client got Content-Encoding %q (X-Cache %s)", r.header.Get("Content-Encoding"), r.header.Get("X-Cache"))
	}
	r = s.raw(t, "GET", "/br", "Accept-Encoding", "gzip")
	if r.header.Get("Content-Encoding") == "br" {
		t.Errorf("gzip client got br (X-Cache %s)", r.header.Get("X-Cache"))
	}
	// The same from L2 alone.
	wantXCache(t, s.raw(t, "GET", "/br2", "Accept-Encoding", "br"), "MISS")
	s.local.Delete(t.Context(), s.h.Key("/br2"))
	if e := s.shared.entry(s.h.Key("/br2")); e == nil || e.Header.Get("Content-Encoding") != "br" {
		t.Fatal("L2 does not hold the br entry")
	}
	if r := s.raw(t, "GET", "/br2"); r.header.Get("Content-Encoding") != "" || r.body != body {
		t.Errorf("identity client from L2 got Content-Encoding %q (X-Cache %s)", r.header.Get("Content-Encoding"), r.header.Get("X-Cache"))
	}
}

// A compressed entry revalidated by the origin's 304 stays what it is: a
// gzip body, with its weak ETag, whatever validator the 304 repeats.
func TestCompressedEntryRevalidated(t *testing.T) {
	body := jsonBody(4 << 10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Etag", `"v1"`)
		if inm := r.Header.Get("If-None-Match"); inm == `"v1"` || inm == `W/"v1"` {
			w.Header().Set("Vary", "Origin") // knows nothing of the proxy's gzip
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, body)
	})
	s := newStack(t, o, nil)
	wantXCache(t, s.raw(t, "GET", "/r", "Accept-Encoding", "gzip"), "MISS")
	s.clock.Advance(20 * time.Second)
	for _, ae := range []string{"gzip", "identity"} {
		r := s.raw(t, "GET", "/r", "Accept-Encoding", ae)
		got := r.body
		if ae == "gzip" {
			if r.header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("after revalidation, gzip client: Content-Encoding %q (X-Cache %s)", r.header.Get("Content-Encoding"), r.header.Get("X-Cache"))
			}
			got = gunzipString(t, r.body)
		}
		if !strings.Contains(r.header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("after revalidation, %s client: Vary %q", ae, r.header.Get("Vary"))
		}
		if got != body || r.header.Get("Etag") != `W/"v1"` {
			t.Errorf("after revalidation, %s client: ETag %q, body equal %v (X-Cache %s)", ae, r.header.Get("Etag"), got == body, r.header.Get("X-Cache"))
		}
	}
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin asked %d times, want 2 (the fill, the revalidation)", n)
	}
}

// A stored gzip body is decoded within the memory of one buffered body
// (MaxObjectBytes): an origin's gzip that expands past it is streamed to
// the client, whole, without a length and without ranges; one that does
// not decode is a 502 that carries none of the entry's headers.
func TestDecodingBounded(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, compresses a thousandfold
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip")
		if r.URL.Path == "/corrupt" {
			io.WriteString(w, "\x1f\x8b\x08\x00 not gzip at all")
			return
		}
		io.WriteString(w, gzipOf(t, big))
	})
	s := newStack(t, o, func(o *Options) { o.MaxObjectBytes = 64 << 10 })
	wantXCache(t, s.raw(t, "GET", "/bomb", "Accept-Encoding", "gzip"), "MISS")
	for _, hdr := range [][]string{nil, {"Range", "bytes=0-9"}} {
		r := s.raw(t, "GET", "/bomb", hdr...)
		wantXCache(t, r, "HIT-L1")
		if r.status != http.StatusOK || r.body != big || r.header.Get("Content-Length") != "" || r.header.Get("Content-Encoding") != "" {
			t.Errorf("%q: %d, %d bytes, Content-Length %q, Content-Encoding %q; want the whole 200 streamed",
				hdr, r.status, len(r.body), r.header.Get("Content-Length"), r.header.Get("Content-Encoding"))
		}
	}
	wantXCache(t, s.raw(t, "GET", "/corrupt", "Accept-Encoding", "gzip"), "MISS")
	r := s.raw(t, "GET", "/corrupt")
	if r.status != http.StatusBadGateway || r.header.Get("Content-Encoding") != "" {
		t.Errorf("corrupt gzip: %d, Content-Encoding %q; want 502 without it", r.status, r.header.Get("Content-Encoding"))
	}
}

// The proxy's gzip adds Accept-Encoding to the origin's Vary as one line,
// as Django writes it, so that the stored value is a common one (a code,
// not a string of the entry's own); "*" and a Vary that names it already
// are left as they are.
func TestAddVaryAcceptEncoding(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{"Accept-Encoding"}},
		{[]string{"Accept, Cookie"}, []string{"Accept, Cookie, Accept-Encoding"}},
		{[]string{"Accept", "Cookie"}, []string{"Accept, Cookie, Accept-Encoding"}},
		{[]string{"Origin, accept-encoding"}, []string{"Origin, accept-encoding"}},
		{[]string{"*"}, []string{"*"}},
	} {
		hdr := http.Header{}
		if tc.in != nil {
			hdr["Vary"] = slices.Clone(tc.in)
		}
		addVaryAcceptEncoding(hdr)
		if !slices.Equal(hdr["Vary"], tc.want) {
			t.Errorf("Vary %q: got %q, want %q", tc.in, hdr["Vary"], tc.want)
		}
	}
}

// A hit's Content-Length is on the wire whatever writes it: net/http for
// a body under netHTTPBuffers (the header map then stays in Go's small
// form), the proxy for a larger one and for HEAD; never chunked. For a
// gzip client as stored, for an identity client decoded, both sizes.
func TestSmallHitsContentLength(t *testing.T) {
	small := strings.Repeat(`{"id":1,"name":"ada"},`, 60) // 1.3 KiB, gzip ~100 B
	large := func() string {                              // ~9 KiB of JSON that gzip takes to ~3 KiB
		var b strings.Builder
		rnd := rand.New(rand.NewPCG(5, 6))
		for b.Len() < 9000 {
			fmt.Fprintf(&b, `{"id":%d,"score":%d},`, rnd.UintN(1e9), rnd.UintN(1e6))
		}
		return b.String()
	}()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/large" {
			io.WriteString(w, large)
			return
		}
		io.WriteString(w, small)
	})
	s := newStack(t, o, nil)
	for _, path := range []string{"/small", "/large"} {
		s.raw(t, "GET", path, "Accept-Encoding", "gzip")
		for _, ae := range []string{"gzip", ""} {
			var hdr []string
			if ae != "" {
				hdr = []string{"Accept-Encoding", ae}
			}
			r := s.raw(t, "GET", path, hdr...)
			wantXCache(t, r, "HIT-L1")
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
				t.Errorf("%s, Accept-Encoding %q: Content-Length %q for %d bytes", path, ae, cl, len(r.body))
			}
			if ae == "" && r.body != map[string]string{"/small": small, "/large": large}[path] {
				t.Errorf("%s, identity client: body differs", path)
			}
			head := s.raw(t, "HEAD", path, hdr...)
			if head.header.Get("Content-Length") != strconv.Itoa(len(r.body)) || head.body != "" {
				t.Errorf("%s, Accept-Encoding %q: HEAD Content-Length %q, want %d", path, ae, head.header.Get("Content-Length"), len(r.body))
			}
		}
	}
}

// A stored response's length is its body's: no tier holds a
// Content-Length field (an entry's bytes are its body's, whatever the
// proxy did to it), and an entry that holds one, as an older release
// wrote them to Redis, is sent with its body's length all the same, for
// GET and HEAD, small and large, and with none for a 204.
func TestStoredLengthIsTheBodys(t *testing.T) {
	large := strings.Repeat("x", 5000)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/large":
			io.WriteString(w, large)
		default:
			io.WriteString(w, "small")
		}
	})
	s := newStack(t, o, nil)
	for _, path := range []string{"/small", "/large", "/empty"} {
		s.raw(t, "GET", path)
		for name, tier := range map[string]*mapTier{"L1": s.local, "L2": s.shared} {
			e := tier.entry(s.h.Key(path))
			if e == nil {
				t.Fatalf("%s: %s holds nothing", path, name)
			}
			if e.Header.Has("Content-Length") {
				t.Errorf("%s: %s holds Content-Length %q", path, name, e.Header.Get("Content-Length"))
			}
		}
	}
	// An entry of an older release: a Content-Length that says 3.
	for _, path := range []string{"/small", "/large"} {
		key := s.h.Key(path)
		old := *s.shared.entry(key)
		hdr := old.Header.Clone()
		hdr.Set("Content-Length", "3")
		old.Header = tiers.MakeHeader(hdr)
		s.local.Delete(t.Context(), key)
		s.shared.Set(t.Context(), key, &old, time.Minute)
		want := map[string]string{"/small": "small", "/large": large}[path]
		r := s.raw(t, "GET", path)
		wantXCache(t, r, "HIT-L2")
		if r.body != want || r.header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("%s: %d bytes, Content-Length %q, want %d", path, len(r.body), r.header.Get("Content-Length"), len(want))
		}
		if h := s.raw(t, "HEAD", path); h.header.Get("Content-Length") != strconv.Itoa(len(want)) {
			t.Errorf("%s: HEAD Content-Length %q, want %d", path, h.header.Get("Content-Length"), len(want))
		}
	}
	r := s.raw(t, "GET", "/empty")
	wantXCache(t, r, "HIT-L1")
	if r.status != http.StatusNoContent || r.header.Get("Content-Length") != "" {
		t.Errorf("/empty: %d, Content-Length %q; want 204 without one", r.status, r.header.Get("Content-Length"))
	}
}

// The level a body is stored at: gzip's best up to bestUpTo bytes, the
// default above, each byte for byte what klauspost/compress makes at
// that level; and level 9 stores fewer bytes than level 6 would on the
// DRF-style corpus, which is why it is used.
func TestCompressionLevel(t *testing.T) {
	sizeAt := func(body []byte, level int) int {
		var b bytes.Buffer
		w, _ := kgzip.NewWriterLevel(&b, level)
		w.Write(body)
		w.Close()
		return b.Len()
	}
	var corpus6, corpus9, stored int
	for id := 1; id <= 60; id++ {
		p := jsoncorpus.Page(id)
		z, ok := gzipped(p)
		if !ok {
			t.Fatalf("page %d does not compress", id)
		}
		stored += len(z)
		corpus6 += sizeAt(p, 6)
		corpus9 += sizeAt(p, kgzip.BestCompression)
	}
	if stored != corpus9 || corpus9 >= corpus6 {
		t.Errorf("corpus stored in %d bytes; level 9 makes %d, level 6 %d", stored, corpus9, corpus6)
	}
	for _, n := range []int{1 << 10, bestUpTo, bestUpTo + 1, 1 << 20} {
		body := []byte(jsonBody(n))[:n]
		z, _ := gzipped(body)
		if want := sizeAt(body, compressLevel(n)); len(z) != want {
			t.Errorf("%d bytes stored in %d, want %d (level %d)", n, len(z), want, compressLevel(n))
		}
		if (n <= bestUpTo) != (compressLevel(n) == kgzip.BestCompression) {
			t.Errorf("%d bytes at level %d", n, compressLevel(n))
		}
	}
}
