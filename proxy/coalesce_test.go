package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy/conn"
)

// Through the proxy, on one keep-alive connection, responses of every
// size around net/http's buffer arrive whole, from the origin and from
// the cache, and none waits for a next write that never comes.
func TestCoalescedResponsesArriveWhole(t *testing.T) {
	sizes := []int{1, 4000, 4095, 4096, 4097, 5000, 8191, 8192, 8193, 16 << 10, 1 << 20}
	testCoalesced(t, sizes, "", 7*3)
}

// Bodies stored as a head and a tail (tiers.Entry.Packed), written in
// two writes, are coalesced as a body written in one is, and arrive
// whole.
func TestCoalescedTailedBodies(t *testing.T) {
	// Stored as sent (octet-stream is not compressed), with a tail:
	// heads of 4096, 4864 and 8192 bytes.
	testCoalesced(t, []int{4500, 5000, 9000}, "application/octet-stream", 3*3)
}

// testCoalesced asks for bodies of sizes, of Content-Type ctype (or
// sniffed), GET, GET, HEAD and GET on one connection, and checks that
// they arrive whole and that coalesced responses went out in one write.
func testCoalesced(t *testing.T, sizes []int, ctype string, coalesced int64) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Cache-Control", "max-age=60")
		if ctype != "" {
			w.Header().Set("Content-Type", ctype)
		}
		w.Write(testBody(n))
	})
	s := newStack(t, o, nil)
	// The stack's server, with a hook to find its connections.
	srv := httptest.NewUnstartedServer(s.h)
	conns := make(chan net.Conn, 8)
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns <- c
		}
	}
	ln := conn.Listen(srv.Listener, srv.Config, conn.Options{})
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	// Without Accept-Encoding: the sizes are those of the identity bodies
	// (a compressible body is stored gzip and decoded for this client).
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}}
	defer client.CloseIdleConnections()
	for _, n := range sizes {
		for _, method := range []string{"GET", "GET", "HEAD", "GET"} {
			req, _ := http.NewRequestWithContext(context.Background(), method, fmt.Sprintf("%s/b?n=%d", srv.URL, n), nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %d bytes: %v", method, n, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s %d bytes: reading: %v", method, n, err)
			}
			want := testBody(n)
			if method == "HEAD" {
				want = nil
			}
			if !bytes.Equal(got, want) || resp.ContentLength != int64(n) {
				t.Fatalf("%s %d bytes (%s): got %d bytes, Content-Length %d", method, n, resp.Header.Get("X-Cache"), len(got), resp.ContentLength)
			}
		}
	}
	if hits := o.hits.Load(); hits != int64(len(sizes)) {
		t.Errorf("origin served %d requests, want %d (one per size)", hits, len(sizes))
	}
	// One connection served them all, and the responses of more than the
	// buffer (3 GETs of each such size) went out in one write each.
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	if got := conn.Coalesced(<-conns); got != coalesced {
		t.Errorf("%d responses coalesced, want %d", got, coalesced)
	}
}

// testBody returns n bytes that differ from one offset to the next, so
// that bytes out of place show.
func testBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26 + i/4096%3)
	}
	return b
}
