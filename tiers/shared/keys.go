package shared

// The keyspace in Redis, laid out so that every multi-key operation
// touches one Redis Cluster hash slot:
//
//   - the fleet's metadata (purge sequence and epoch, ban log, floor, byte
//     count, members) under one hash tag, the key prefix:
//     "<prefix>:{<prefix>}:purge:seq", "<prefix>:{<prefix>}:members", ...
//     The purge script, the heartbeat and every other script over them run
//     on one node.
//   - an entry, its Vary variants and its leases under the entry's own
//     hash tag, the part of its key before the variant separator '#':
//     "<prefix>:{1:G:/path?q}" and "<prefix>:{1:G:/path?q}#Accept:...",
//     "<prefix>:lease:{1:G:/path?q}". Entries spread over every master;
//     the lease script (entry and lease) runs on the entry's node.
//
// The caller's keys are mapped here, in one function (redisKey), used by
// every call that names an entry. The tag is chosen by the tier, never by
// a request: a canonical URL holds no '{' or '}' (they are always
// percent-encoded), and a key that does anyway is tagged with a hash of
// its base instead, so that no brace it holds acts as a tag.
//
// The metadata's keys never collide with an entry's: after the prefix,
// an entry key's tag is followed by nothing or by '#' (or by '!' for a
// hashed tag), the metadata's by ':'. Keys written by versions before
// this layout (no braces) are simply never read again: misses, which
// expire.

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// redisKey returns the Redis key of the caller's key: its base (see
// tiers.SplitKey, without the tier's prefix) as the hash tag, then the
// variant part.
func (t *Tier) redisKey(key string) string {
	head, rest := "", key
	if len(key) > len(t.prefix) && key[len(t.prefix)] == ':' && strings.HasPrefix(key, t.prefix) {
		head, rest = key[:len(t.prefix)+1], key[len(t.prefix)+1:]
	}
	base, suffix, variant := tiers.SplitKey(rest)
	if base == "" || strings.ContainsAny(base, "{}") {
		// A brace would end or start the tag where the key says (and
		// an empty tag is no tag): tag a hash of the base, and keep the
		// whole key after it.
		sum := sha256.Sum256([]byte(base))
		return head + "{" + hex.EncodeToString(sum[:16]) + "}!" + rest
	}
	var b strings.Builder
	b.Grow(len(head) + len(base) + len(suffix) + 3)
	b.WriteString(head)
	b.WriteByte('{')
	b.WriteString(base)
	b.WriteByte('}')
	if variant {
		b.WriteString(tiers.VariantSep)
		b.WriteString(suffix)
	}
	return b.String()
}

// leaseKey returns the key of the fill lease on the caller's key, in the
// entry's slot.
func (t *Tier) leaseKey(key string) string {
	return t.prefix + ":lease:" + strings.TrimPrefix(t.redisKey(key), t.prefix+":")
}

// revalidationKey returns the key of the revalidation lease on the
// caller's key, in the entry's slot.
func (t *Tier) revalidationKey(key string) string {
	return t.prefix + ":revalidate:" + strings.TrimPrefix(t.redisKey(key), t.prefix+":")
}

// metaKey returns the key of the fleet's metadata named name, under the
// prefix's hash tag.
func (t *Tier) metaKey(name string) string { return metaKeyOf(t.prefix, name) }

// metaKeyOf returns the key of the fleet's metadata named name under
// prefix, in the prefix's hash tag: one Cluster slot for all of it.
func metaKeyOf(prefix, name string) string {
	return prefix + ":{" + prefix + "}:" + name
}
