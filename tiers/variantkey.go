package tiers

import "strings"

// A key names an entry in a tier: the base key of a URL, or the key of
// one of its variants, the base key then VariantSep then the variant's
// suffix (the values of the request headers its Vary names). A base key
// never holds VariantSep (no canonical URL does), so a key splits at the
// first one.
const VariantSep = "#"

// VariantKey returns the key of the variant of base with suffix.
func VariantKey(base, suffix string) string { return base + VariantSep + suffix }

// SplitKey returns the base key of key, and its variant's suffix if key
// names a variant (variant).
func SplitKey(key string) (base, suffix string, variant bool) {
	return strings.Cut(key, VariantSep)
}
