// Command fixedorigin is the origin server of the benchmarks: it serves
// GET /blob/{id}?size=N as N deterministic bytes from memory, cacheable for
// five minutes, after an optional artificial delay, and counts the requests
// it serves so that a benchmark can tell how many reached it.
//
// It is deliberately minimal (net/http's ServeMux, no middleware, no
// logging) because "the origin alone serving the same bytes" is the ceiling
// every proxy is compared with.
//
//	GET /blob/{id}?size=N   N bytes (default 1024), Cache-Control: max-age=300
//	GET /__count            requests served on /blob/ so far, as a decimal number
//
// With -versions, every blob has a version, which starts at -version-base
// and which POST /__bump?id={id} increments (answering the new version):
// the body then begins with "v<version> " in place of its first bytes
// (same size) and carries an X-Version header, so that a client can tell
// which version a cache served. Without -versions the bodies are as
// above and /__bump does not exist.
//
//	POST /__bump?id={id}    -versions: the blob's next version, as a decimal number
//	POST /__fail?for=10s    answer 500 on /blob/ for that long (counted as served)
//
// -cache-control replaces the blobs' Cache-Control (e.g. "max-age=1,
// stale-if-error=300" for the failing-origin fault).
//
// Usage:
//
//	fixedorigin -listen 127.0.0.1:9000 -latency 20ms -max-size 16MiB
//	fixedorigin -listen 127.0.0.1:9000 -versions -version-base 40
package main

import (
	"bytes"
	"compress/gzip"
	"strings"

	"flag"
	"fmt"
	"github.com/cacheproxy/cacheproxy/internal/jsoncorpus"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "listen address")
	latency := flag.Duration("latency", 0, "artificial delay before each /blob/ response")
	maxSize := flag.Int("max-size", 16<<20, "largest body served, in bytes")
	versioned := flag.Bool("versions", false, "version every blob: bodies begin with \"v<version> \", POST /__bump?id= increments")
	base := flag.Int64("version-base", 0, "-versions: the version of a blob never bumped (a restarted origin continues above the versions it gave out)")
	cacheControl := flag.String("cache-control", "max-age=300", "the blobs' Cache-Control")
	gzipVary := flag.Bool("json-gzip-vary", false, "/api/pages/: compress for clients that accept gzip, with Vary: Accept-Encoding, as nginx or Django's GZipMiddleware do")
	flag.Parse()

	o := newOrigin(*maxSize, *latency)
	o.cacheControl = *cacheControl
	o.gzipVary = *gzipVary
	if *versioned {
		o.versions = &versions{base: *base, bumps: map[string]int64{}}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: o.mux(), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// origin holds the body bytes and the request counter.
type origin struct {
	body    []byte // every response is a prefix of body
	latency time.Duration
	served  atomic.Int64
	// versions is nil without -versions.
	versions *versions
	// cacheControl is the blobs' Cache-Control; failUntil, in Unix
	// nanoseconds, is when /__fail's 500s end.
	cacheControl string
	failUntil    atomic.Int64
	// gzipVary: the JSON pages are compressed for clients that accept
	// gzip, with Vary: Accept-Encoding.
	gzipVary bool
}

// versions is the version of every blob: base plus its bumps. Safe for
// concurrent use.
type versions struct {
	base  int64
	mu    sync.Mutex
	bumps map[string]int64
}

// get returns the version of blob id.
func (v *versions) get(id string) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.base + v.bumps[id]
}

// bump increments the version of blob id and returns it.
func (v *versions) bump(id string) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.bumps[id]++
	return v.base + v.bumps[id]
}

func newOrigin(maxSize int, latency time.Duration) *origin {
	body := make([]byte, maxSize)
	// Printable, deterministic, and not all one byte, so that a proxy
	// cannot get away with anything clever and a human can read it.
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range body {
		body[i] = alphabet[i%len(alphabet)]
	}
	return &origin{body: body, latency: latency, cacheControl: "max-age=300"}
}

func (o *origin) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /blob/{id}", o.blob)
	m.HandleFunc("GET /api/pages/{id}", o.page)
	m.HandleFunc("POST /__fail", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d < 0 {
			http.Error(w, "want for=<duration>", http.StatusBadRequest)
			return
		}
		o.failUntil.Store(time.Now().Add(d).UnixNano())
		w.Header().Set("Cache-Control", "no-store")
	})
	m.HandleFunc("GET /__count", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "%d\n", o.served.Load())
	})
	if o.versions != nil {
		m.HandleFunc("POST /__bump", func(w http.ResponseWriter, r *http.Request) {
			id := r.URL.Query().Get("id")
			if id == "" {
				http.Error(w, "give id=", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprintf(w, "%d\n", o.versions.bump(id))
		})
	}
	return m
}

func (o *origin) blob(w http.ResponseWriter, r *http.Request) {
	o.served.Add(1)
	size := 1024
	if s := r.URL.Query().Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > len(o.body) {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		size = n
	}
	if o.latency > 0 {
		// A timer rather than time.Sleep would not be cheaper; what matters
		// is that the delay does not hold a CPU.
		time.Sleep(o.latency)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if time.Now().UnixNano() < o.failUntil.Load() {
		http.Error(w, "failing", http.StatusInternalServerError)
		return
	}
	h.Set("Cache-Control", o.cacheControl)
	h.Set("Content-Length", strconv.Itoa(size))
	if o.versions == nil {
		w.Write(o.body[:size])
		return
	}
	// The version is read after the delay: a bump that answered before
	// this response was written is in it.
	v := o.versions.get(r.PathValue("id"))
	h.Set("X-Version", strconv.FormatInt(v, 10))
	body := make([]byte, size)
	n := copy(body, fmt.Sprintf("v%d ", v))
	copy(body[n:], o.body[n:size])
	w.Write(body)
}

// page serves the JSON corpus page of id (internal/jsoncorpus), as a
// Django REST framework list view would: application/json, the blobs'
// Cache-Control, and with -json-gzip-vary compressed (gzip -6) for a
// client that accepts gzip, with Vary: Accept-Encoding.
func (o *origin) page(w http.ResponseWriter, r *http.Request) {
	o.served.Add(1)
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	body := jsoncorpus.Page(id)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", o.cacheControl)
	if o.gzipVary {
		h.Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, 6)
			zw.Write(body)
			zw.Close()
			body = z.Bytes()
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
