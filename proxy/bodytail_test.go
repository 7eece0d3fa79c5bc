package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestTailedBodyServed: bodies of lengths Packed stores as a head and a
// tail (see tiers.Entry.Packed) are served from L1 exactly as the origin
// sent them: whole, as single, suffix and several ranges, to a HEAD (no
// body), as a 304, and decoded for a client that does not accept gzip.
func TestTailedBodyServed(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	bodies := map[string][]byte{}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Etag", `"`+r.URL.Path+`"`)
		if strings.HasPrefix(r.URL.Path, "/text/") {
			w.Header().Set("Content-Type", "text/plain") // stored gzip
		} else {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Write(bodies[r.URL.Path])
	})
	s := newStack(t, o, nil)
	for _, n := range []int{1500, 2500, 3000, 3300, 4500, 5000, 9000, 17000} {
		random := make([]byte, n)
		for i := range random {
			random[i] = byte(rnd.UintN(256))
		}
		raw := "/raw/" + strconv.Itoa(n)
		bodies[raw] = random
		// Stored gzip, of some 0.8n bytes.
		text := "/text/" + strconv.Itoa(n)
		bodies[text] = wordText(rnd, 2*n)
	}
	for path, body := range bodies {
		want := string(body)
		if r := s.get(t, path); r.status != 200 || r.body != want {
			t.Fatalf("%s: fill %d, body equal %v", path, r.status, r.body == want)
		}
		r := s.get(t, path, "Accept-Encoding", "identity")
		wantXCache(t, r, "HIT-L1")
		if r.status != 200 || r.body != want || r.header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("%s: identity hit %d, %s bytes, body equal %v", path, r.status, r.header.Get("Content-Length"), r.body == want)
		}
		if r := s.do(t, http.MethodHead, path); r.status != 200 || r.body != "" || r.header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("%s: HEAD %d, Content-Length %q, %d body bytes", path, r.status, r.header.Get("Content-Length"), len(r.body))
		}
		etag := `"` + path + `"`
		if strings.HasPrefix(path, "/text/") {
			etag = "W/" + etag // decoded: weak (asDecoded)
		}
		if r := s.get(t, path, "Accept-Encoding", "identity", "If-None-Match", etag); r.status != http.StatusNotModified || r.body != "" {
			t.Errorf("%s: If-None-Match %d, %d body bytes", path, r.status, len(r.body))
		}
		if strings.HasPrefix(path, "/text/") {
			checkStoredGzip(t, s, path, want)
			continue
		}
		n := len(body)
		for _, rng := range []struct {
			spec  string
			parts [][2]int // [from, to) of each part
		}{
			{"bytes=0-", [][2]int{{0, n}}},
			{"bytes=1000-", [][2]int{{1000, n}}},
			{"bytes=-700", [][2]int{{n - 700, n}}},
			{"bytes=-1", [][2]int{{n - 1, n}}},
			{fmt.Sprintf("bytes=%d-%d", n/2, n-2), [][2]int{{n / 2, n - 1}}},
			{fmt.Sprintf("bytes=0-9,1000-1199,%d-", n-300), [][2]int{{0, 10}, {1000, 1200}, {n - 300, n}}},
			{fmt.Sprintf("bytes=5-5,%d-%d,-50", n/2, n-100), [][2]int{{5, 6}, {n / 2, n - 99}, {n - 50, n}}},
		} {
			r := s.get(t, path, "Range", rng.spec)
			got := rangeParts(t, r)
			if r.status != http.StatusPartialContent || len(got) != len(rng.parts) {
				t.Errorf("%s %s: %d, %d parts", path, rng.spec, r.status, len(got))
				continue
			}
			for i, p := range rng.parts {
				if got[i] != want[p[0]:p[1]] {
					t.Errorf("%s %s: part %d differs (%d bytes, want %d)", path, rng.spec, i, len(got[i]), p[1]-p[0])
				}
			}
		}
	}
}

// checkStoredGzip checks that a gzip client gets a gzip body of path
// that decodes to want, and its ranges are of that gzip body.
func checkStoredGzip(t *testing.T, s *stack, path, want string) {
	t.Helper()
	// The transport would decode it: ask for it explicitly.
	r := s.get(t, path, "Accept-Encoding", "gzip")
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("%s: Content-Encoding %q", path, r.header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || string(got) != want {
		t.Errorf("%s: the gzip body does not decode to the origin's (%v)", path, err)
	}
	z := r.body
	rr := s.get(t, path, "Accept-Encoding", "gzip", "Range", "bytes=0-99,-100")
	if got := rangeParts(t, rr); len(got) != 2 || got[0] != z[:100] || got[1] != z[len(z)-100:] {
		t.Errorf("%s: gzip ranges differ", path)
	}
}

// rangeParts returns the parts of a 206: its body, or each part of a
// multipart/byteranges body.
func rangeParts(t *testing.T, r result) []string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		return []string{r.body}
	}
	var parts []string
	mr := multipart.NewReader(strings.NewReader(r.body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b.String())
	}
}

// wordText returns n bytes of words drawn at random, as a JSON API's
// text compresses: to a third or so.
func wordText(rnd *rand.Rand, n int) []byte {
	words := strings.Fields("id name score rank player season team points games wins losses draws " +
		"created updated url next previous count results true false null 0 1 2 3 4 5 6 7 8 9")
	var b []byte
	for len(b) < n {
		b = append(b, words[rnd.IntN(len(words))]...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(rnd.IntN(100000)), 10)
		b = append(b, ' ')
	}
	return b[:n]
}
