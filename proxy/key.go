package proxy

import (
	"net/http"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// keyVersion is part of every key, so a change of key format never reads
// entries written under the old one.
const keyVersion = "1"

// baseKey returns the cache key of a GET or HEAD request for the
// canonical target t: prefix, key format version, method class (GET and
// HEAD share "G"), the served host when the proxy serves several (see
// Options.Hosts), and the canonical URL. No byte of a canonical URL is
// "#" (the variant separator), and a host is one of the configured names.
func baseKey(prefix, host string, t target) string {
	if host != "" {
		prefix += ":" + keyVersion + ":G@" + host
	} else {
		prefix += ":" + keyVersion + ":G"
	}
	return keyOf(prefix, t)
}

// keyOf returns the key of t under pre, the key's first part (prefix,
// version and method class): pre + ":" + the canonical URL.
func keyOf(pre string, t target) string {
	if t.query == "" {
		return pre + ":" + t.path
	}
	return pre + ":" + t.path + "?" + t.query
}

// variantKey returns the key of the variant of base selected by the
// values of the request headers named in vary, as the origin is sent them
// for r (see outValues). A header that is absent differs from one that is
// present but empty (RFC 9111 §4.1).
func (h *Handler) variantKey(base string, vary []string, r *http.Request) string {
	return variantKey(base, vary, func(name string) ([]string, bool) { return h.outValues(r, name) })
}

// variantKey returns the key of the variant of base selected by the
// header values that values returns for the names in vary.
func variantKey(base string, vary []string, values func(name string) ([]string, bool)) string {
	var b strings.Builder
	b.Grow(len(base) + 32*len(vary))
	b.WriteString(base)
	b.WriteString(tiers.VariantSep)
	for _, name := range vary {
		b.WriteString(name)
		vs, ok := values(name)
		if !ok {
			b.WriteString("\x01\n")
			continue
		}
		b.WriteByte(':')
		v := normalizeFieldValue(vs)
		if caseInsensitive[name] {
			v = strings.ToLower(v)
		}
		// A value is one line: a field value holds no CR or LF, but
		// escape them all the same, so no value can end a line.
		if strings.ContainsAny(v, "\\\r\n") {
			v = lineEscaper.Replace(v)
		}
		b.WriteString(v)
		b.WriteByte('\n')
	}
	return b.String()
}

var lineEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")

// caseInsensitive lists the request headers whose values are compared
// without regard to case: language tags (RFC 4647 §2) and content codings
// (RFC 9110 §8.4.1), so that "en-US" and "en-us" select one variant.
var caseInsensitive = map[string]bool{"Accept-Language": true, "Accept-Encoding": true}

// normalizeFieldValue combines the field lines of one header into one
// value and removes optional whitespace around its list separators, so
// that "gzip,br" and "gzip, br" select the same variant.
func normalizeFieldValue(vs []string) string {
	if len(vs) == 1 && !strings.ContainsAny(vs[0], " \t") {
		return vs[0]
	}
	var parts []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	return strings.Join(parts, ",")
}

// parseVary returns the canonical header names listed in a response's Vary
// fields, without duplicates, and whether any of them is "*".
func parseVary(h http.Header) (names []string, star bool) {
	for _, v := range h.Values("Vary") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "":
				continue
			case p == "*":
				star = true
				continue
			}
			name := http.CanonicalHeaderKey(p)
			dup := false
			for _, n := range names {
				if n == name {
					dup = true
					break
				}
			}
			if !dup {
				names = append(names, name)
			}
		}
	}
	return names, star
}

// Key returns the base cache key of a canonical URL (see CanonicalURL):
// the key of its entry, or of the Vary marker that leads to its variants.
// With Hosts, a URL has one key per host: Key returns "" (purges rely on
// their ban alone).
func (h *Handler) Key(canonicalURL string) string {
	if h.hosts != nil {
		return ""
	}
	p, q, _ := strings.Cut(canonicalURL, "?")
	return baseKey(h.o.KeyPrefix, "", target{path: p, query: q})
}
