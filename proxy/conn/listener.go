// Package conn is cacheproxy's connection layer: a net.Listener whose
// connections keep the header, idle and write timeouts themselves, with
// one goroutine, rather than through net/http's per-request deadlines, and
// send a large response's two writes as one writev (see Arm). It knows
// nothing of caching.
package conn

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures Listen.
type Options struct {
	// HeaderTimeout bounds the time a client may take to send a
	// request's header: from the connection's start for its first
	// request, from the first bytes of each later one. Zero means no
	// limit.
	HeaderTimeout time.Duration
	// IdleTimeout bounds the time a kept-alive connection may wait for
	// its next request. Zero means no limit.
	IdleTimeout time.Duration
	// WriteTimeout bounds the time a write to a client may stall: a
	// connection whose client has read nothing of a response for that
	// long is closed (reset), and the handler's Write fails, so that it
	// lets go of what it holds. A write progresses each time the kernel
	// takes another writeChunk bytes of it (as the client drains the
	// socket's buffers), so a client that reads slowly but steadily is
	// not cut (nginx's send_timeout). Zero means no limit.
	WriteTimeout time.Duration
	// MaxConns bounds the client connections open at once. A connection
	// accepted past it is answered at once with a short 503 (with
	// Connection: close and Retry-After) and closed, never served nor
	// left waiting; the connections already open are not affected. Zero
	// means no limit.
	MaxConns int
}

// Listener is the net.Listener an http.Server serving the proxy should
// accept from. Its connections coalesce the two writes of a large
// response (see connBufferSize), and are held to the header, idle and
// write timeouts of its Options.
//
// Those timeouts are what http.Server's ReadHeaderTimeout and IdleTimeout
// would enforce, but net/http does it with read deadlines that arm and
// stop runtime timers twice a request, which cost 1-2% of the CPU of a
// 1 KiB L1 hit. Here one goroutine looks at every connection a few times
// a second instead, and a request costs a few atomic loads and stores.
//
// Serve it from the http.Server given to Listen, whose ReadHeaderTimeout,
// ReadTimeout and IdleTimeout are left zero. Close stops the goroutine.
type Listener struct {
	net.Listener
	opts Options

	// now is a coarse clock, in Unix nanoseconds, advanced every tick
	// by sweep; connections note when their phase began by it.
	now atomic.Int64

	mu    sync.Mutex
	conns map[*serverConn]struct{}

	live     atomic.Int64 // connections accepted and not yet closed
	refused  atomic.Int64 // connections refused past MaxConns, ever
	refusing atomic.Int64 // refusals being written now

	stop      chan struct{}
	closeOnce sync.Once
}

// Listen returns ln wrapped as a Listener for srv to serve, and sets srv's
// ConnContext and ConnState hooks, which the Listener needs (see
// Listener). Hooks srv already has still run, after the Listener's.
func Listen(ln net.Listener, srv *http.Server, opts Options) *Listener {
	l := listen(ln, opts)
	l.configure(srv)
	return l
}

func listen(ln net.Listener, opts Options) *Listener {
	l := &Listener{
		Listener: ln,
		opts:     opts,
		conns:    make(map[*serverConn]struct{}),
		stop:     make(chan struct{}),
	}
	l.now.Store(time.Now().UnixNano())
	if tick := l.tick(); tick > 0 {
		go l.sweep(tick)
	}
	return l
}

// tick returns how often sweep looks at the connections: a tenth of the
// shorter timeout, between 10 ms and 1 s. Zero means no timeouts.
func (l *Listener) tick() time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{l.opts.HeaderTimeout, l.opts.IdleTimeout, l.opts.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	if d <= 0 {
		return 0
	}
	return min(max(d/10, 10*time.Millisecond), time.Second)
}

// Accept returns the next connection, wrapped. Connections past
// Options.MaxConns are refused (see refuse) and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	for err == nil && l.opts.MaxConns > 0 && l.live.Load() >= int64(l.opts.MaxConns) {
		l.refuse(c)
		c, err = l.Listener.Accept()
	}
	if err != nil {
		return nil, err
	}
	l.live.Add(1)
	sc := &serverConn{Conn: c, l: l}
	sc.since.Store(l.now.Load())
	l.mu.Lock()
	l.conns[sc] = struct{}{}
	l.mu.Unlock()
	return sc, nil
}

// Open returns the number of connections accepted and not yet closed
// (hijacked ones included, until their handler closes them).
func (l *Listener) Open() int64 { return l.live.Load() }

// Refused returns the number of connections refused past
// Options.MaxConns since the Listener started.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// busyResponse is the whole answer to a connection past MaxConns.
const busyResponse = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: 29\r\n\r\n" +
	"too many connections, retry\r\n"

// The bounds of refusals: at most maxRefusing are written at once, each
// for at most refuseLinger; any more are closed without an answer.
const (
	maxRefusing  = 64
	refuseLinger = time.Second
)

// refuse answers c, a connection past MaxConns, with busyResponse and
// closes it. The answer is sent before the request is read; what the
// client sends is then read and dropped for up to refuseLinger (until it
// closes), so that closing c does not reset the connection before the
// client has read the 503.
func (l *Listener) refuse(c net.Conn) {
	l.refused.Add(1)
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := io.WriteString(c, busyResponse); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// Close closes the listener and stops the timeouts' goroutine. The
// connections already accepted stay open (http.Server closes them).
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.stop) })
	return l.Listener.Close()
}

// configure sets srv's ConnContext and ConnState hooks, which let the
// handler find a request's connection and tell l when a connection
// starts serving a request and when it goes idle.
func (l *Listener) configure(srv *http.Server) {
	if prev := srv.ConnContext; prev != nil {
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return prev(connContext(ctx, c), c)
		}
	} else {
		srv.ConnContext = connContext
	}
	if prev := srv.ConnState; prev != nil {
		srv.ConnState = func(c net.Conn, state http.ConnState) {
			l.connState(c, state)
			prev(c, state)
		}
	} else {
		srv.ConnState = l.connState
	}
}

// connState is the http.Server ConnState hook of configure.
func (l *Listener) connState(c net.Conn, state http.ConnState) {
	sc, ok := c.(*serverConn)
	if !ok {
		return
	}
	switch state {
	case http.StateActive:
		sc.phase.Store(phaseActive)
	case http.StateIdle:
		sc.since.Store(l.now.Load())
		sc.phase.Store(phaseIdle)
	case http.StateHijacked:
		// No longer net/http's: the handler's to time out. (A closed
		// connection was forgotten by its Close, which net/http calls
		// before it reports StateClosed.)
		l.forget(sc)
	}
}

func (l *Listener) forget(c *serverConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// sweep advances the clock every tick and closes the connections that
// have been reading a header, or idle, for longer than allowed, until
// Close.
func (l *Listener) sweep(tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var expired []*serverConn
	for {
		select {
		case now := <-t.C:
			l.now.Store(now.UnixNano())
			expired = l.expired(now.UnixNano(), int64(tick), expired[:0])
			for _, c := range expired {
				if tc, ok := c.Conn.(*net.TCPConn); ok && c.writing.Load() != 0 {
					// A stalled write: reset, so that the kernel drops
					// the unsent bytes too.
					tc.SetLinger(0)
				}
				// The serving goroutine's read or write fails and
				// net/http closes the connection, as its own deadline
				// would have done.
				c.Conn.Close()
			}
			clear(expired)
		case <-l.stop:
			return
		}
	}
}

// expired appends to dst the connections past their timeout at now and
// forgets them. A phase's start was noted by the coarse clock, up to a
// tick before it really began, so a connection expires a tick after its
// timeout as noted: never before the timeout, at most two ticks after.
func (l *Listener) expired(now, tick int64, dst []*serverConn) []*serverConn {
	header, idle, write := int64(l.opts.HeaderTimeout), int64(l.opts.IdleTimeout), int64(l.opts.WriteTimeout)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if w := c.writing.Load(); write > 0 && w != 0 && now-w > write+tick {
			dst = append(dst, c)
			delete(l.conns, c)
			continue
		}
		var limit int64
		switch c.phase.Load() {
		case phaseHeader:
			limit = header
		case phaseIdle:
			limit = idle
		default:
			continue
		}
		if limit > 0 && now-c.since.Load() > limit+tick {
			dst = append(dst, c)
			delete(l.conns, c)
		}
	}
	return dst
}

// A connection's phases, as far as its timeouts go.
const (
	phaseHeader uint32 = iota // waiting for or reading a request's header
	phaseActive               // serving a request
	phaseIdle                 // waiting for the next request
)

// serverConn is a connection accepted by a Listener.
type serverConn struct {
	net.Conn
	l *Listener

	// phase and since (by l.now) say what the connection is doing and
	// since when; the serving goroutine writes them, sweep reads them.
	phase atomic.Uint32
	since atomic.Int64
	// writing is when (by l.now) the write in progress last progressed,
	// zero when none is.
	writing atomic.Int64
	// closed is set by the first Close, which counts the connection out
	// of the Listener's open ones.
	closed atomic.Bool

	coalescer
}

// Read notes the first bytes of a request on an idle connection: from
// then on the header timeout applies. (net/http's background reads run
// only while a request is served, never while the connection is idle.)
func (c *serverConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.phase.Load() == phaseIdle {
		c.since.Store(c.l.now.Load())
		c.phase.Store(phaseHeader)
	}
	return n, err
}

// Close closes the connection and forgets it.
func (c *serverConn) Close() error {
	if c.l != nil {
		c.l.forget(c)
		if c.closed.CompareAndSwap(false, true) {
			c.l.live.Add(-1)
		}
	}
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, as net/http does before closing
// one with unread input, if the wrapped connection can. (net/http calls
// it, like Write, from the serving goroutine, after its last write: no
// write can be held then.)
func (c *serverConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// connContext is the http.Server ConnContext hook of configure.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*serverConn); ok {
		return context.WithValue(ctx, connKey{}, sc)
	}
	return ctx
}

type connKey struct{}

// writeChunk is how much of a write is sent between two notes of its
// progress, under a write timeout.
const writeChunk = 64 << 10

// writeTimed reports whether the connection's writes are timed.
func (c *serverConn) writeTimed() bool {
	return c.l != nil && c.l.opts.WriteTimeout > 0
}

// send writes p to the connection, noting its progress every writeChunk
// bytes when writes are timed.
func (c *serverConn) send(p []byte) (int, error) {
	if !c.writeTimed() {
		return c.Conn.Write(p)
	}
	n := 0
	for {
		c.writing.Store(c.l.now.Load())
		m, err := c.Conn.Write(p[n:min(len(p), n+writeChunk)])
		n += m
		if err != nil || n == len(p) {
			c.writing.Store(0)
			return n, err
		}
	}
}

// sendHeld writes held and then p to the connection, the first of p in
// one writev with held. It returns the bytes of p written.
func (c *serverConn) sendHeld(held, p []byte) (int, error) {
	first := p
	if c.writeTimed() {
		first = p[:min(len(p), writeChunk)]
		c.writing.Store(c.l.now.Load())
	}
	c.vec[0], c.vec[1] = held, first
	c.bufs = c.vec[:]
	n, err := c.bufs.WriteTo(c.Conn)
	c.vec[0], c.vec[1], c.bufs = nil, nil, nil
	c.writing.Store(0)
	n -= int64(len(held))
	if n < 0 {
		n = 0
	}
	if err != nil || len(first) == len(p) {
		return int(n), err
	}
	m, err := c.send(p[len(first):])
	return int(n) + m, err
}
