package proxy

import (
	"net/http"
	"net/textproto"
	"sync"
)

// Informational responses: the origin's 1xx responses reach the client of
// the fill's leader, while the fill runs on another goroutine.

// interimWriter forwards the origin's informational (1xx) responses to the
// client while the fill runs on another goroutine, until close.
type interimWriter struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	closed bool
}

func (iw *interimWriter) write(code int, hdr textproto.MIMEHeader) error {
	if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
		return nil
	}
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if iw.closed {
		return nil
	}
	// Write through wrappers (Gin's buffers the status until the final
	// write) to the connection's own writer.
	w := iw.w
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	h := w.Header()
	for k, v := range hdr {
		h[k] = v
	}
	w.WriteHeader(code)
	// The header map is sent again with the final response: the 1xx's
	// fields must not be.
	for k := range hdr {
		delete(h, k)
	}
	return nil
}

// close stops forwarding; the caller owns the ResponseWriter again.
func (iw *interimWriter) close() {
	iw.mu.Lock()
	iw.closed = true
	iw.mu.Unlock()
}
