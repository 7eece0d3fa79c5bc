package conn

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestWriteTimeout: a response to a client that reads none of it fails
// the handler's Write once WriteTimeout has passed, whether it is written
// at once or in pieces, so that the handler lets go of its buffers.
func TestWriteTimeout(t *testing.T) {
	for _, pieces := range []int{1, 256} {
		body := bytes.Repeat([]byte("x"), 32<<20)
		werr := make(chan error, 1)
		srv, _ := newTimedServer(t, Options{WriteTimeout: 300 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
			var err error
			for p := range pieces {
				if _, err = w.Write(body[p*len(body)/pieces : (p+1)*len(body)/pieces]); err != nil {
					break
				}
			}
			werr <- err
		})
		c := dial(t, srv)
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		select {
		case err := <-werr:
			if err == nil {
				t.Errorf("%d pieces: 32 MiB written to a client that reads nothing", pieces)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%d pieces: the write still stalls 15s after a 300ms write timeout", pieces)
		}
	}
}

// TestWriteTimeoutSlowReader: a client that reads slowly but steadily is
// not cut, though the whole response takes many write timeouts.
func TestWriteTimeoutSlowReader(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 8<<20)
	srv, _ := newTimedServer(t, Options{WriteTimeout: time.Second}, func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	})
	c := dial(t, srv)
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 64<<10)
	n := 0
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		time.Sleep(20 * time.Millisecond) // 3 MiB/s: 2.5s in all
		m, err := c.Read(buf)
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
	}
	if n < len(body) {
		t.Errorf("read %d bytes, want the whole %d-byte body and header", n, len(body))
	}
}
