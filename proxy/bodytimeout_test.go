package proxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/syncbuf"
)

// rawRequest sends req on a new connection to s and returns the response,
// failing if none comes within 10s.
func rawRequest(t *testing.T, s *stack, req string, more func(net.Conn)) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if more != nil {
		go more(c)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response within 10s: %v", err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp
}

// TestBodyTimeout: a client that stops sending a request body gets 408
// once BodyTimeout has passed without a byte, and the origin's request is
// aborted rather than left waiting.
func TestBodyTimeout(t *testing.T) {
	originErr := make(chan error, 1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		originErr <- err
	})
	s := newStack(t, o, func(opts *Options) { opts.BodyTimeout = 300 * time.Millisecond })
	resp := rawRequest(t, s, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\na", nil)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	select {
	case err := <-originErr:
		if err == nil {
			t.Error("the origin read the whole body")
		}
	case <-time.After(10 * time.Second):
		t.Error("the origin request was not aborted within 10s")
	}
}

// TestBodyTimeoutBetweenReads: the timeout is between reads, not for the
// whole body: a client sending steadily, however long it takes, is served.
func TestBodyTimeoutBetweenReads(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	s := newStack(t, o, func(opts *Options) { opts.BodyTimeout = 2 * time.Second })
	resp := rawRequest(t, s, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", func(c net.Conn) {
		for range 10 {
			time.Sleep(300 * time.Millisecond) // 3s in all
			c.Write([]byte("a"))
		}
	})
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

// TestMalformedRequestBody: a request body whose chunked framing is
// invalid is the client's fault: 400, not 502, and nothing above debug in
// the log.
func TestMalformedRequestBody(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	})
	logs := new(syncbuf.Buffer)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newStack(t, o, func(opts *Options) { opts.Logger = logger })
	for _, body := range []string{"zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n"} {
		resp := rawRequest(t, s, "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+body, nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", body, resp.StatusCode)
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("logged: %s", line)
		}
	}
}
