package conn

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// net/http writes a response through a 4 KiB buffer per connection. For
// a body of more than that it makes two write calls: the buffer, holding
// the header and the start of the body, then the rest. On loopback and
// fast networks the second system call and the second TCP segment cost
// as much as the whole of an L1 hit's handler; nginx sends such a
// response with one writev.
//
// Listen wraps a listener's connections so that the handler can ask, for
// one response, that those two writes go out as one writev: arming the
// connection before the body's Write makes it hold a first write of
// exactly the buffer's size (copying it, since net/http reuses the
// buffer) and send it with the next write. A held write always has a
// next one: a full buffer is flushed only while more of the body waits.
// Any other first write disarms the connection, so a different buffer
// size in a future Go costs the saving, never a response.
const connBufferSize = 4 << 10

// heldBuffers holds the copies of held writes while they wait for the
// next write: one per connection in the middle of a large response.
var heldBuffers = sync.Pool{New: func() any { return new([connBufferSize]byte) }}

// coalescer is the part of a serverConn that holds one write to send it
// with the next. Only the goroutine serving the connection writes to it
// (and arms it); net/http's background reads do not touch it.
type coalescer struct {
	armed bool
	held  *[connBufferSize]byte // nil unless a write is held
	bufs  net.Buffers
	vec   [2][]byte
	// coalesced counts the writes sent together with a held one.
	coalesced atomic.Int64
}

// arm makes the connection hold its next write if that write fills
// net/http's buffer.
func (c *serverConn) arm() { c.armed = true }

func (c *serverConn) Write(p []byte) (int, error) {
	if c.armed {
		c.armed = false
		if len(p) == connBufferSize && c.held == nil {
			c.held = heldBuffers.Get().(*[connBufferSize]byte)
			copy(c.held[:], p)
			return len(p), nil
		}
	}
	if c.held == nil {
		return c.send(p)
	}
	held := c.held
	c.coalesced.Add(1)
	n, err := c.sendHeld(held[:], p)
	c.held = nil
	heldBuffers.Put(held)
	return n, err
}

// Arm arms the connection of r, if it was accepted by a Listener, for a
// body of n bytes: the header and the body then go out in one writev.
// The body may be written in one Write or several (a stored body's head
// and tail): net/http's buffer, which holds the header first, fills
// whatever the writes, so the first write to the connection is that
// full buffer, and more of the body follows it.
func Arm(r *http.Request, n int) {
	if n <= connBufferSize {
		return
	}
	if c, ok := r.Context().Value(connKey{}).(*serverConn); ok {
		c.arm()
	}
}

// Coalesced returns how many writes c, a connection accepted by a
// Listener, sent together with a held one; 0 for any other connection.
func Coalesced(c net.Conn) int64 {
	if sc, ok := c.(*serverConn); ok {
		return sc.coalesced.Load()
	}
	return 0
}
