package proxy_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// rawGet sends a GET with exactly the Accept-Encoding given ("" for
// none), without the client's transparent gzip.
func rawGet(t *testing.T, url, ae string) (xcache, ce, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Header.Get("X-Cache"), resp.Header.Get("Content-Encoding"), string(b)
}

// Two instances sharing Redis, an origin that compresses and forgets
// Vary: Accept-Encoding. What one instance filled for a client that
// accepts br or gzip never reaches a client of the other that accepts
// neither: the gzip body is decoded, the br one is fetched again.
func TestForgottenVaryAcrossInstances(t *testing.T) {
	redis := redistest.Start(t)
	const plain = "the origin's plain text"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, plain)
	zw.Close()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		switch ae := r.Header.Get("Accept-Encoding"); {
		case strings.Contains(ae, "br"):
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, "\x0b\x0f\x80not really brotli")
		case strings.Contains(ae, "gzip"):
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		default:
			io.WriteString(w, plain)
		}
	}))
	t.Cleanup(o.Close)
	a := newInstance(t, o.URL, redis.URL())
	b := newInstance(t, o.URL, redis.URL())

	if x, ce, _ := rawGet(t, a.srv.URL+"/gz", "gzip"); x != "MISS" || ce != "gzip" {
		t.Fatalf("a, gzip client: %s, Content-Encoding %q", x, ce)
	}
	x, ce, body := rawGet(t, b.srv.URL+"/gz", "")
	if x != "HIT-L2" || ce != "" || body != plain {
		t.Errorf("b, identity client: %s, Content-Encoding %q, %q; want HIT-L2 decoded", x, ce, body)
	}

	if x, ce, _ := rawGet(t, a.srv.URL+"/br", "gzip, deflate, br"); x != "MISS" || ce != "br" {
		t.Fatalf("a, br client: %s, Content-Encoding %q", x, ce)
	}
	for _, ae := range []string{"", "gzip"} {
		x, ce, body := rawGet(t, b.srv.URL+"/br", ae)
		if ce == "br" {
			t.Errorf("b, client accepting %q: got br (%s)", ae, x)
		}
		if ae == "" && (ce != "" || body != plain) {
			t.Errorf("b, identity client: Content-Encoding %q, %q (%s)", ce, body, x)
		}
	}
}

// Two instances sharing Redis, an origin that compresses and says Vary:
// Accept-Encoding, as nginx and Django's GZipMiddleware do. Its gzip body
// serves every client (decoded for those that do not accept gzip), so it
// is stored once, not once a bucket: what a gzip client filled on one
// instance answers an identity client and a br client of the other, and
// the origin is asked once.
func TestVaryAcceptEncodingStoredOnceAcrossInstances(t *testing.T) {
	redis := redistest.Start(t)
	const plain = "the origin's plain text, compressed by the origin"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, plain)
	zw.Close()
	var asked atomic.Int32
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
			return
		}
		io.WriteString(w, plain)
	}))
	t.Cleanup(o.Close)
	a := newInstance(t, o.URL, redis.URL())
	b := newInstance(t, o.URL, redis.URL())

	if x, ce, _ := rawGet(t, a.srv.URL+"/p", "gzip"); x != "MISS" || ce != "gzip" {
		t.Fatalf("a, gzip client: %s, Content-Encoding %q", x, ce)
	}
	if x, ce, body := rawGet(t, b.srv.URL+"/p", ""); x != "HIT-L2" || ce != "" || body != plain {
		t.Errorf("b, identity client: %s, Content-Encoding %q, %q; want HIT-L2 decoded", x, ce, body)
	}
	if x, ce, _ := rawGet(t, b.srv.URL+"/p", "br"); !strings.HasPrefix(x, "HIT") || ce != "" {
		t.Errorf("b, br-only client: %s, Content-Encoding %q; want a hit, decoded", x, ce)
	}
	if x, ce, _ := rawGet(t, a.srv.URL+"/p", "gzip, deflate, br"); x != "HIT-L1" || ce != "gzip" {
		t.Errorf("a, browser: %s, Content-Encoding %q; want HIT-L1 gzip", x, ce)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("origin asked %d times, want once", n)
	}
}
