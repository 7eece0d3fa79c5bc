package tiers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Encoding layout, version 2. Every integer is a varint (unsigned unless
// noted); every string or byte slice is a uvarint length then the bytes.
//
//	magic    byte  0xCA
//	version  byte  2 (version 1, still read, lacks sie and swr)
//	kind     byte
//	status   uvarint
//	storedAt varint  (Unix nanoseconds)
//	initAge  varint  (nanoseconds)
//	lifetime varint  (nanoseconds)
//	sie      varint  (nanoseconds: StaleIfError)
//	swr      varint  (nanoseconds: StaleWhileRevalidate)
//	seq      uvarint
//	url      string
//	vary     uvarint count, then strings
//	tags     uvarint count, then strings
//	header   uvarint count of names, then per name: string, uvarint count, strings
//	body     bytes
const (
	magic   = 0xCA
	version = 2
	// version1 is the encoding before the stale windows, still read: an
	// entry written by an older instance decodes with none.
	version1 = 1
)

// ErrUnknownVersion is returned by Decode for data written by another
// version of the encoding. Callers treat it as a miss.
var ErrUnknownVersion = errors.New("tiers: unknown entry encoding version")

// ErrCorrupt is returned by Decode for data that is not a valid entry.
var ErrCorrupt = errors.New("tiers: corrupt entry")

// Encode returns the binary encoding of e. Header names are written in
// sorted order, so equal entries encode to equal bytes.
func Encode(e *Entry) []byte {
	buf := make([]byte, 0, encodedSize(e))
	return AppendEncode(buf, e)
}

// AppendEncode appends the encoding of e to dst and returns the result.
func AppendEncode(dst []byte, e *Entry) []byte {
	dst = append(dst, magic, version, byte(e.Kind))
	dst = binary.AppendUvarint(dst, uint64(e.Status))
	dst = binary.AppendVarint(dst, int64(e.StoredAt))
	dst = binary.AppendVarint(dst, int64(e.InitialAge))
	dst = binary.AppendVarint(dst, int64(e.Lifetime))
	x := e.Extra()
	dst = binary.AppendVarint(dst, int64(x.StaleIfError))
	dst = binary.AppendVarint(dst, int64(x.StaleWhileRevalidate))
	dst = binary.AppendUvarint(dst, e.Seq)
	dst = appendString(dst, e.URL)
	dst = appendStrings(dst, x.Vary)
	dst = appendStrings(dst, x.Tags)
	// Per name: the name, then its values (a Header's fields are sorted
	// by name).
	names := 0
	e.Header.runs(func(string, int, int) { names++ })
	dst = binary.AppendUvarint(dst, uint64(names))
	e.Header.runs(func(name string, i, n int) {
		dst = appendString(dst, name)
		dst = binary.AppendUvarint(dst, uint64(n))
		for j := i; j < i+n; j++ {
			dst = appendString(dst, e.Header.value(j))
		}
	})
	dst = binary.AppendUvarint(dst, uint64(e.BodyLen()))
	return e.AppendBody(dst)
}

// Decode parses data written by Encode. The returned entry's body aliases
// data, so the caller must not modify data afterwards. Data of another
// encoding version yields ErrUnknownVersion; anything malformed yields an
// error wrapping ErrCorrupt.
func Decode(data []byte) (*Entry, error) {
	return decode(string(data))
}

// DecodeString is Decode for data held in a string, as a Redis client
// returns it. It copies nothing: every string of the entry is a substring
// of data and the body points into data's memory, which, like every Entry's,
// must never be written.
func DecodeString(data string) (*Entry, error) {
	return decode(data)
}

func decode(data string) (*Entry, error) {
	if len(data) < 2 || data[0] != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	v := data[1]
	if v != version && v != version1 {
		return nil, ErrUnknownVersion
	}
	d := decoder{b: data[2:]}
	e := &Entry{}
	var x Extra
	e.Kind = Kind(d.byte())
	e.Status = int(d.uvarint())
	e.StoredAt = Instant(d.varint())
	e.InitialAge = time.Duration(d.varint())
	e.Lifetime = time.Duration(d.varint())
	if v == version {
		x.StaleIfError = time.Duration(d.varint())
		x.StaleWhileRevalidate = time.Duration(d.varint())
	}
	e.Seq = d.uvarint()
	e.URL = d.string()
	x.Vary = d.strings()
	x.Tags = d.strings()
	e.SetExtra(x)
	h, err := d.header()
	if err != nil {
		return nil, err
	}
	e.Header = h
	e.body = d.string() // one piece: no tail
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if e.Kind != KindResponse && e.Kind != KindVary {
		return nil, fmt.Errorf("%w: kind %d", ErrCorrupt, e.Kind)
	}
	return e, nil
}

func encodedSize(e *Entry) int {
	n := 3 + 7*binary.MaxVarintLen64 + len(e.URL) + binary.MaxVarintLen64
	for _, s := range e.Vary() {
		n += len(s) + binary.MaxVarintLen32
	}
	for _, s := range e.Tags() {
		n += len(s) + binary.MaxVarintLen32
	}
	n += 3 * binary.MaxVarintLen32
	for i := range e.Header.Len() {
		name, value := e.Header.Field(i)
		n += len(name) + len(value) + 3*binary.MaxVarintLen32
	}
	return n + binary.MaxVarintLen64 + e.BodyLen()
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// decoder reads the encoding from a string, so that the strings it
// returns are substrings of the input, not copies. The first error sticks
// and later reads return zero values.
type decoder struct {
	b   string
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	d.b = ""
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < len(d.b) && i < binary.MaxVarintLen64; i++ {
		c := d.b[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break // overflow
			}
			d.b = d.b[i+1:]
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.fail("uvarint")
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a length that must fit in what is left of the input.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.fail("length")
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// header reads a header: a count of names, then per name the name, a
// count of values and the values. It reads the fields twice, once to
// count them and once to build the Header, so the Header takes one slice
// and one string of codes; its strings are substrings of the input.
func (d *decoder) header() (Header, error) {
	var b headerBuilder
	for pass := 0; pass < 2; pass++ {
		r := *d
		n := r.count()
		prev := ""
		for i := 0; i < n && r.err == nil; i++ {
			k := r.string()
			if i > 0 && k <= prev {
				// Lookups find a name's values together: names must be
				// sorted, each once.
				return Header{}, fmt.Errorf("%w: header names out of order", ErrCorrupt)
			}
			prev = k
			m := r.count()
			for j := 0; j < m && r.err == nil; j++ {
				b.field(pass, k, r.string(), j == 0, m == 1)
			}
		}
		if r.err != nil {
			return Header{}, r.err
		}
		if pass == 0 {
			b.start()
		} else {
			*d = r
		}
	}
	return b.header(), nil
}

func (d *decoder) strings() []string {
	n := d.count()
	if n == 0 || d.err != nil {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}
