package proxy

// The origin's share of the proxy's limits: a bound on the origin
// requests in flight (Options.MaxOriginConns), kept by the Transport that
// fills and pass-through both use, and the buffering of request bodies
// before the origin is asked (Options.RequestBuffering).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// errOriginBusy is a request that waited Options.OriginQueueWait for one
// of the Options.MaxOriginConns origin requests to end, in vain. It is
// answered 503 with Retry-After (errorStatus).
var errOriginBusy = errors.New("origin busy: every origin request slot in use")

// gatedTransport is a RoundTripper that lets at most cap(slots) requests
// be in flight through next at once: from the request until the
// response's body is closed, read to its end, or fails. A request over
// the bound waits up to wait for a slot, then fails with errOriginBusy.
// It is safe for concurrent use.
type gatedTransport struct {
	next     http.RoundTripper
	slots    chan struct{}
	wait     time.Duration
	waiting  *atomic.Int64 // requests waiting for a slot now
	rejected *atomic.Int64 // counts errOriginBusy
}

// RoundTrip takes a slot, then sends req through next.
func (g *gatedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case g.slots <- struct{}{}:
	default:
		g.waiting.Add(1)
		t := time.NewTimer(g.wait)
		select {
		case g.slots <- struct{}{}:
			t.Stop()
			g.waiting.Add(-1)
		case <-t.C:
			g.waiting.Add(-1)
			g.rejected.Add(1)
			return nil, errOriginBusy
		case <-req.Context().Done():
			t.Stop()
			g.waiting.Add(-1)
			return nil, context.Cause(req.Context())
		}
	}
	resp, err := g.next.RoundTrip(req)
	if err != nil {
		<-g.slots
		return nil, err
	}
	rel := &slotRelease{release: func() { <-g.slots }}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection: ReverseProxy needs it writable.
		resp.Body = &gatedUpgrade{gatedBody{ReadCloser: rwc, rel: rel}, rwc}
	} else {
		resp.Body = &gatedBody{ReadCloser: resp.Body, rel: rel}
	}
	return resp, nil
}

// slotRelease gives a slot back once.
type slotRelease struct {
	once    sync.Once
	release func()
}

func (s *slotRelease) do() { s.once.Do(s.release) }

// gatedBody is a response body that holds a slot of a gatedTransport
// until it is closed, read to its end or fails.
type gatedBody struct {
	io.ReadCloser
	rel *slotRelease
}

func (b *gatedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.rel.do()
	}
	return n, err
}

func (b *gatedBody) Close() error {
	err := b.ReadCloser.Close()
	b.rel.do()
	return err
}

// gatedUpgrade is the body of a 101 response: writable, as ReverseProxy
// requires of an upgraded connection.
type gatedUpgrade struct {
	gatedBody
	w io.Writer
}

func (b *gatedUpgrade) Write(p []byte) (int, error) { return b.w.Write(p) }

// gate returns t bounded to n origin requests in flight, each waiting at
// most wait for a slot; t itself if n is zero.
func (h *Handler) gate(t http.RoundTripper, n int, wait time.Duration) http.RoundTripper {
	if n <= 0 {
		return t
	}
	return &gatedTransport{next: t, slots: make(chan struct{}, n), wait: wait, waiting: &h.m.originWaiting, rejected: &h.m.originBusy}
}

// bufferRequest returns r with its body read whole before the origin is
// asked, if it is at most Options.RequestBuffering bytes and they fit in
// the in-flight budget (nginx's proxy_request_buffering): a client that
// sends its body slowly then holds no origin connection meanwhile. A
// longer body is streamed as it arrives, after what was read of it. It
// returns the budget it holds, to give back once the origin is done with
// the body, and the error reading the body, if any (the client's: see
// clientBodyStatus). r itself is not modified.
func (h *Handler) bufferRequest(r *http.Request) (*http.Request, int64, error) {
	limit := h.o.RequestBuffering
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength > limit {
		return r, 0, nil
	}
	held := limit
	if r.ContentLength >= 0 {
		held = r.ContentLength
	}
	if !h.inflight.take(held) {
		return r, 0, nil
	}
	var buf bytes.Buffer
	buf.Grow(int(min(held, 64<<10)))
	_, err := io.Copy(&buf, io.LimitReader(r.Body, limit+1))
	if err != nil {
		h.inflight.give(held)
		return r, 0, err
	}
	out := r.WithContext(r.Context())
	if int64(buf.Len()) > limit {
		// Longer than the bound: the rest streams.
		out.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(&buf, r.Body), r.Body}
		return out, held, nil
	}
	r.Body.Close()
	out.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	out.ContentLength = int64(buf.Len())
	out.TransferEncoding = nil
	return out, held, nil
}
