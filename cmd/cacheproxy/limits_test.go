package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/promtest"
)

// metric returns the value of the unlabelled metric name in the proxy's
// /metrics.
func metric(t *testing.T, s *server, name string) float64 {
	t.Helper()
	_, _, body := fetch(t, "GET", s.adminURL+"/metrics", "")
	v, ok := promtest.Parse(t, body).Value(name)
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	return v
}

// dialProxy opens a raw connection to the proxy, closed at the end of the
// test.
func dialProxy(t *testing.T, s *server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends req on c and reads the response whole.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestServeMaxConns: with -max-conns 20 and 20 idle connections open, a
// new connection is answered 503 and closed at once, not left hanging
// until the header timeout frees a slot; the connections open keep
// working; the refusals are counted. Without the flag the limit is
// derived from the open-file limit and logged.
func TestServeMaxConns(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	s := startServer(t, nil, "-origin", origin.URL, "-max-conns", "20", "-header-timeout", "1m")
	held := make([]net.Conn, 20)
	for i := range held {
		held[i] = dialProxy(t, s)
	}
	await.Until(t, 10*time.Second, "20 client connections open", func() bool {
		return metric(t, s, "cacheproxy_client_connections") == 20
	})
	start := time.Now()
	c := dialProxy(t, s)
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close {
		t.Errorf("the 21st connection: %d %q (close %v)", resp.StatusCode, body, resp.Close)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the 21st connection answered after %v", took)
	}
	if n := metric(t, s, "cacheproxy_client_connections_refused_total"); n != 1 {
		t.Errorf("refused %v, want 1", n)
	}
	br := bufio.NewReader(held[3])
	for range 2 {
		if resp, body := roundTrip(t, held[3], br, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("an open connection: %d %q", resp.StatusCode, body)
		}
	}

	s2 := startServer(t, nil, "-origin", origin.URL)
	await.Until(t, 10*time.Second, "the limits logged", func() bool {
		return strings.Contains(s2.logs.String(), `"msg":"connection limits"`)
	})
	for _, line := range strings.Split(s2.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"connection limits"`) && (strings.Contains(line, `"max-conns":0`) || strings.Contains(line, `"max-origin-conns":0`)) {
			t.Errorf("no default limit: %s", line)
		}
	}
}

// TestServeMaxOriginConns: with -max-origin-conns 2 held by requests the
// origin has not answered, a miss and a POST wait -origin-queue-timeout
// and get 503 with Retry-After; clients trickling POST bodies hold no
// origin slot (-request-buffering, on by default), so other POSTs pass.
func TestServeMaxOriginConns(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	var inside atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hang" {
			inside.Add(1)
			<-release
		}
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	s := startServer(t, nil, "-origin", origin.URL, "-max-origin-conns", "2", "-origin-queue-timeout", "1s")

	// Ten clients trickle their bodies: the origin is not asked yet.
	for range 10 {
		c := dialProxy(t, s)
		io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	}
	for i := range 3 {
		code, _, body := fetch(t, "POST", s.proxyURL+"/orders/"+strconv.Itoa(i), "")
		if code != 200 {
			t.Fatalf("a POST beside 10 trickling ones: %d %q", code, body)
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer open()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			if resp, err := client.Get(s.proxyURL + "/hang"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	await.Until(t, 10*time.Second, "two requests at the origin", func() bool { return inside.Load() == 2 })
	for _, m := range []string{"GET", "POST"} {
		code, hdr, body := fetch(t, m, s.proxyURL+"/other", "")
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Errorf("%s with every origin slot held: %d %q (Retry-After %q)", m, code, body, hdr.Get("Retry-After"))
		}
	}
	if n := metric(t, s, "cacheproxy_origin_busy_total"); n != 2 {
		t.Errorf("cacheproxy_origin_busy_total %v, want 2", n)
	}
	open()
	wg.Wait()
	if code, _, _ := fetch(t, "GET", s.proxyURL+"/other", ""); code != 200 {
		t.Errorf("after the origin answered: %d", code)
	}
}

// TestServeRanges: a Range of 20,000 parts on a stored 1 MiB entry gets
// the whole 200 quickly, not a multipart answer of many MB; a Range on a
// response that is not stored (no-store, larger than -max-object-bytes)
// gets its 206.
func TestServeRanges(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Type", "application/octet-stream; a-long-parameter-that-every-part-repeats="+strings.Repeat("x", 500))
			w.Write(big)
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, "0123456789")
		case "/huge":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		}
	}))
	defer origin.Close()
	s := startServer(t, nil, "-origin", origin.URL, "-max-object-bytes", "512KiB")
	// /big is 1 MiB: over the bound; a second instance with a larger one
	// stores it.
	s2 := startServer(t, nil, "-origin", origin.URL, "-max-object-bytes", "4MiB")
	if code, _, body := fetch(t, "GET", s2.proxyURL+"/big", ""); code != 200 || len(body) != len(big) {
		t.Fatalf("fill: %d, %d bytes", code, len(body))
	}
	c := dialProxy(t, s2)
	many := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", 20000), ",")
	start := time.Now()
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET /big HTTP/1.1\r\nHost: x\r\nRange: "+many+"\r\n\r\n")
	if resp.StatusCode != 200 || len(body) != len(big) || resp.Header.Get("X-Cache") != "HIT-L1" {
		t.Errorf("20,000 ranges: %d, %d bytes, %s", resp.StatusCode, len(body), resp.Header.Get("X-Cache"))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("20,000 ranges took %v", took)
	}
	for _, c := range []struct {
		path, rng, body, cr string
	}{
		{"/nostore", "bytes=2-4", "234", "bytes 2-4/10"},
		{"/huge", "bytes=16-31", string(big[16:32]), "bytes 16-31/1048576"},
	} {
		req, _ := http.NewRequest("GET", s.proxyURL+c.path, nil)
		req.Header.Set("Range", c.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(b) != c.body || resp.Header.Get("Content-Range") != c.cr {
			t.Errorf("%s %s: %d, %d bytes, Content-Range %q (%s)", c.path, c.rng, resp.StatusCode, len(b), resp.Header.Get("Content-Range"), resp.Header.Get("Cache-Status"))
		}
	}
}
