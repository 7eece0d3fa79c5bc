package conn

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// newTimedServer serves handler from a Listener with the given timeouts.
func newTimedServer(t *testing.T, opts Options, handler http.HandlerFunc) (*httptest.Server, *Listener) {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	ln := Listen(srv.Listener, srv.Config, opts)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, ln
}

func dial(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed fails unless the server closes c within a generous bound.
// It returns how long that took.
func waitClosed(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server did not close the connection within 10s")
	}
	return time.Since(start)
}

// get sends a GET on c and reads the response.
func get(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// open returns the number of connections l tracks.
func (l *Listener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// A client that starts a request but never finishes its header is cut
// off after the header timeout, not left for the (long) idle timeout.
func TestListenerHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv, _ := newTimedServer(t, Options{HeaderTimeout: timeout, IdleTimeout: time.Hour}, ok)
	c := dial(t, srv)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	if took := waitClosed(t, c); took < timeout-50*time.Millisecond {
		t.Errorf("closed after %v, before the header timeout of %v", took, timeout)
	}
}

// The header timeout also bounds a connection that opens and sends
// nothing.
func TestListenerHeaderTimeoutOfASilentConnection(t *testing.T) {
	srv, _ := newTimedServer(t, Options{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour}, ok)
	waitClosed(t, dial(t, srv))
}

// A kept-alive connection is closed after the idle timeout.
func TestListenerIdleTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv, _ := newTimedServer(t, Options{HeaderTimeout: time.Hour, IdleTimeout: timeout}, ok)
	c := dial(t, srv)
	get(t, c, bufio.NewReader(c))
	if took := waitClosed(t, c); took < timeout-50*time.Millisecond {
		t.Errorf("closed after %v idle, before the idle timeout of %v", took, timeout)
	}
}

// On a kept-alive connection, the header timeout runs from the first
// bytes of the next request: a client that trickles one never gets the
// idle timeout's hour.
func TestListenerHeaderTimeoutAfterIdle(t *testing.T) {
	srv, _ := newTimedServer(t, Options{HeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour}, ok)
	c := dial(t, srv)
	get(t, c, bufio.NewReader(c))
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	waitClosed(t, c)
}

// Neither timeout ever cuts a request being served, however long it
// takes, nor a connection that comes back within the idle timeout.
func TestListenerLeavesActiveConnections(t *testing.T) {
	srv, _ := newTimedServer(t, Options{HeaderTimeout: 100 * time.Millisecond, IdleTimeout: 2 * time.Second},
		func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("slow") {
				time.Sleep(time.Second)
			}
			io.WriteString(w, "ok")
		})
	c := dial(t, srv)
	br := bufio.NewReader(c)
	for i := range 3 {
		if _, err := io.WriteString(c, "GET /?slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("request %d: body %q", i, b)
		}
		time.Sleep(200 * time.Millisecond) // idle, longer than the header timeout
	}
}

// The Listener forgets connections as they close, whoever closes them,
// and stops its goroutine on Close.
func TestListenerForgetsClosedConnections(t *testing.T) {
	srv, ln := newTimedServer(t, Options{HeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Hour}, ok)
	for range 5 {
		c := dial(t, srv)
		get(t, c, bufio.NewReader(c))
		c.Close()
	}
	dial(t, srv) // silent: closed by the header timeout
	deadline := time.Now().Add(10 * time.Second)
	for ln.open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the listener still tracks %d connections", ln.open())
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Close()
	select {
	case <-ln.stop:
	default:
		t.Error("Close did not stop the timeouts' goroutine")
	}
}

// Without timeouts no goroutine runs; with the defaults it ticks every
// second.
func TestListenerTick(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want time.Duration
	}{
		{Options{}, 0},
		{Options{HeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}, time.Second},
		{Options{IdleTimeout: 300 * time.Millisecond}, 30 * time.Millisecond},
		{Options{HeaderTimeout: time.Millisecond}, 10 * time.Millisecond},
	} {
		if got := (&Listener{opts: c.opts}).tick(); got != c.want {
			t.Errorf("tick for %+v = %v, want %v", c.opts, got, c.want)
		}
	}
}

// Past MaxConns, a new connection is answered 503 and closed at once,
// whether or not it has sent its request, never left waiting; the
// connections already open keep working, and once some close, new ones
// are served again.
func TestListenerMaxConns(t *testing.T) {
	const limit = 20
	srv, ln := newTimedServer(t, Options{MaxConns: limit, HeaderTimeout: time.Hour, IdleTimeout: time.Hour}, ok)
	held := make([]net.Conn, limit)
	for i := range held {
		held[i] = dial(t, srv)
	}
	await.Until(t, 10*time.Second, "20 connections open", func() bool { return ln.Open() == limit })

	refused := func(send bool) {
		t.Helper()
		c := dial(t, srv)
		if send {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("connection past the limit: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
			t.Errorf("past the limit: %d, Retry-After %q, close %v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Error("more after the 503")
		}
	}
	refused(false)
	refused(true)
	if n := ln.Refused(); n != 2 {
		t.Errorf("Refused() = %d, want 2", n)
	}
	// Many at once: each answered or closed, none left hanging.
	done := make(chan error, 3*maxRefusing)
	for range cap(done) {
		go func() {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				done <- nil // the backlog is full: refused by the kernel
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				done <- err
				return
			}
			done <- nil
		}()
	}
	for range cap(done) {
		if err := <-done; err != nil {
			t.Fatalf("a connection past the limit was left open: %v", err)
		}
	}
	// The connections open before keep working.
	br := bufio.NewReader(held[0])
	get(t, held[0], br)
	get(t, held[0], br)
	// Once some close, new connections are served.
	for _, c := range held[1:6] {
		c.Close()
	}
	await.Until(t, 10*time.Second, "15 connections open", func() bool { return ln.Open() == limit-5 })
	c := dial(t, srv)
	get(t, c, bufio.NewReader(c))
}
