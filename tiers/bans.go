package tiers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BanKind says what a Ban matches.
type BanKind uint8

const (
	// BanURL matches the entries of one normalised URL (path and
	// sorted query), every Vary variant of it.
	BanURL BanKind = 1
	// BanPrefix matches every entry whose URL starts with Value.
	BanPrefix BanKind = 2
	// BanTag matches every entry tagged Value (Cache-Tag,
	// Surrogate-Key).
	BanTag BanKind = 3
	// BanAll matches every entry.
	BanAll BanKind = 4
)

var banKindNames = map[BanKind]string{BanURL: "url", BanPrefix: "prefix", BanTag: "tag", BanAll: "all"}

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

// A Ban is a recorded purge, in the manner of Varnish bans: rather than
// finding and deleting what it names, every entry is checked against the
// bans recorded after its fill started, when it is read. An entry whose
// Seq is below a matching ban's Seq is dead.
type Ban struct {
	// Seq orders bans fleet-wide; it is assigned when the ban is
	// recorded (in Redis), starting at 1.
	Seq   uint64
	Kind  BanKind
	Value string
	// At is when the ban was recorded.
	At time.Time
	// ID identifies the purge request, so its sender can collect the
	// confirmations of the fleet.
	ID string
}

// Matches reports whether b names e, regardless of sequence numbers.
func (b *Ban) Matches(e *Entry) bool {
	switch b.Kind {
	case BanAll:
		return true
	case BanURL:
		return e.URL == b.Value
	case BanPrefix:
		return strings.HasPrefix(e.URL, b.Value)
	case BanTag:
		for _, t := range e.Tags {
			if t == b.Value {
				return true
			}
		}
	}
	return false
}

// String encodes b as "seq|kind|unixmilli|id|value", the form published
// and stored in Redis. ParseBan reads it back.
func (b *Ban) String() string {
	return strconv.FormatUint(b.Seq, 10) + "|" + b.Kind.String() + "|" +
		strconv.FormatInt(b.At.UnixMilli(), 10) + "|" + b.ID + "|" + b.Value
}

// ParseBan parses the form written by Ban.String.
func ParseBan(s string) (Ban, error) {
	parts := strings.SplitN(s, "|", 5)
	if len(parts) != 5 {
		return Ban{}, fmt.Errorf("tiers: malformed ban %q", s)
	}
	seq, err := strconv.ParseUint(parts[0], 10, 64)
	if err != nil {
		return Ban{}, fmt.Errorf("tiers: malformed ban seq %q", parts[0])
	}
	kind, ok := ParseBanKind(parts[1])
	if !ok {
		return Ban{}, fmt.Errorf("tiers: unknown ban kind %q", parts[1])
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Ban{}, fmt.Errorf("tiers: malformed ban time %q", parts[2])
	}
	return Ban{Seq: seq, Kind: kind, At: time.UnixMilli(ms), ID: parts[3], Value: parts[4]}, nil
}

// Bans is the table of bans an instance has applied. Readers (every cache
// lookup) never block: the table is an immutable snapshot swapped
// atomically on each change. Writers are serialised.
//
// The zero value is an empty table, ready to use.
type Bans struct {
	mu   sync.Mutex // serialises writers
	snap atomic.Pointer[banSnapshot]
}

// banSnapshot is one immutable state of the table. For each name only the
// newest ban matters, so each map keeps the highest sequence number.
type banSnapshot struct {
	applied  uint64 // highest Seq applied
	maxSeq   uint64 // highest Seq of any ban kept
	all      stamp
	urls     map[string]stamp
	tags     map[string]stamp
	prefixes map[string]stamp
	lens     []int // distinct lengths of the prefixes, ascending
}

type stamp struct {
	seq uint64
	at  time.Time
}

var emptySnapshot = &banSnapshot{}

func (t *Bans) load() *banSnapshot {
	if s := t.snap.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

// Applied returns the highest sequence number applied: every ban up to it
// is in the table, but for bans pruned as too old to matter. A fill
// records it in the entry it stores.
func (t *Bans) Applied() uint64 { return t.load().applied }

// Dead reports whether a ban recorded after e's fill started matches e.
// It costs one atomic load when no such ban exists.
func (t *Bans) Dead(e *Entry) bool {
	s := t.load()
	if e.Seq >= s.maxSeq {
		return false
	}
	if e.Seq < s.all.seq {
		return true
	}
	if st, ok := s.urls[e.URL]; ok && e.Seq < st.seq {
		return true
	}
	for _, tag := range e.Tags {
		if st, ok := s.tags[tag]; ok && e.Seq < st.seq {
			return true
		}
	}
	for _, n := range s.lens {
		if n > len(e.URL) {
			break
		}
		if st, ok := s.prefixes[e.URL[:n]]; ok && e.Seq < st.seq {
			return true
		}
	}
	return false
}

// Apply adds bans to the table and raises Applied to the highest of their
// sequence numbers. Bans already applied are ignored. Bans recorded
// before now-keep are pruned: no entry filled before them can still be
// alive.
func (t *Bans) Apply(now time.Time, keep time.Duration, bans ...Ban) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	s := &banSnapshot{
		applied:  old.applied,
		maxSeq:   old.maxSeq,
		all:      old.all,
		urls:     make(map[string]stamp, len(old.urls)),
		tags:     make(map[string]stamp, len(old.tags)),
		prefixes: make(map[string]stamp, len(old.prefixes)),
	}
	cutoff := now.Add(-keep)
	copyFresh := func(dst, src map[string]stamp) {
		for k, v := range src {
			if keep <= 0 || v.at.After(cutoff) {
				dst[k] = v
			}
		}
	}
	copyFresh(s.urls, old.urls)
	copyFresh(s.tags, old.tags)
	copyFresh(s.prefixes, old.prefixes)
	raise := func(m map[string]stamp, k string, st stamp) {
		if cur, ok := m[k]; !ok || cur.seq < st.seq {
			m[k] = st
		}
	}
	for _, b := range bans {
		st := stamp{b.Seq, b.At}
		switch b.Kind {
		case BanAll:
			if b.Seq > s.all.seq {
				s.all = st
			}
		case BanURL:
			raise(s.urls, b.Value, st)
		case BanTag:
			raise(s.tags, b.Value, st)
		case BanPrefix:
			raise(s.prefixes, b.Value, st)
		}
		if b.Seq > s.applied {
			s.applied = b.Seq
		}
		if b.Seq > s.maxSeq {
			s.maxSeq = b.Seq
		}
	}
	seen := map[int]bool{}
	for p := range s.prefixes {
		if !seen[len(p)] {
			seen[len(p)] = true
			s.lens = append(s.lens, len(p))
		}
	}
	sort.Ints(s.lens)
	t.snap.Store(s)
}

// Len returns the number of distinct names (URLs, prefixes, tags, and
// "all") the table holds bans for.
func (t *Bans) Len() int {
	s := t.load()
	n := len(s.urls) + len(s.tags) + len(s.prefixes)
	if s.all.seq > 0 {
		n++
	}
	return n
}
