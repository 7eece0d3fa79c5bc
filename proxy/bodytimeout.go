package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// clientBody is the body of a request forwarded to the origin. Every Read
// must return within a timeout (the client's connection gets a read
// deadline for it), and the first read error is kept, so that the
// passthrough's error handler can tell a client that stalled or sent a
// malformed body from an origin that failed.
type clientBody struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration

	mu  sync.Mutex
	err error // the first read error but io.EOF
}

// Read reads from the client with a deadline, cleared once the body ends:
// net/http then reads the connection in the background, and must not hit
// it.
func (b *clientBody) Read(p []byte) (int, error) {
	deadline := b.rc.SetReadDeadline(time.Now().Add(b.timeout)) == nil
	n, err := b.body.Read(p)
	if err != nil {
		if deadline {
			b.rc.SetReadDeadline(time.Time{})
		}
		if err != io.EOF {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
		}
	}
	return n, err
}

// Close closes the body. The Transport closes it once it is done with it.
func (b *clientBody) Close() error {
	return b.body.Close()
}

// failed returns the first error reading the body, or nil.
func (b *clientBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// clientBodyKey is the context key of a request's clientBody: the
// ReverseProxy hands its error handler the outgoing request, whose body
// it has wrapped, but whose context derives from the incoming one.
type clientBodyKey struct{}

// withBodyTimeout returns r with its body, if it has one, read under the
// body timeout. r itself is not modified.
func (h *Handler) withBodyTimeout(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	b := &clientBody{body: r.Body, rc: http.NewResponseController(w), timeout: h.live.Load().bodyTimeout}
	out := r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, b))
	out.Body = b
	return out
}

// clientBodyStatus returns the status that answers r when reading its body
// failed, 0 if it did not: 408 for a body that stalled, 400 for any other
// failure (a malformed chunked encoding, a client that went away).
func clientBodyStatus(r *http.Request) (int, error) {
	b, ok := r.Context().Value(clientBodyKey{}).(*clientBody)
	if !ok {
		return 0, nil
	}
	err := b.failed()
	if err == nil {
		return 0, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusRequestTimeout, err
	}
	return http.StatusBadRequest, err
}

// writeClientError answers r with status after its body could not be
// read. It is the client's doing, not the origin's: logged at debug only,
// since any client can cause it.
func (h *Handler) writeClientError(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.o.Logger.Debug("request body failed", "method", r.Method, "url", r.URL.String(), "status", status, "err", err)
	w.Header().Set("Connection", "close")
	msg := "malformed or incomplete request body\n"
	if status == http.StatusRequestTimeout {
		msg = "request body timed out\n"
	}
	writePlainError(w, bypassed.xcache, status, msg)
}
