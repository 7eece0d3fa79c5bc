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
)

// recordingConn is a net.Conn that records what is written to it.
type recordingConn struct {
	net.Conn // nil: only Write is used
	writes   [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) written() []byte { return bytes.Join(c.writes, nil) }

// An armed connection holds a first write that fills net/http's buffer,
// copied (net/http reuses the buffer at once), and sends it with the
// next write.
func TestCoalescingConnHoldsAFullBufferUntilTheNextWrite(t *testing.T) {
	rec := &recordingConn{}
	c := &serverConn{Conn: rec}
	first := bytes.Repeat([]byte("a"), connBufferSize)
	c.arm()
	if n, err := c.Write(first); n != len(first) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if len(rec.writes) != 0 {
		t.Fatalf("the first write went out at once (%d writes); it should be held", len(rec.writes))
	}
	copy(first, bytes.Repeat([]byte("z"), len(first))) // as bufio reuses its buffer
	rest := []byte("the rest of the body")
	if n, err := c.Write(rest); n != len(rest) || err != nil {
		t.Fatalf("second Write = %d, %v; want %d, nil (its own bytes only)", n, err, len(rest))
	}
	want := append(bytes.Repeat([]byte("a"), connBufferSize), rest...)
	if got := rec.written(); !bytes.Equal(got, want) {
		t.Fatalf("wrote %d bytes, not the held buffer and then the rest", len(got))
	}
	// Disarmed after one response: a later full buffer goes out at once.
	c.Write(first)
	if len(rec.writes) == 0 || len(rec.writes[len(rec.writes)-1]) != connBufferSize {
		t.Error("a write of an unarmed connection was held")
	}
}

// Any other first write disarms the connection: nothing is held that
// might be the last write of a response.
func TestCoalescingConnDisarmsOnAnyOtherFirstWrite(t *testing.T) {
	rec := &recordingConn{}
	c := &serverConn{Conn: rec}
	c.arm()
	c.Write(make([]byte, 100))
	c.Write(make([]byte, connBufferSize))
	if len(rec.writes) != 2 {
		t.Fatalf("%d writes reached the connection, want both", len(rec.writes))
	}
}

// Through the proxy, on one keep-alive connection, responses of every
// size around net/http's buffer arrive whole, from the origin and from
// the cache, and none waits for a next write that never comes.
func TestCoalescedResponsesArriveWhole(t *testing.T) {
	sizes := []int{1, 4000, 4095, 4096, 4097, 5000, 8191, 8192, 8193, 16 << 10, 1 << 20}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body(n))
	})
	s := newStack(t, o, nil)
	// The stack's server, with a hook to find its connections.
	srv := httptest.NewUnstartedServer(s.h)
	conns := make(chan *serverConn, 8)
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if cc, ok := c.(*serverConn); ok && st == http.StateNew {
			conns <- cc
		}
	}
	ln := Listen(srv.Listener, ListenOptions{})
	ln.Configure(srv.Config)
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
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
			want := body(n)
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
	// buffer (7 sizes, 3 GETs each) went out in one write each.
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	if got := (<-conns).coalesced.Load(); got != 7*3 {
		t.Errorf("%d responses coalesced, want 21", got)
	}
}

// body returns n bytes that differ from one offset to the next, so that
// bytes out of place show.
func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26 + i/4096%3)
	}
	return b
}
