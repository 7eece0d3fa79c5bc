package proxy

import (
	"errors"
	"strconv"
)

// A ClientNoCachePolicy is how a client's request for the origin's answer
// (Cache-Control: no-cache or max-age=0, Pragma: no-cache, as a browser's
// reload sends) is treated: see Options.ClientNoCache. Its spellings in
// configuration are those of String and ParseClientNoCache. This file
// calls nothing else in the package.
type ClientNoCachePolicy uint8

// The policies.
const (
	// NoCacheDefault is no policy of its own: on a Route, the Handler's
	// (but NoCacheIgnore on an Override route); on Options, NoCacheHonour.
	NoCacheDefault ClientNoCachePolicy = iota
	// NoCacheHonour follows RFC 9111: a stored entry is revalidated with
	// a conditional request when it has a validator, else fetched again.
	NoCacheHonour
	// NoCacheRevalidate only revalidates: an entry without a validator is
	// served as if the directive were absent, so no client can make the
	// proxy fetch it whole at will.
	NoCacheRevalidate
	// NoCacheIgnore ignores every request cache directive.
	NoCacheIgnore
	numNoCachePolicies
)

var noCacheNames = [numNoCachePolicies]string{
	NoCacheDefault: "", NoCacheHonour: "honour", NoCacheRevalidate: "revalidate", NoCacheIgnore: "ignore",
}

// errNoCacheSpelling is the error of ParseClientNoCache.
var errNoCacheSpelling = errors.New("want honour, revalidate or ignore")

// ParseClientNoCache returns the policy spelled s: "honour", "revalidate"
// or "ignore".
func ParseClientNoCache(s string) (ClientNoCachePolicy, error) {
	for p := NoCacheHonour; p < numNoCachePolicies; p++ {
		if noCacheNames[p] == s {
			return p, nil
		}
	}
	return NoCacheDefault, errNoCacheSpelling
}

// String returns the policy's spelling in configuration; "" for
// NoCacheDefault.
func (p ClientNoCachePolicy) String() string {
	if !p.valid() {
		return "ClientNoCachePolicy(" + strconv.Itoa(int(p)) + ")"
	}
	return noCacheNames[p]
}

// valid reports whether p is one of the policies (NoCacheDefault
// included).
func (p ClientNoCachePolicy) valid() bool { return p < numNoCachePolicies }
