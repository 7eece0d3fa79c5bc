package tiers

import (
	"errors"
	"io"
	"unsafe"
)

// An entry's body is one piece (body), or two (body, its head, and
// tail) when Packed split it at a size class (see Packed). Everything
// that reads a body goes through the methods here, which read both.

// SetBody sets e's body to b. It is for building an entry, before it is
// handed to anyone: b is shared, not copied, and must never be written
// afterwards (as Decode's data must not be).
func (e *Entry) SetBody(b []byte) {
	e.body = unsafe.String(unsafe.SliceData(b), len(b))
	e.tail = ""
	e.split = false
}

// BodyLen returns the length of e's body.
func (e *Entry) BodyLen() int { return len(e.body) + len(e.tail) }

// WriteBody writes e's body to w: its head then its tail, two writes
// where Packed split it (into net/http's buffered writer, which sends
// them as it would one). It copies nothing: w gets the entry's memory,
// which io.Writer's contract forbids it to modify.
func (e *Entry) WriteBody(w io.Writer) (int64, error) {
	n, err := w.Write(view(e.body))
	if err != nil || e.tail == "" {
		return int64(n), err
	}
	m, err := w.Write(view(e.tail))
	return int64(n + m), err
}

// view returns s's bytes, for an io.Writer, which must not modify them:
// io.WriteString would copy them for a writer that is not an
// io.StringWriter (a wrapped http.ResponseWriter often is not).
func view(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// AppendBody appends e's body to dst and returns the result.
func (e *Entry) AppendBody(dst []byte) []byte {
	return append(append(dst, e.body...), e.tail...)
}

// BodyReader returns a reader of e's body, which http.ServeContent can
// seek for ranges. It copies nothing.
func (e *Entry) BodyReader() *BodyReader {
	return &BodyReader{head: e.body, tail: e.tail}
}

// BodyReader reads an entry's body, head then tail, as a bytes.Reader
// reads one slice: it is an io.Reader, io.Seeker, io.ReaderAt and
// io.WriterTo. Not safe for concurrent use (but for ReadAt).
type BodyReader struct {
	head, tail string
	off        int64
}

// Len returns the number of bytes not yet read.
func (r *BodyReader) Len() int {
	if n := r.size() - r.off; n > 0 {
		return int(n)
	}
	return 0
}

func (r *BodyReader) size() int64 { return int64(len(r.head) + len(r.tail)) }

// Read reads from the head, then from the tail.
func (r *BodyReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes from off on, io.EOF if fewer remain.
func (r *BodyReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("tiers.BodyReader.ReadAt: negative offset")
	}
	if off >= r.size() {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(r.head)) {
		n = copy(p, r.head[off:])
	}
	if n < len(p) {
		n += copy(p[n:], r.tail[max(off+int64(n)-int64(len(r.head)), 0):])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek sets the offset of the next Read, as io.Seeker says.
func (r *BodyReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size() + offset
	default:
		return 0, errors.New("tiers.BodyReader.Seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("tiers.BodyReader.Seek: negative position")
	}
	r.off = abs
	return abs, nil
}

// WriteTo writes what remains to w, as io.Copy uses it: one write per
// piece, copying nothing.
func (r *BodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.off < r.size() {
		var s string
		if r.off < int64(len(r.head)) {
			s = r.head[r.off:]
		} else {
			s = r.tail[r.off-int64(len(r.head)):]
		}
		n, err := w.Write(view(s))
		r.off += int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
		if n < len(s) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}
