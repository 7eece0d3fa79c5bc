package shared

import (
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// hashTag returns what Redis Cluster hashes for key: the part between
// the first '{' and the next '}' if it is not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func TestRedisKey(t *testing.T) {
	tier := &Tier{prefix: "cp"}
	tests := []struct {
		key, want string
	}{
		{"cp:1:G:/rank?a=1", "cp:{1:G:/rank?a=1}"},
		{"cp:1:G:/rank#Accept:json\n", "cp:{1:G:/rank}#Accept:json\n"},
		{"cp:1:G@a.example:/x", "cp:{1:G@a.example:/x}"},
		{"other:k", "{other:k}"},
		{"k", "{k}"},
	}
	for _, tt := range tests {
		if got := tier.redisKey(tt.key); got != tt.want {
			t.Errorf("redisKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// An entry, its variants and its leases share one slot, chosen by the
// tier; the fleet's metadata share another; no key a request can form
// chooses a slot by its braces.
func TestKeySlots(t *testing.T) {
	tier := &Tier{prefix: "cp"}
	base := "cp:1:G:/players/7?x=1"
	tag := hashTag(tier.redisKey(base))
	for _, k := range []string{
		tier.redisKey(base + "#Accept:a\n"),
		tier.redisKey(base + "#Accept:{b}\n"),
		tier.leaseKey(base),
		tier.leaseKey(base + "#Accept:a\n"),
		tier.revalidationKey(base),
	} {
		if got := hashTag(k); got != tag {
			t.Errorf("%q hashes %q, want the entry's %q", k, got, tag)
		}
	}
	for _, k := range []string{tier.metaKey("purge:seq"), tier.metaKey("members"), tier.metaKey("member:a")} {
		if got := hashTag(k); got != "cp" {
			t.Errorf("%q hashes %q, want the prefix", k, got)
		}
	}
	// Braces in a key never act: two keys sharing "{a}" get their own
	// tags, the variants of one still share its tag, and an empty base
	// is no empty tag.
	k1, k2 := tier.redisKey("cp:/{a}1"), tier.redisKey("cp:/{a}2")
	if hashTag(k1) == "a" || hashTag(k1) == hashTag(k2) {
		t.Errorf("braces chose a slot: %q, %q", k1, k2)
	}
	if v := tier.redisKey("cp:/{a}1#V:x"); hashTag(v) != hashTag(k1) {
		t.Errorf("variant %q not in its entry's slot %q", v, k1)
	}
	if k := tier.redisKey("cp:/a}b"); hashTag(k) == "/a" || !strings.Contains(k, "/a}b") {
		t.Errorf("closing brace acted, or key lost: %q", k)
	}
	if k := tier.redisKey("cp:#x"); hashTag(k) == k {
		t.Errorf("empty base left no tag: %q", k)
	}
	// No entry key is a metadata key.
	for _, k := range []string{"cp:cp", "cp:cp}:purge:seq", "cp:cp:purge:seq"} {
		if tier.redisKey(k) == tier.metaKey("purge:seq") {
			t.Errorf("entry key %q maps onto the purge sequence", k)
		}
	}
}

func TestReplyKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{redis.Nil, ""},
		{errors.New("dial tcp: connection refused"), ""},
		{redis.ErrClosed, ""},
		{proto("CROSSSLOT Keys in request don't hash to the same slot"), "CROSSSLOT"},
		{proto("NOPERM this user has no permissions to access one of the channels"), "NOPERM"},
		{proto("READONLY You can't write against a read only replica."), "READONLY"},
		{proto("WRONGPASS invalid username-password pair"), "WRONGPASS"},
		{proto("SOMETHING new"), "other"},
		{proto("ERR The user executing the script can't publish to the channel mentioned in the command script: 1dbc, on @user_script:23."), "NOPERM"},
		{proto("ERR syntax error"), "ERR"},
	}
	for _, tt := range tests {
		if got := replyKind(tt.err); got != tt.want {
			t.Errorf("replyKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// proto returns an error reply as go-redis gives one.
func proto(msg string) error {
	c := redis.NewStatusCmd(nil)
	c.SetErr(redisError(msg))
	return c.Err()
}

type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}
