package proxy

import (
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// A fill buffers a response's body only when it may be stored, and only
// while the bytes that every fill in flight holds stay within a budget
// (Options.MaxInflightBytes). Whatever is not buffered is streamed to the
// one client it was fetched for, and never stored: so a slow client, or
// many, hold a copy buffer each, not a whole body.

// firstStep is what a fill first reserves, and reads into, for a body of
// unknown length; each later step doubles what it holds.
const firstStep = 16 << 10

// bufferBody reads resp's body whole if it is at most MaxObjectBytes and
// fits in the budget. It returns the body and the bytes it holds of the
// budget, to give back once the fill is done. If the body does not fit,
// it returns instead a stream of the response that starts with what was
// read, and holds that part's budget until it is written. On a read
// error, it returns the error and holds nothing: a body cut short is
// neither stored nor served.
func (h *Handler) bufferBody(resp *http.Response) (body []byte, held int64, s *streamedResponse, err error) {
	maxObject := h.live.Load().maxObject
	if n := resp.ContentLength; n >= 0 {
		if n > maxObject {
			return nil, 0, h.newStream(resp, nil, 0).why(reasonTooLarge), nil
		}
		if !h.inflight.take(n) {
			return nil, 0, h.newStream(resp, nil, 0).why(reasonInflightFull), nil
		}
		body = make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			h.inflight.give(n)
			return nil, 0, nil, err
		}
		return body, n, nil, nil
	}
	for {
		if len(body) == cap(body) {
			if int64(len(body)) > maxObject {
				return nil, 0, h.newStream(resp, body, held).why(reasonTooLarge), nil
			}
			step := max(int64(cap(body)), firstStep)
			step = min(step, maxObject+1-int64(len(body)))
			if !h.inflight.take(step) {
				return nil, 0, h.newStream(resp, body, held).why(reasonInflightFull), nil
			}
			held += step
			grown := make([]byte, len(body), int64(cap(body))+step)
			copy(grown, body)
			body = grown
		}
		n, err := resp.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			h.inflight.give(held)
			return nil, 0, nil, err
		}
	}
	if cap(body)-len(body) > len(body)/8 {
		// A stored body should waste no capacity.
		body = append([]byte(nil), body...)
	}
	return body, held, nil, nil
}

// newStream returns resp as a response to stream, starting with prefix,
// whose held bytes of the budget are given back once prefix is written
// or the stream is closed.
func (h *Handler) newStream(resp *http.Response, prefix []byte, held int64) *streamedResponse {
	s := &streamedResponse{status: resp.StatusCode, header: resp.Header, size: resp.ContentLength, prefix: prefix, body: resp.Body}
	if held > 0 {
		s.release = func() { h.inflight.give(held) }
	}
	return s
}

// why sets the reason s is streamed rather than stored, and returns s.
func (s *streamedResponse) why(detail Reason) *streamedResponse {
	s.detail = detail
	return s
}

// giveBack returns the budget s holds, once. It is safe for concurrent
// use.
func (s *streamedResponse) giveBack() {
	s.releaseOnce.Do(func() {
		if s.release != nil {
			s.release()
		}
	})
}

// copyStream writes n bytes of the body of s after its header, from
// byte skip on; n < 0 means to its end. An origin body cut short aborts
// the client's connection, so that the client sees a truncated response
// rather than a complete one.
func (h *Handler) copyStream(w http.ResponseWriter, r *http.Request, s *streamedResponse, skip, n int64) {
	prefix := s.prefix
	s.prefix = nil
	k := min(skip, int64(len(prefix)))
	prefix, skip = prefix[k:], skip-k
	if n >= 0 && int64(len(prefix)) > n {
		prefix = prefix[:n]
	}
	if _, err := w.Write(prefix); err != nil {
		return
	}
	if n >= 0 {
		n -= int64(len(prefix))
	}
	prefix = nil
	s.giveBack()
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	for n != 0 {
		m, rerr := s.body.Read(buf[:])
		data := buf[:m]
		k := min(skip, int64(len(data)))
		data, skip = data[k:], skip-k
		if n >= 0 && int64(len(data)) > n {
			data = data[:n]
		}
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return // the client has gone
			}
			if n >= 0 {
				n -= int64(len(data))
			}
		}
		if rerr == io.EOF && n <= 0 {
			return
		}
		if rerr == io.EOF {
			rerr = io.ErrUnexpectedEOF // shorter than its Content-Length
		}
		if rerr != nil {
			if r.Context().Err() != nil {
				return // the client has gone: the body was closed for it
			}
			h.o.Logger.Warn("origin body cut short", "url", r.URL.String(), "err", rerr)
			// As httputil.ReverseProxy does: net/http closes the
			// connection without ending the response.
			panic(http.ErrAbortHandler)
		}
	}
}

// copyBuffers are copyStream's buffers.
var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// streamNotModified reports whether a streamed 200 response answers r's
// conditional header fields with 304, as a stored one would.
func streamNotModified(r *http.Request, s *streamedResponse) bool {
	if s.status != http.StatusOK {
		return false
	}
	if _, ok := r.Header["If-None-Match"]; !ok {
		if _, ok := r.Header["If-Modified-Since"]; !ok {
			return false
		}
	}
	return notModified(r, tiers.MakeHeader(s.header))
}

// streamedResponse is an origin response that is not stored, handed to the
// one client it was fetched for.
type streamedResponse struct {
	status int
	header http.Header
	size   int64         // the body's length; -1 if unknown
	prefix []byte        // the part already read
	body   io.ReadCloser // the rest
	cancel context.CancelFunc

	release     func() // gives back the budget prefix holds; nil if none
	releaseOnce sync.Once

	detail Reason // why it is not stored, for Cache-Status
}

func (s *streamedResponse) close() {
	s.body.Close()
	s.giveBack()
	if s.cancel != nil {
		s.cancel()
	}
}
