package tiers

import (
	"bytes"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// tailLengths returns body lengths from 1 KiB to 40 KiB: every length
// within a few bytes of several size classes (and of 40 KiB, past them,
// in pages), and a stride through the rest.
func tailLengths() []int {
	var ns []int
	for _, c := range []int{1024, 1152, 2048, 2304, 2688, 3072, 4096, 4864, 8192, 16384, 32768, 40960} {
		for n := c - 130; n <= c+130; n++ {
			ns = append(ns, n)
		}
	}
	for n := 1 << 10; n <= 40<<10; n += 97 {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

// oldLayoutBytes is what the body and strings took before a body could
// have a tail: one allocation, or the body and the strings apart.
func oldLayoutBytes(n, strs int) int {
	one := allocSize(n + strs)
	if two := allocSize(n) + allocSize(strs); n > 0 && strs > 0 && two < one {
		return two
	}
	return one
}

// TestPackedTail: Packed of a body of any length from 1 KiB to 40 KiB
// keeps it exactly, whichever way it is read (BodyLen, WriteBody,
// AppendBody, BodyReader read, read at and seek, the encoding); a tail it
// splits off lies at the start of the strings' allocation; and the entry
// takes no more than the one- or two-allocation layouts took.
func TestPackedTail(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	tailed := 0
	for _, n := range tailLengths() {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(rnd.UintN(256))
		}
		e := benchEntry()
		e.SetBody(body)
		p := e.Packed()
		if diff := equalEntries(e, p); diff != "" {
			t.Fatalf("%d: Packed differs: %s", n, diff)
		}
		checkBody(t, p, body)
		if !bytes.Equal(Encode(p), Encode(e)) {
			t.Fatalf("%d: the packed entry encodes differently", n)
		}
		d, err := Decode(Encode(p))
		if err != nil || !bytes.Equal(d.AppendBody(nil), body) || d.tail != "" {
			t.Fatalf("%d: decoded %v, body equal %v, tail %d", n, err, err == nil && bytes.Equal(d.AppendBody(nil), body), len(d.tail))
		}
		strs := p.stringBytes()
		if p.tail != "" {
			tailed++
			if allocSize(len(p.body)) != len(p.body) || len(p.body) < minTailedBody {
				t.Fatalf("%d: head of %d bytes, not a size class of at least 1 KiB", n, len(p.body))
			}
			end := unsafe.Add(unsafe.Pointer(unsafe.StringData(p.tail)), len(p.tail))
			if end != unsafe.Pointer(unsafe.StringData(p.URL)) {
				t.Fatalf("%d: the tail is not just before the URL in the strings' allocation", n)
			}
		}
		got := p.MemSize() - (e.MemSize() - allocSize(n+strs)) // MemSize of e: its body and strings as one
		if old := oldLayoutBytes(n, strs); got > old {
			t.Fatalf("%d: body and strings take %d bytes, %d in the old layouts", n, got, old)
		}
	}
	if tailed == 0 {
		t.Fatal("no body got a tail")
	}
}

// checkBody checks every way of reading e's body against want.
func checkBody(t *testing.T, e *Entry, want []byte) {
	t.Helper()
	n := len(want)
	if e.BodyLen() != n {
		t.Fatalf("%d: BodyLen %d", n, e.BodyLen())
	}
	var buf bytes.Buffer
	if w, err := e.WriteBody(&buf); err != nil || w != int64(n) || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("%d: WriteBody wrote %d, %v, equal %v", n, w, err, bytes.Equal(buf.Bytes(), want))
	}
	if got := e.AppendBody([]byte("pre")); string(got[:3]) != "pre" || !bytes.Equal(got[3:], want) {
		t.Fatalf("%d: AppendBody differs", n)
	}
	r := e.BodyReader()
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%d: BodyReader read differs (%v)", n, err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d: Len %d after reading all", n, r.Len())
	}
	// Seek and read pieces across the head and tail.
	for _, off := range []int{0, 1, n / 3, len(e.body) - 1, len(e.body), len(e.body) + 1, n - 1, n} {
		off = max(0, min(off, n))
		for _, size := range []int{1, 7, 300, n} {
			if _, err := r.Seek(int64(off), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			p := make([]byte, size)
			k, _ := io.ReadFull(r, p)
			if !bytes.Equal(p[:k], want[off:min(off+size, n)]) {
				t.Fatalf("%d: read %d at %d differs", n, size, off)
			}
			k, err := r.ReadAt(p, int64(off))
			if !bytes.Equal(p[:k], want[off:min(off+size, n)]) || (k < size) != (err == io.EOF) {
				t.Fatalf("%d: ReadAt %d at %d: %d, %v", n, size, off, k, err)
			}
		}
	}
	if at, err := r.Seek(-5, io.SeekEnd); err != nil || at != int64(n-5) {
		t.Fatalf("%d: Seek(-5, end) = %d, %v", n, at, err)
	}
	if at, err := r.Seek(2, io.SeekCurrent); err != nil || at != int64(n-3) {
		t.Fatalf("%d: Seek(2, current) = %d, %v", n, at, err)
	}
	var rest bytes.Buffer
	if k, err := r.WriteTo(&rest); err != nil || k != 3 || !bytes.Equal(rest.Bytes(), want[n-3:]) {
		t.Fatalf("%d: WriteTo after seeking: %d, %v", n, k, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatalf("%d: Seek to -1 succeeded", n)
	}
}

// TestLayout: layout takes the fewest bytes; a tie keeps the whole body.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		n, strs, head int
		split         bool
	}{
		{100, 100, 100, false},     // 208 in one
		{1000, 100, 1000, true},    // under 1 KiB: no tail; 1024 + 112 < 1152 in one
		{2048, 100, 2048, true},    // 2048 + 112 < 2304 in one
		{3000, 100, 2688, true},    // 2688 + 416 < 3072 + 112 apart < 3200 in one
		{3300, 50, 3200, true},     // 3200 + 160 < 3456 in one
		{2200, 100, 2200, false},   // 2304 in one; 2048 + 256 ties: the whole body
		{4200, 0, 4096, true},      // 4096 + 112 < 4864
		{40000, 100, 21760, true},  // 21760 + 18432 < 40960 in one or 32768 + 8192
		{49000, 100, 49000, false}, // 49152 in one; 32768 + 16384 ties
	} {
		head, split := layout(c.n, c.strs)
		if head != c.head || split != c.split {
			t.Errorf("layout(%d, %d) = %d, %v; want %d, %v", c.n, c.strs, head, split, c.head, c.split)
		}
	}
}

// plainWriter is an io.Writer that is not an io.StringWriter, as many
// wrapped http.ResponseWriters are not.
type plainWriter struct{ n int }

func (w *plainWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// TestWriteBodyCopiesNothing: the hit path writes the entry's memory,
// head and tail, without copying it, to any writer.
func TestWriteBodyCopiesNothing(t *testing.T) {
	e := benchEntry()
	e.SetBody(make([]byte, 3000))
	p := e.Packed()
	if p.tail == "" {
		t.Fatal("a 3000-byte body has no tail")
	}
	var w plainWriter
	if n := testing.AllocsPerRun(100, func() { p.WriteBody(&w) }); n != 0 {
		t.Errorf("WriteBody allocates %v times", n)
	}
	r := p.BodyReader()
	if n := testing.AllocsPerRun(100, func() { r.Seek(0, io.SeekStart); r.WriteTo(&w) }); n != 0 {
		t.Errorf("BodyReader.WriteTo allocates %v times", n)
	}
}
