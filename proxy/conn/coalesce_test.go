package conn

import (
	"bytes"
	"net"
	"testing"
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

// body returns n bytes that differ from one offset to the next, so that
// bytes out of place show.
func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26 + i/4096%3)
	}
	return b
}
