package proxy

// Range requests (RFC 9110 §14): which ranges of a representation a
// request's Range asks for, and when the proxy answers the whole 200
// instead. A stored entry's ranges are written by http.ServeContent
// (answer.go) once rangePlan has vetted them; a response streamed and not
// stored is sliced by copyStream (stream.go).

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// The bounds past which a Range is ignored and the whole representation
// sent with 200, as RFC 9110 §14.2 allows for "a range-set with more than
// two overlapping ranges, or a set of many small ranges that are not
// listed in ascending order" (Apache's MaxRanges and MaxOverlaps answer
// the same way). With them, and net/http's own rule that the ranges
// together may not exceed the representation's size, a multipart answer
// is at most the representation plus maxRanges part headers.
const (
	// maxRanges is the most ranges a Range may list.
	maxRanges = 100
	// maxOverlaps is the most ranges that may overlap an earlier one
	// (in ascending order of their starts).
	maxOverlaps = 2
)

// byteRange is one satisfiable range: length bytes from start.
type byteRange struct {
	start, length int64
}

// contentRange is the Content-Range of r in a representation of size
// bytes.
func (r byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.start+r.length-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// rangeVerdict is how a request's Range is answered.
type rangeVerdict int

const (
	// rangeWhole: the Range is ignored, the whole representation is sent
	// with 200 (not a byte-range request, malformed, or over the bounds).
	rangeWhole rangeVerdict = iota
	// rangePartial: a 206 of the ranges.
	rangePartial
	// rangeUnsatisfiable: a 416, no range overlapping the representation.
	rangeUnsatisfiable
)

var (
	errRangeSyntax = errors.New("malformed range")
	errRangeBounds = errors.New("too many or overlapping ranges")
)

// rangeRequest decides how r's Range answers a 200 response with header
// hdr and a body of size bytes: the satisfiable ranges, in the order
// asked, and the verdict. It is rangeWhole without a Range, when an
// If-Range does not hold (ifRangeHolds), and for a Range that rangePlan
// ignores. Every range answer, stored or streamed, is decided here.
func rangeRequest(r *http.Request, hdr fields, size int64) ([]byteRange, rangeVerdict) {
	v, ok := r.Header["Range"]
	if !ok || len(v) != 1 || !ifRangeHolds(r, hdr) {
		return nil, rangeWhole
	}
	return rangePlan(v[0], size)
}

// rangePlan decides how a Range header value v answers a representation
// of size bytes: the satisfiable ranges, in the order asked, and the
// verdict. A malformed Range, one of more than maxRanges ranges, or one
// whose ranges overlap more than maxOverlaps times gives rangeWhole.
func rangePlan(v string, size int64) ([]byteRange, rangeVerdict) {
	ranges, err := parseRanges(v, size)
	switch {
	case err != nil:
		return nil, rangeWhole
	case len(ranges) == 0:
		return nil, rangeUnsatisfiable
	}
	return ranges, rangePartial
}

// parseRanges parses a Range value (RFC 9110 §14.1.2) against a
// representation of size bytes and returns its satisfiable ranges, none
// if no range is satisfiable. It stops at the first error, and at the
// (maxRanges+1)th range: a long header costs no more than that.
func parseRanges(v string, size int64) ([]byteRange, error) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok {
		return nil, errRangeSyntax
	}
	var ranges []byteRange
	n := 0
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue // RFC 9110 §5.6.1: empty list elements are ignored
		}
		if n++; n > maxRanges {
			return nil, errRangeBounds
		}
		first, last, ok := strings.Cut(item, "-")
		if !ok {
			return nil, errRangeSyntax
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if first == "" {
			// A suffix: the last bytes.
			k, err := parseDigits(last)
			if err != nil {
				return nil, err
			}
			if k == 0 || size == 0 {
				continue // unsatisfiable
			}
			k = min(k, size)
			ranges = append(ranges, byteRange{start: size - k, length: k})
			continue
		}
		start, err := parseDigits(first)
		if err != nil {
			return nil, err
		}
		end := size - 1
		if last != "" {
			if end, err = parseDigits(last); err != nil {
				return nil, err
			}
			if end < start {
				return nil, errRangeSyntax
			}
		}
		if start >= size {
			continue // unsatisfiable
		}
		end = min(end, size-1)
		ranges = append(ranges, byteRange{start: start, length: end - start + 1})
	}
	if n == 0 {
		return nil, errRangeSyntax
	}
	if overlaps(ranges) > maxOverlaps {
		return nil, errRangeBounds
	}
	return ranges, nil
}

// parseDigits parses a non-empty run of ASCII digits.
func parseDigits(s string) (int64, error) {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, errRangeSyntax
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errRangeSyntax
	}
	return n, nil
}

// overlaps counts the ranges that overlap an earlier one, in ascending
// order of their starts.
func overlaps(ranges []byteRange) int {
	if len(ranges) < 2 {
		return 0
	}
	sorted := append([]byteRange(nil), ranges...)
	// Insertion sort: at most maxRanges elements.
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j].start < sorted[j-1].start; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	n := 0
	end := sorted[0].start + sorted[0].length // the furthest end so far
	for _, r := range sorted[1:] {
		if r.start < end {
			n++
		}
		end = max(end, r.start+r.length)
	}
	return n
}

// ifRangeHolds reports whether a request's If-Range, if any, matches a
// response with header hdr (RFC 9110 §13.1.5): an entity tag by strong
// comparison, a date by equality with Last-Modified. Without If-Range,
// true.
func ifRangeHolds(r *http.Request, hdr fields) bool {
	v := r.Header.Get("If-Range")
	if v == "" {
		return true
	}
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		etag := hdr.Get("Etag")
		return !strings.HasPrefix(v, "W/") && !strings.HasPrefix(etag, "W/") && etag != "" && v == etag
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(hdr.Get("Last-Modified"))
	return err == nil && t.Equal(lm)
}
