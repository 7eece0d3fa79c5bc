package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRangeAbuseOfStoredResponse: a Range of many ranges, or of ranges
// that overlap, on a stored 1 MiB entry is answered with the whole 200,
// not a multipart answer many times the entry's size; within the bounds
// the ranges are served.
func TestRangeAbuseOfStoredResponse(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	s := newStack(t, o, func(o *Options) { o.MaxObjectBytes = 4 << 20 })
	if r := s.get(t, "/big"); r.status != 200 || len(r.body) != len(body) {
		t.Fatalf("fill: %d, %d bytes", r.status, len(r.body))
	}
	many := "bytes=" + strings.TrimSuffix(strings.Repeat("0-0,", 20000), ",")
	start := time.Now()
	r := s.get(t, "/big", "Range", many)
	if r.status != http.StatusOK || len(r.body) != len(body) {
		t.Errorf("20,000 ranges: %d, %d bytes; want the whole 200 of %d bytes", r.status, len(r.body), len(body))
	}
	wantXCache(t, r, "HIT-L1")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("20,000 ranges took %v", took)
	}

	ascending := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf("%d-%d", i*10, i*10+1)
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	for _, c := range []struct {
		name, rng string
		status    int
	}{
		{"100 ranges", ascending(maxRanges), http.StatusPartialContent},
		{"101 ranges", ascending(maxRanges + 1), http.StatusOK},
		{"two overlaps", "bytes=0-9,5-14,8-20", http.StatusPartialContent},
		{"three overlaps", "bytes=0-9,5-14,8-20,9-30", http.StatusOK},
		{"the same range thrice", "bytes=100-200,100-200,100-200,100-200", http.StatusOK},
		{"descending, disjoint", "bytes=50-59,30-39,10-19", http.StatusPartialContent},
		{"malformed", "bytes=a-b", http.StatusOK},
		{"unknown unit", "items=0-1", http.StatusOK},
		{"unsatisfiable", "bytes=2000000-", http.StatusRequestedRangeNotSatisfiable},
	} {
		r := s.get(t, "/big", "Range", c.rng)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, r.status, c.status)
		}
		if r.status == http.StatusOK && len(r.body) != len(body) {
			t.Errorf("%s: a 200 of %d bytes", c.name, len(r.body))
		}
		if r.status == http.StatusPartialContent && len(r.body) > 64<<10 {
			t.Errorf("%s: a 206 of %d bytes", c.name, len(r.body))
		}
	}
	if o.hits.Load() != 1 {
		t.Errorf("origin hits %d, want 1", o.hits.Load())
	}
}

// TestRangeOfUnstoredResponse: a Range on a response that is streamed and
// not stored (no-store, or larger than MaxObjectBytes) is answered as a
// stored one would be: one range sliced from the stream (206), an
// unsatisfiable one 416, an If-Range that does not hold or several ranges
// the whole 200.
func TestRangeOfUnstoredResponse(t *testing.T) {
	const small = "0123456789"
	large := strings.Repeat("abcdefghij", 100) // 1,000 bytes
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			t.Errorf("origin got Range %q", r.Header.Get("Range"))
		}
		w.Header().Set("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT")
		switch r.URL.Path {
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("ETag", `"n1"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(small)))
			io.WriteString(w, small)
		case "/large":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"l1"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(large)))
			io.WriteString(w, large)
		case "/chunked":
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, small)
			w.(http.Flusher).Flush()
		}
	})
	s := newStack(t, o, func(o *Options) { o.MaxObjectBytes = 100 })
	for _, c := range []struct {
		path, rng, ifRange string
		status             int
		body, cr           string
	}{
		{"/nostore", "bytes=2-4", "", 206, "234", "bytes 2-4/10"},
		{"/nostore", "bytes=-3", "", 206, "789", "bytes 7-9/10"},
		{"/nostore", "bytes=7-", "", 206, "789", "bytes 7-9/10"},
		{"/nostore", "bytes=20-30", "", 416, "", "bytes */10"},
		{"/nostore", "bytes=0-1,4-5", "", 200, small, ""},
		{"/nostore", "bytes=2-4", `"n1"`, 206, "234", "bytes 2-4/10"},
		{"/nostore", "bytes=2-4", `"other"`, 200, small, ""},
		{"/nostore", "bytes=2-4", `W/"n1"`, 200, small, ""},
		{"/nostore", "bytes=2-4", "Mon, 07 Dec 2026 00:00:00 GMT", 206, "234", "bytes 2-4/10"},
		{"/nostore", "bytes=2-4", "Sun, 06 Dec 2026 00:00:00 GMT", 200, small, ""},
		{"/large", "bytes=500-509", "", 206, large[500:510], "bytes 500-509/1000"},
		{"/large", "bytes=-5", "", 206, large[995:], "bytes 995-999/1000"},
		{"/large", "bytes=990-5000", `"l1"`, 206, large[990:], "bytes 990-999/1000"},
		{"/large", "bytes=0-0," + strings.Repeat("0-0,", maxRanges), "", 200, large, ""},
		// Of unknown length: the whole 200.
		{"/chunked", "bytes=2-4", "", 200, small, ""},
	} {
		hdr := []string{"Range", c.rng}
		if c.ifRange != "" {
			hdr = append(hdr, "If-Range", c.ifRange)
		}
		r := s.get(t, c.path, hdr...)
		name := c.path + " " + c.rng + " " + c.ifRange
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d", name, r.status, c.status)
			continue
		}
		wantXCache(t, r, "PASS")
		if c.status != 416 && r.body != c.body {
			t.Errorf("%s: body %q, want %q", name, r.body, c.body)
		}
		if got := r.header.Get("Content-Range"); got != c.cr {
			t.Errorf("%s: Content-Range %q, want %q", name, got, c.cr)
		}
		if c.status == 206 && r.header.Get("Content-Length") != strconv.Itoa(len(c.body)) {
			t.Errorf("%s: Content-Length %q", name, r.header.Get("Content-Length"))
		}
	}
	// A HEAD gets the 206's header alone.
	if r := s.do(t, http.MethodHead, "/nostore", "Range", "bytes=2-4"); r.status != 206 || r.header.Get("Content-Range") != "bytes 2-4/10" {
		t.Errorf("HEAD: %d %q", r.status, r.header.Get("Content-Range"))
	}
}

// TestCopyStreamSlices: copyStream writes exactly the bytes asked,
// whether they start in the part already read or in the rest.
func TestCopyStreamSlices(t *testing.T) {
	const whole = "0123456789abcdefghij"
	h, err := New(Options{Origin: mustURL(t, "http://o")})
	if err != nil {
		t.Fatal(err)
	}
	for split := 0; split <= len(whole); split += 5 {
		for skip := int64(0); skip <= int64(len(whole)); skip++ {
			for n := int64(-1); skip+n <= int64(len(whole)); n++ {
				s := &streamedResponse{prefix: []byte(whole[:split]), body: io.NopCloser(strings.NewReader(whole[split:]))}
				rec := httptest.NewRecorder()
				h.copyStream(rec, httptest.NewRequest("GET", "/", nil), s, skip, n)
				want := whole[skip:]
				if n >= 0 {
					want = want[:n]
				}
				if rec.Body.String() != want {
					t.Fatalf("split %d skip %d n %d: %q, want %q", split, skip, n, rec.Body.String(), want)
				}
			}
		}
	}
}

// FuzzRangePlan: whatever the Range, the plan's ranges lie within the
// representation, are not empty, at most maxRanges, overlap at most
// maxOverlaps times, and so add up to at most 1+maxOverlaps times its size.
func FuzzRangePlan(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=5-", "bytes=0-1,1-2,2-3,3-4", "bytes= 1 - 2 , ,3-", "bytes=99999999999999999999-", "items=1-2", "bytes=-0", "bytes=5-4"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -size
		}
		size %= 1 << 40 // the sum below cannot overflow
		ranges, verdict := rangePlan(v, size)
		switch verdict {
		case rangePartial:
			if len(ranges) == 0 || len(ranges) > maxRanges {
				t.Fatalf("%q on %d: %d ranges", v, size, len(ranges))
			}
		default:
			if len(ranges) != 0 {
				t.Fatalf("%q on %d: verdict %d with ranges", v, size, verdict)
			}
		}
		for _, r := range ranges {
			if r.start < 0 || r.length <= 0 || r.start+r.length > size {
				t.Fatalf("%q on %d: range %+v outside", v, size, r)
			}
		}
		if n := overlaps(ranges); n > maxOverlaps {
			t.Fatalf("%q on %d: %d overlaps", v, size, n)
		}
		var sum int64
		for _, r := range ranges {
			sum += r.length
		}
		if sum > (1+maxOverlaps)*size {
			t.Fatalf("%q on %d: %d bytes of ranges", v, size, sum)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
