package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cacheproxy/cacheproxy/tiers"
)

func TestParseAcceptEncoding(t *testing.T) {
	const (
		id = 1 << identity
		gz = 1 << gzipCoding
		br = 1 << brCoding
		zs = 1 << zstdCoding
	)
	tests := []struct {
		ae      string
		accepts codingSet
		bucket  coding
	}{
		{"", id, identity},
		{"gzip", id | gz, gzipCoding},
		{"GZip", id | gz, gzipCoding},
		{"x-gzip", id | gz, gzipCoding},
		{"gzip, deflate, br", id | gz | br, brCoding},
		{"gzip, deflate, br, zstd", id | gz | br | zs, brCoding},
		{"zstd, gzip", id | gz | zs, zstdCoding},
		{"br;q=0.5, gzip", id | gz | br, gzipCoding},
		{"br;q=0.5, gzip;q=0.4", id | gz | br, brCoding},
		{"gzip;q=0", id, identity},
		{"gzip;q=0.000", id, identity},
		{"*", id | gz | br | zs, brCoding},
		{"*;q=0", 0, identity},
		{"*;q=0, gzip", gz, gzipCoding},
		{"*;q=0, identity", id, identity},
		{"identity;q=0", 0, identity},
		{"identity;q=0, gzip", gz, gzipCoding},
		{"gzip;q=2", id, identity},      // not a q-value: ignored
		{"gzip;q=0.1234", id, identity}, // four decimals: ignored
		{"gzip;q=1.000", id | gz, gzipCoding},
		{"gzip ; Q=0.8 , br;q=0.9", id | gz | br, brCoding},
		{"deflate, compress", id, identity},
		{" , ,gzip,", id | gz, gzipCoding},
		{"identity;q=0.5, gzip;q=0.4", id | gz, identity},
	}
	for _, tt := range tests {
		t.Run(tt.ae, func(t *testing.T) {
			a := parseAcceptEncoding([]string{tt.ae})
			if a.accepts != tt.accepts || a.bucket != tt.bucket {
				t.Errorf("accepts %04b bucket %v, want %04b %v", a.accepts, a.bucket, tt.accepts, tt.bucket)
			}
		})
	}
	if a := acceptedCodings(&http.Request{Header: http.Header{}}); a != identityOnly {
		t.Errorf("no Accept-Encoding: %+v, want identity only", a)
	}
}

// FuzzAcceptEncoding checks the parser's invariants on any input: it
// never panics; the bucket is a coding the request accepts, or identity;
// the result depends neither on case, on whitespace around the list's
// commas, nor on the field being split into lines at its commas; and the
// bucket's coding, sent back as Accept-Encoding (what the origin is sent),
// is accepted by it.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip, deflate, br", "gzip, deflate, br, zstd", "*;q=0",
		"identity;q=0", "br;q=0.5, gzip", "x-gzip;q=0.001", "*, gzip;q=0", ",,;q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ae string) {
		a := parseAcceptEncoding([]string{ae})
		if a.bucket != identity && !a.accepts.has(a.bucket) {
			t.Fatalf("%q: bucket %v not accepted (%04b)", ae, a.bucket, a.accepts)
		}
		if a.accepts >= 1<<otherCoding {
			t.Fatalf("%q: accepts %b outside the known codings", ae, a.accepts)
		}
		if u := parseAcceptEncoding([]string{strings.ToUpper(ae)}); strings.ToLower(strings.ToUpper(ae)) == strings.ToLower(ae) && u != a {
			t.Fatalf("%q: upper case gives %+v, want %+v", ae, u, a)
		}
		if sp := parseAcceptEncoding([]string{strings.ReplaceAll(ae, ",", " ,\t")}); sp != a {
			t.Fatalf("%q: spaced gives %+v, want %+v", ae, sp, a)
		}
		if lines := parseAcceptEncoding(strings.Split(ae, ",")); lines != a {
			t.Fatalf("%q: as field lines gives %+v, want %+v", ae, lines, a)
		}
		back := parseAcceptEncoding(bucketValues[a.bucket])
		if back.bucket != a.bucket {
			t.Fatalf("%q: bucket %v sent on gives bucket %v", ae, a.bucket, back.bucket)
		}
	})
}

// TestDeliveryOf: what a stored entry's coding lets it answer, per
// request: identity always; gzip as stored to a gzip client, decoded for
// the others (not with no-transform); a registered coding the proxy does
// not decode only to a client that accepts it, never otherwise; an
// unregistered label (an origin's own) as the origin sent it.
func TestDeliveryOf(t *testing.T) {
	entry := func(kv ...string) *tiers.Entry {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return &tiers.Entry{Header: tiers.MakeHeader(h)}
	}
	gzipClient := parseAcceptEncoding([]string{"gzip, deflate, br"})
	plain := parseAcceptEncoding(nil)
	for _, tc := range []struct {
		name string
		e    *tiers.Entry
		a    acceptance
		want delivery
	}{
		{"identity, plain client", entry(), plain, asStored},
		{"gzip, gzip client", entry("Content-Encoding", "gzip"), gzipClient, asStored},
		{"gzip, plain client", entry("Content-Encoding", "gzip"), plain, decoded},
		{"gzip no-transform, plain client", entry("Content-Encoding", "gzip", "Cache-Control", "no-transform"), plain, refused},
		{"br, plain client", entry("Content-Encoding", "br"), plain, refused},
		{"br, br client", entry("Content-Encoding", "br"), gzipClient, asStored},
		{"deflate, plain client", entry("Content-Encoding", "deflate"), plain, refused},
		{"a stack, plain client", entry("Content-Encoding", "gzip, br"), plain, refused},
		{"an origin's own label", entry("Content-Encoding", "x-mine"), plain, asStored},
	} {
		if got := deliveryOf(tc.e.Header, tc.a); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
