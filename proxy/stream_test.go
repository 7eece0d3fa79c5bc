package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// TestNotStorableIsStreamed: a no-store or private response reaches the
// client while the origin is still sending it, rather than once it has
// been read whole into memory.
func TestNotStorableIsStreamed(t *testing.T) {
	for _, cc := range []string{"no-store", "private, max-age=60"} {
		t.Run(cc, func(t *testing.T) {
			release := make(chan struct{})
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", cc)
				w.Write(bytes.Repeat([]byte("a"), 1<<20))
				w.(http.Flusher).Flush()
				<-release // the rest only once the client has the start
				w.Write(bytes.Repeat([]byte("b"), 1<<20))
			})
			s := newStack(t, o, nil)
			done := make(chan *http.Response, 1)
			go func() {
				resp, err := http.Get(s.srv.URL + "/n")
				if err != nil {
					t.Error(err)
					close(done)
					return
				}
				done <- resp
			}()
			var resp *http.Response
			select {
			case resp = <-done:
			case <-time.After(10 * time.Second):
				close(release)
				t.Fatal("no response header while the origin had not sent the whole body: buffered")
			}
			close(release)
			if resp == nil {
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || len(b) != 2<<20 || b[0] != 'a' || b[len(b)-1] != 'b' {
				t.Fatalf("body: %d bytes, %v", len(b), err)
			}
			if x := resp.Header.Get("X-Cache"); x != "PASS" {
				t.Errorf("X-Cache = %q", x)
			}
			if s.local.len() != 0 || s.shared.len() != 0 {
				t.Error("a response that may not be stored was stored")
			}
		})
	}
}

// TestNotStorableCollapsedWaitersFetchTheirOwn: a streamed response is
// for the client it was fetched for; a request waiting on the same fill
// gets its own.
func TestNotStorableCollapsedWaitersFetchTheirOwn(t *testing.T) {
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "fresh")
	})
	s := newStack(t, o, nil)
	key := baseKey(s.h.o.KeyPrefix, "", target{path: "/c"})
	results := make(chan result, 2)
	go func() { results <- s.get(t, "/c") }()
	<-entered
	await.Until(t, 10*time.Second, "the first request on the fill", func() bool { return s.h.flights.waiting(key) == 1 })
	go func() { results <- s.get(t, "/c") }()
	await.Until(t, 10*time.Second, "the second request on the fill", func() bool { return s.h.flights.waiting(key) == 2 })
	close(release)
	for range 2 {
		if r := <-results; r.status != 200 || r.body != "fresh" {
			t.Errorf("got %d %q", r.status, r.body)
		}
	}
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin requests = %d, want 2 (one each)", n)
	}
}

// TestStreamedConditional: a streamed 200 still answers a matching
// conditional request with 304, as a stored one would.
func TestStreamedConditional(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Etag", `"v1"`)
		io.WriteString(w, "body")
	})
	s := newStack(t, o, nil)
	if r := s.get(t, "/e", "If-None-Match", `"v1"`); r.status != http.StatusNotModified || r.body != "" {
		t.Errorf("matching If-None-Match: %d %q, want 304", r.status, r.body)
	}
	if r := s.get(t, "/e", "If-None-Match", `"v0"`); r.status != 200 || r.body != "body" {
		t.Errorf("other If-None-Match: %d %q, want 200", r.status, r.body)
	}
	if r := s.do(t, http.MethodHead, "/e"); r.status != 200 || r.body != "" {
		t.Errorf("HEAD: %d %q", r.status, r.body)
	}
}

// TestInflightBudget: a storable response that does not fit in what is
// left of MaxInflightBytes is streamed whole and not stored, with or
// without a Content-Length; one that fits is stored; the budget is given
// back either way.
func TestInflightBudget(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		body := bytes.Repeat([]byte("0123456789abcdef"), n/16)
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Query().Has("chunked") {
			// No Content-Length: flushed in parts.
			for len(body) > 0 {
				k := min(len(body), 10000)
				w.Write(body[:k])
				w.(http.Flusher).Flush()
				body = body[k:]
			}
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	s := newStack(t, o, func(opts *Options) { opts.MaxInflightBytes = 64 << 10 })
	for _, tt := range []struct {
		path   string
		n      int
		stored bool
	}{
		{"/b?n=32768", 32 << 10, true},
		{"/b?n=32768&chunked", 32 << 10, true},
		{"/b?n=262144", 256 << 10, false},
		{"/b?n=262144&chunked", 256 << 10, false},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := s.get(t, tt.path)
			if r.status != 200 || len(r.body) != tt.n || r.body[:16] != "0123456789abcdef" {
				t.Fatalf("got %d, %d bytes", r.status, len(r.body))
			}
			if tt.stored {
				wantXCache(t, r, "MISS")
			} else {
				wantXCache(t, r, "PASS")
			}
			r = s.get(t, tt.path)
			if tt.stored {
				wantXCache(t, r, "HIT-L1")
			} else {
				wantXCache(t, r, "PASS")
			}
			if len(r.body) != tt.n {
				t.Fatalf("second: %d bytes", len(r.body))
			}
			if used := s.h.inflight.used.Load(); used != 0 {
				t.Errorf("budget in use after the fill: %d bytes", used)
			}
		})
	}
}

// TestTruncatedBufferedBody: an origin body cut short while a fill reads
// it is a 502, and is not stored.
func TestTruncatedBufferedBody(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", "100000")
		}
		w.Write(bytes.Repeat([]byte("x"), 50000))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the origin's connection breaks
	})
	s := newStack(t, o, nil)
	for _, p := range []string{"/length", "/chunked"} {
		r := s.get(t, p)
		if r.status != http.StatusBadGateway {
			t.Errorf("%s: status %d with %d bytes, want 502", p, r.status, len(r.body))
		}
	}
	if s.local.len() != 0 || s.shared.len() != 0 {
		t.Error("a truncated body was stored")
	}
}

// TestTruncatedStreamAborts: an origin body cut short while it is streamed
// (too large to store, not storable, or passed through) aborts the
// client's connection: the client sees an error, not a complete response.
func TestTruncatedStreamAborts(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nostore" {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		for range 4 {
			w.Write(bytes.Repeat([]byte("x"), 32<<10))
			w.(http.Flusher).Flush()
		}
		panic(http.ErrAbortHandler)
	})
	s := newStack(t, o, func(opts *Options) { opts.MaxObjectBytes = 64 << 10 })
	for _, tt := range []struct{ method, path string }{
		{"GET", "/large"},
		{"GET", "/nostore"},
		{"POST", "/post"},
	} {
		req, _ := http.NewRequest(tt.method, s.srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s %s: a clean %d response of %d bytes, want an error", tt.method, tt.path, resp.StatusCode, n)
		}
	}
	if s.local.len() != 0 || s.shared.len() != 0 {
		t.Error("a truncated body was stored")
	}
}
