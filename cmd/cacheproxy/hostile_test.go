package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/promtest"
)

// heapInUse returns the proxy's go_memstats_heap_inuse_bytes.
func heapInUse(t *testing.T, s *server) float64 {
	t.Helper()
	_, _, body := fetch(t, "GET", s.adminURL+"/metrics", "")
	v, ok := promtest.Parse(t, body).Value("go_memstats_heap_inuse_bytes")
	if !ok {
		t.Fatal("no go_memstats_heap_inuse_bytes in /metrics")
	}
	return v
}

// TestServeStalledClientsBounded: clients that ask for a large no-store
// response and never read it do not make the proxy hold the response for
// each of them (it is streamed, not buffered), and after -write-timeout
// they are disconnected and the origin's responses let go.
func TestServeStalledClientsBounded(t *testing.T) {
	const clients, size = 20, 7 << 20
	body := bytes.Repeat([]byte("x"), size)
	var started, finished atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		defer finished.Add(1)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	}))
	defer origin.Close()
	s := startServer(t, nil, "-origin", origin.URL, "-write-timeout", "3s", "-l1-max-bytes", "16MiB")
	addr := strings.TrimPrefix(s.proxyURL, "http://")
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		fmt.Fprintf(c, "GET /big?i=%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		conns[i] = c
	}
	deadline := time.Now().Add(20 * time.Second)
	for started.Load() < clients {
		if time.Now().After(deadline) {
			t.Fatalf("the origin got %d of %d requests", started.Load(), clients)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time enough to buffer 7 MiB each, if it did
	if heap := heapInUse(t, s); heap > 64<<20 {
		t.Errorf("heap in use %.0f MiB with %d stalled clients of a %d MiB no-store response: buffered", heap/(1<<20), clients, size>>20)
	}

	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client %d: still connected 30s after a 3s write timeout", i)
		}
		if n >= size {
			t.Errorf("client %d got the whole response: %d bytes", i, n)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for finished.Load() < clients {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d origin responses still held", clients-finished.Load(), clients)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeBodyTimeout: a POST whose body stalls gets 408 after
// -body-timeout.
func TestServeBodyTimeout(t *testing.T) {
	originDone := make(chan error, 1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		originDone <- err
	}))
	defer origin.Close()
	// Streamed bodies: a buffered one never reaches the origin at all.
	s := startServer(t, nil, "-origin", origin.URL, "-body-timeout", "300ms", "-request-buffering", "0")
	c, err := net.Dial("tcp", strings.TrimPrefix(s.proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body within 15s: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	select {
	case err := <-originDone:
		if err == nil {
			t.Error("the origin got the whole body")
		}
	case <-time.After(15 * time.Second):
		t.Error("the origin request was not aborted")
	}
}

// TestServeTruncatedOrigin: an origin body cut short reaches the client
// as an error, never as a complete response, through the Gin edge; a
// buffered one is a 502. A malformed chunked request body is a 400, and
// no warning.
func TestServeTruncatedOrigin(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/nostore" {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		if r.URL.Path == "/small" {
			w.Header().Set("Content-Length", "20000")
			w.Write(make([]byte, 10000))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		for range 4 {
			w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
		}
		panic(http.ErrAbortHandler)
	}))
	defer origin.Close()
	s := startServer(t, nil, "-origin", origin.URL, "-max-object-bytes", "64KiB")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	for _, tt := range []struct{ method, path string }{{"GET", "/large"}, {"GET", "/nostore"}, {"POST", "/post"}} {
		req, _ := http.NewRequest(tt.method, s.proxyURL+tt.path, strings.NewReader(""))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s %s: a clean %d response of %d bytes, want an error", tt.method, tt.path, resp.StatusCode, n)
		}
	}
	if code, _, _ := fetch(t, "GET", s.proxyURL+"/small", ""); code != http.StatusBadGateway {
		t.Errorf("GET /small, cut short: %d, want 502", code)
	}
	if code, _, _ := fetch(t, "GET", s.proxyURL+"/small", ""); code != http.StatusBadGateway {
		t.Errorf("GET /small again: %d, want 502 (nothing stored)", code)
	}

	c, err := net.Dial("tcp", strings.TrimPrefix(s.proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed chunked body: %d, want 400", resp.StatusCode)
	}
	time.Sleep(100 * time.Millisecond) // the log line, if any
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, "/chunky") && strings.Contains(line, `"level":"WARN"`) {
			t.Errorf("a client's malformed body logged a warning: %s", line)
		}
	}
}

// TestServeAdminLimits: profiles and traces are capped in length, and a
// tokenless admin listener answers only loopback Hosts.
func TestServeAdminLimits(t *testing.T) {
	s := startServer(t, nil, "-origin", "http://127.0.0.1:1")
	for _, q := range []string{"profile?seconds=61", "profile?seconds=3600", "trace?seconds=1e9", "trace?seconds=-1", "profile?seconds=x"} {
		if code, _, body := fetch(t, "GET", s.adminURL+"/debug/pprof/"+q, ""); code != http.StatusBadRequest {
			t.Errorf("%s: %d %q, want 400", q, code, body)
		}
	}
	if code, _, _ := fetch(t, "GET", s.adminURL+"/debug/pprof/trace?seconds=0.1", ""); code != 200 {
		t.Errorf("a 0.1s trace: %d, want 200", code)
	}
	req, _ := http.NewRequest("GET", s.adminURL+"/stats", nil)
	req.Host = "rebound.example:9090"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("tokenless admin, Host %q: %d, want 403", req.Host, resp.StatusCode)
	}
}
