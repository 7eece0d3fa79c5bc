package proxy

import (
	"net/http"
	"slices"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Content codings (RFC 9110 §8.4.1, §12.5.3): what a client accepts, the
// one bucket of Accept-Encoding that selects a variant and that the origin
// is asked for, and whether a stored entry may answer a request as it is
// stored, decoded, or not at all. Every question about codings is
// answered here.

// coding is a content coding the proxy tells apart.
type coding uint8

const (
	identity coding = iota // no content coding
	gzipCoding
	brCoding
	zstdCoding
	otherCoding // any other: deflate, compress, a stack of codings
)

// codingTokens are the codings' names in Accept-Encoding and
// Content-Encoding (lower case), indexed by coding.
var codingTokens = [...]string{identity: "identity", gzipCoding: "gzip", brCoding: "br", zstdCoding: "zstd"}

// bucketOrder is the order in which codings of equal q-value are
// preferred for a request's bucket: brotli first, so that the browsers
// that add zstd to "gzip, deflate, br" stay in one bucket with those that
// do not.
var bucketOrder = [...]coding{brCoding, zstdCoding, gzipCoding, identity}

// codingSet is a set of codings.
type codingSet uint8

func (s codingSet) has(c coding) bool { return s&(1<<c) != 0 }

// acceptance is what a request's Accept-Encoding says: the codings it
// accepts, and its bucket, the one coding among identity, gzip, br and
// zstd it prefers (highest q-value, ties broken by bucketOrder).
type acceptance struct {
	accepts codingSet
	bucket  coding
}

// identityOnly is the acceptance of a request without Accept-Encoding.
var identityOnly = acceptance{accepts: 1 << identity, bucket: identity}

// acceptedCodings returns the acceptance of r's Accept-Encoding.
//
// A request without the field accepts identity only: RFC 9110 §12.5.3
// lets a server send any coding then, but the clients that omit it
// (scripts, curl, health checks) are the ones that cannot decode. A coding
// is accepted if its q-value, or else that of "*", is above zero;
// identity is accepted unless "identity;q=0", or "*;q=0" without an
// identity of its own, refuses it. "x-gzip" is gzip. Elements that do not
// parse are ignored.
func acceptedCodings(r *http.Request) acceptance {
	vs, ok := r.Header["Accept-Encoding"]
	if !ok {
		return identityOnly
	}
	if len(vs) == 1 {
		// What browsers and HTTP libraries send: parsed once, at
		// start, by the same parser.
		for i := range commonAcceptEncodings {
			if c := &commonAcceptEncodings[i]; c.value == vs[0] {
				return c.acceptance
			}
		}
	}
	return parseAcceptEncoding(vs)
}

// commonAcceptEncodings are the acceptances of the Accept-Encoding values
// most requests send, most frequent first: a scan of a few string
// comparisons (most fail on the length) costs less than hashing.
var commonAcceptEncodings = func() []commonAcceptEncoding {
	values := []string{
		"gzip, deflate, br, zstd", "gzip, deflate, br", "gzip", "gzip, deflate", "br, gzip",
		"gzip,deflate", "gzip, br", "deflate, gzip", "identity", "*",
	}
	out := make([]commonAcceptEncoding, len(values))
	for i, v := range values {
		out[i] = commonAcceptEncoding{v, parseAcceptEncoding([]string{v})}
	}
	return out
}()

type commonAcceptEncoding struct {
	value string
	acceptance
}

// qUnset marks a coding Accept-Encoding does not name.
const qUnset = -1

// parseAcceptEncoding returns the acceptance of the field lines vs.
func parseAcceptEncoding(vs []string) acceptance {
	var q [otherCoding]int // per known coding, in thousandths
	for i := range q {
		q[i] = qUnset
	}
	star := qUnset
	for _, line := range vs {
		for len(line) > 0 {
			var elem string
			elem, line, _ = strings.Cut(line, ",")
			name, params, _ := strings.Cut(elem, ";")
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			qv, ok := qParam(params)
			if !ok {
				continue
			}
			if name == "*" {
				star = max(star, qv)
				continue
			}
			if c := codingOf(name); c != otherCoding {
				q[c] = max(q[c], qv)
			}
		}
	}
	var a acceptance
	for c := range q {
		v := q[c]
		if v == qUnset {
			v = star
		}
		if v == qUnset && coding(c) == identity {
			v = 1 // identity is acceptable unless refused
		}
		if v > 0 {
			a.accepts |= 1 << c
			q[c] = v
		} else {
			q[c] = 0
		}
	}
	best := 0
	for _, c := range bucketOrder {
		if q[c] > best {
			best, a.bucket = q[c], c
		}
	}
	return a
}

// codingOf returns the coding named token (case-insensitive).
func codingOf(token string) coding {
	switch token { // the usual spellings, without folding
	case "gzip":
		return gzipCoding
	case "br":
		return brCoding
	case "zstd":
		return zstdCoding
	}
	switch {
	case strings.EqualFold(token, "gzip"), strings.EqualFold(token, "x-gzip"):
		return gzipCoding
	case strings.EqualFold(token, "br"):
		return brCoding
	case strings.EqualFold(token, "zstd"):
		return zstdCoding
	case strings.EqualFold(token, "identity"):
		return identity
	}
	return otherCoding
}

// qParam returns the q-value among an element's parameters, in
// thousandths (1000 when absent), and false if it does not parse
// (RFC 9110 §12.4.2: "0" to "1" with up to three decimals).
func qParam(params string) (int, bool) {
	for len(params) > 0 {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		return parseQ(strings.TrimSpace(v))
	}
	return 1000, true
}

func parseQ(v string) (int, bool) {
	if v == "" || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	n := int(v[0]-'0') * 1000
	if len(v) == 1 {
		return n, true
	}
	if v[1] != '.' || len(v) > 5 {
		return 0, false
	}
	scale := 100
	for _, d := range v[2:] {
		if d < '0' || d > '9' {
			return 0, false
		}
		n += int(d-'0') * scale
		scale /= 10
	}
	if n > 1000 {
		return 0, false
	}
	return n, true
}

// contentCoding returns the coding of a stored response's body: identity
// when it has no Content-Encoding (or "identity"), otherCoding for one
// the proxy does not know or a stack of several.
func contentCoding(h tiers.Header) coding {
	ce := h.Canonical("Content-Encoding")
	if ce == "" {
		return identity
	}
	if strings.IndexByte(ce, ',') >= 0 {
		return otherCoding
	}
	return codingOf(strings.TrimSpace(ce))
}

// delivery says how a stored entry answers a request.
type delivery uint8

const (
	asStored delivery = iota // its body as it is stored
	decoded                  // its gzip body decoded by the proxy
	refused                  // not at all: its coding is not acceptable
)

// deliveryOf decides how an entry stored with header h may answer a
// request whose acceptance is a:
// as stored if a accepts its coding (identity always: RFC 9110 §12.5.3
// lets a server send identity even to a client that refuses it, rather
// than a 406); decoded if it is gzip and may be transformed (no
// no-transform, RFC 9110 §7.7); else refused. It is the one judge of
// codings: usability and writeEntry both ask it.
func deliveryOf(h tiers.Header, a acceptance) delivery {
	c := contentCoding(h)
	switch {
	case c == identity || (c != otherCoding && a.accepts.has(c)):
		return asStored
	case c == gzipCoding && !parseCacheControl(h).noTransform:
		return decoded
	case c == otherCoding && !registeredCoding(h.Canonical("Content-Encoding")):
		// A label no registry knows (an origin's own): the proxy cannot
		// judge who may read it, and serves it as the origin sent it,
		// as a cache reuses what it stored (RFC 9111 §3; the
		// conformance suite's headers-store-Content-Encoding).
		return asStored
	}
	return refused
}

// servesEveryCoding reports whether a stored response with header h
// answers every client, whatever its Accept-Encoding, in a coding that
// client accepts: an identity body, or a gzip body decoded for the
// clients that do not accept gzip (deliveryOf). Its one copy is then each
// client's variant, so it need not vary on Accept-Encoding in the cache
// (selectingHeaders), as a response the proxy compressed itself does not.
// A coding that a client may not accept and the proxy does not decode
// (br, zstd, deflate, a label of the origin's own) does not.
func servesEveryCoding(h tiers.Header) bool {
	c := contentCoding(h)
	return (c == identity || c == gzipCoding) &&
		deliveryOf(h, identityOnly) != refused
}

// selectingHeaders returns the request headers that select the stored
// variant of a response that varies on vary (its Vary) and is stored with
// header h: vary without Accept-Encoding when h's coding serves every
// client (servesEveryCoding), else vary. So an origin that compresses and
// sends "Vary: Accept-Encoding", as most do, has its URL stored once, as
// Varnish stores it, not once a bucket of Accept-Encoding and behind a
// Vary marker (issue 21: 400 bytes and a second lookup a URL).
func selectingHeaders(vary []string, h tiers.Header) []string {
	i := slices.Index(vary, "Accept-Encoding")
	if i < 0 || !servesEveryCoding(h) {
		return vary
	}
	if len(vary) == 1 {
		return nil
	}
	return slices.Delete(slices.Clone(vary), i, i+1)
}

// registeredCoding reports whether a Content-Encoding value names, alone
// or in a list, a coding of the IANA registry that the proxy does not
// decode (deflate, compress, exi, pack200-gzip, aes128gcm, dcb, dcz):
// one a client may be unable to read, refused unless it accepts it.
func registeredCoding(ce string) bool {
	for c := range strings.SplitSeq(ce, ",") {
		switch strings.ToLower(strings.TrimSpace(c)) {
		case "deflate", "compress", "x-compress", "exi", "pack200-gzip", "aes128gcm", "dcb", "dcz":
			return true
		}
	}
	return strings.Contains(ce, ",") // a stack of codings
}
