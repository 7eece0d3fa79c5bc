package tiers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BanKind says what a Selector names.
type BanKind uint8

const (
	// BanURL names the entries of one canonical URL (path and sorted
	// query), every Vary variant of it.
	BanURL BanKind = 1
	// BanPrefix names every entry whose URL starts with Value.
	BanPrefix BanKind = 2
	// BanTag names every entry tagged Value (Cache-Tag,
	// Surrogate-Key).
	BanTag BanKind = 3
	// BanAll names every entry.
	BanAll BanKind = 4
)

var banKindNames = map[BanKind]string{BanURL: "url", BanPrefix: "prefix", BanTag: "tag", BanAll: "all"}

// BanKinds lists the kinds, in their order.
var BanKinds = []BanKind{BanURL, BanPrefix, BanTag, BanAll}

func (k BanKind) String() string {
	if s, ok := banKindNames[k]; ok {
		return s
	}
	return "BanKind(" + strconv.Itoa(int(k)) + ")"
}

// ParseBanKind returns the kind named s ("url", "prefix", "tag", "all").
func ParseBanKind(s string) (BanKind, bool) {
	for k, name := range banKindNames {
		if name == s {
			return k, true
		}
	}
	return 0, false
}

// A Selector names the entries a purge removes: those of one URL, those
// under a path prefix, those with a tag, or all. It is the whole of a
// purge: the admin API parses one (proxy.ParseSelector), the proxy
// applies it alone or sends it to the fleet (proxy.Handler.Purge), the
// fleet records it as a Ban, and every instance matches entries against
// it. A URL or prefix is in canonical form (proxy.CanonicalURL,
// proxy.CanonicalPrefix), as entries record their URL.
type Selector struct {
	Kind  BanKind
	Value string // "" for BanAll
	// Soft marks the entries named stale instead of dead (Fastly's soft
	// purge, Varnish's xkey.softpurge): they are revalidated before they
	// are served fresh again, and may be served stale meanwhile, as
	// stale-while-revalidate allows (one refresh per key for the fleet),
	// and when the origin fails, as their own stale-if-error allows.
	Soft bool
}

// All is the selector of every entry.
var All = Selector{Kind: BanAll}

// String is the selector as the admin API names it: "url=/a?b=1",
// "prefix=/players/", "tag=rank", "all".
func (s Selector) String() string {
	name := s.Kind.String() + "=" + s.Value
	if s.Kind == BanAll {
		name = "all"
	}
	if s.Soft {
		return "soft " + name
	}
	return name
}

// softPrefix starts the wire kind of a soft ban: "soft-url", "soft-tag".
const softPrefix = "soft-"

// WireKind is the kind field of s's wire form (see Ban.String): the
// kind's name, "soft-" before it for a soft purge. An instance that does
// not know soft purges refuses such a ban as of an unknown kind.
func (s Selector) WireKind() string {
	if s.Soft {
		return softPrefix + s.Kind.String()
	}
	return s.Kind.String()
}

// parseWireKind reads a wire kind written by WireKind.
func parseWireKind(w string) (kind BanKind, soft, ok bool) {
	name, soft := strings.CutPrefix(w, softPrefix)
	kind, ok = ParseBanKind(name)
	return kind, soft, ok
}

// Validate reports whether s can be recorded: a known kind; a URL or
// prefix that starts with "/"; a tag that is one name, without commas
// or white space (the way Cache-Tag lists them); nothing for all; and
// at most MaxBanValue bytes (ErrBanTooLong).
func (s Selector) Validate() error {
	switch s.Kind {
	case BanURL, BanPrefix:
		if !strings.HasPrefix(s.Value, "/") {
			return fmt.Errorf("%s %q must start with /", s.Kind, s.Value)
		}
	case BanTag:
		if s.Value == "" || strings.ContainsAny(s.Value, ", \t\r\n") {
			return fmt.Errorf("tag %q must be one non-empty name without commas or spaces", s.Value)
		}
	case BanAll:
		if s.Value != "" {
			return fmt.Errorf("all names everything: no value, not %q", s.Value)
		}
	default:
		return fmt.Errorf("unknown purge kind %s", s.Kind)
	}
	if len(s.Value) > MaxBanValue {
		return fmt.Errorf("%s is %d bytes in canonical form: at most %d (longer URLs are never cached): %w",
			s.Kind, len(s.Value), MaxBanValue, ErrBanTooLong)
	}
	return nil
}

// Matches reports whether s names e.
func (s Selector) Matches(e *Entry) bool {
	switch s.Kind {
	case BanAll:
		return true
	case BanURL:
		return e.URL == s.Value
	case BanPrefix:
		return strings.HasPrefix(e.URL, s.Value)
	case BanTag:
		for _, t := range e.Tags() {
			if t == s.Value {
				return true
			}
		}
	}
	return false
}

// MaxBanValue is the longest Value, in bytes, a ban may name. The fleet
// refuses to record a longer one (Selector.Validate fails with
// ErrBanTooLong), and the proxy does not cache URLs longer than this, so
// such a URL needs no ban. A longer ban that reaches Bans.Apply anyway
// (from an older instance) is widened, never dropped: a URL or prefix
// ban to the prefix ban of its first MaxBanValue bytes, a tag ban to a
// ban of everything.
const MaxBanValue = 8 << 10

// ErrBanTooLong is returned for a selector whose Value is longer than
// MaxBanValue.
var ErrBanTooLong = errors.New("tiers: ban value longer than tiers.MaxBanValue")

// A PurgeResult is what became of a purge recorded for a fleet.
type PurgeResult struct {
	// Ban is the purge as recorded: its Seq orders it fleet-wide.
	Ban Ban
	// Confirmed lists the instances that applied the ban within the
	// wait; Missing those that may still serve what it names.
	Confirmed []string
	Missing   []string
	// MissingUntil gives, for each of Missing, the time (by Redis's
	// clock) by which it serves nothing older than the purge: its local
	// tier is unused or flushed by then, and the fills it had in flight
	// are over.
	MissingUntil map[string]time.Time
	// UnknownUntil, if not zero, is the time (by Redis's clock) until
	// which an instance the fleet could not know of may still serve
	// what the purge names: Redis lost its members with its data
	// (restarted empty, or flushed) too recently for the purge to know
	// every instance that may serve. Such an instance, cut off from
	// Redis since, uses its L1 at most until then.
	UnknownUntil time.Time
}

// Complete reports whether every instance that may still serve what the
// purge names is known to have applied it: none is missing, and none may
// be unknown. It is what a purge's 200 means.
func (r PurgeResult) Complete() bool {
	return len(r.Missing) == 0 && r.UnknownUntil.IsZero()
}

// The settings that bound an entry's life, at their defaults: the
// proxy's MaxTTL and FillTimeout (proxy.Options).
const (
	DefaultMaxTTL      = 24 * time.Hour
	DefaultFillTimeout = 30 * time.Second
)

// BanRetention is how long a purge must be remembered, alone or in a
// fleet: no entry filled before it can be alive after that. An entry is
// kept at most maxTTL in any tier after the fill that made it, and a fill
// lasts at most fillTimeout; a minute more covers the stores in flight
// and the clocks, and the margin is at least an hour (25 h at the
// defaults, as docs/consistency.md states). The ban table (Bans.Apply),
// the fleet's log in Redis and the per-client ban budget all use this
// one value.
func BanRetention(maxTTL, fillTimeout time.Duration) time.Duration {
	return maxTTL + max(time.Hour, fillTimeout+time.Minute)
}
