package tiers

import (
	"cmp"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A Ban is a recorded purge, in the manner of Varnish bans: rather than
// finding and deleting what it names, every entry is checked against the
// bans recorded after its fill started, when it is read. An entry whose
// Seq is below a matching ban's Seq is dead. Its wire form is in
// banwire.go.
type Ban struct {
	// Seq orders bans fleet-wide; it is assigned when the ban is
	// recorded (in Redis), starting at 1.
	Seq uint64
	// Selector is what the ban names.
	Selector
	// At is when the ban was recorded.
	At time.Time
	// ID identifies the purge request, so its sender can collect the
	// confirmations of the fleet.
	ID string
}

// Defaults of the bounds of a ban table (Bans.MaxBans, Bans.MaxBytes);
// the fleet keeps its log in Redis within the same bounds.
const (
	DefaultMaxBans     = 100_000
	DefaultMaxBanBytes = 64 << 20
)

// BanOverhead is what a held ban is counted to cost, in bytes, on top of
// its Value, toward Bans.MaxBytes: about what the table spends on one ban
// (its list node, its index entries and its trie leaf), and somewhat more
// than a ban costs Redis.
const BanOverhead = 256

// BanCost is what a ban naming value counts toward Bans.MaxBytes and the
// Redis log's byte bound.
func BanCost(value string) int { return len(value) + BanOverhead }

// Bans is the table of bans an instance has applied.
//
// Readers (every cache hit calls Dead) never block and never allocate:
// the table is an immutable snapshot, swapped atomically on each change.
// Its indexes are persistent tries (banMap), so a change copies only the
// few nodes on the path to the names it touches: applying a ban costs
// O(log n), not a copy of the table.
//
// Writers are serialised. They also keep, for themselves, every held ban
// in one list in sequence order (and so, but for clock skew, in time
// order), holding only the newest ban of each name: pruning takes the
// oldest off its head, and nothing ever scans the table.
//
// The table is bounded (MaxBans, MaxBytes). Past a bound the oldest bans
// are collapsed into the table's all-ban: a ban kills only entries whose
// Seq is below its own, so raising the all-ban to the Seq of the newest
// ban dropped kills every entry the dropped bans named, and more. That
// costs hit ratio (every entry older than the collapse is dead, as after
// a purge of everything), never correctness: no entry a dropped ban names
// survives.
//
// The zero value is an empty table with the default bounds, ready to use.
// Set MaxBans and MaxBytes, if at all, before its first use.
type Bans struct {
	// MaxBans bounds the number of bans held (one per name: URL,
	// prefix or tag). If zero, DefaultMaxBans.
	MaxBans int
	// MaxBytes bounds the bytes the bans held are counted to cost (see
	// BanCost). If zero, DefaultMaxBanBytes.
	MaxBytes int

	mu   sync.Mutex // serialises writers and guards w
	w    banLog
	snap atomic.Pointer[banSnapshot]
	// soft holds the soft bans (Selector.Soft), in a table of its own:
	// what it matches is stale, not dead. Nil until the first one.
	soft atomic.Pointer[Bans]
}

// banSnapshot is one immutable state of the table. For each name only the
// newest ban matters, so each map keeps the highest sequence number.
type banSnapshot struct {
	applied uint64 // highest Seq applied
	maxSeq  uint64 // highest Seq of any ban held, the all-ban included
	// all kills every entry whose Seq is below it: a BanAll, or the bans
	// collapsed at a bound.
	all      uint64
	seed     maphash.Seed // hashes the maps' keys; zero while they are empty
	urls     banMap
	tags     banMap
	prefixes banMap
	lens     []int // distinct lengths of the prefixes, ascending; never mutated
}

// banLog is the writers' side of the table, guarded by Bans.mu.
type banLog struct {
	seed       maphash.Seed
	names      map[Selector]*heldBan
	head, tail *heldBan // oldest and newest
	bytes      int      // sum of BanCost of the bans held
	lens       map[int]int
	edit       *editToken // the running Apply's, for the maps' nodes
}

// heldBan is the newest ban of one name, a node of the writers' list.
type heldBan struct {
	name       Selector
	seq        uint64
	at         time.Time
	prev, next *heldBan
}

var emptySnapshot = &banSnapshot{}

func (t *Bans) load() *banSnapshot {
	if s := t.snap.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

// Applied returns the highest sequence number applied: every ban up to it
// is in the table, but for bans pruned as too old to matter and bans
// collapsed into the all-ban. A fill records it in the entry it stores.
func (t *Bans) Applied() uint64 { return t.load().applied }

// Dead reports whether a ban recorded after e's fill started matches e.
// It costs one atomic load when no such ban exists, and never allocates.
func (t *Bans) Dead(e *Entry) bool {
	s := t.load()
	if e.Seq >= s.maxSeq {
		return false
	}
	return s.dead(e, e.Seq)
}

// Stale reports whether a soft ban (Selector.Soft) recorded after e's
// fill started matches e: e is then stale, whatever its freshness says,
// until a fill newer than the ban replaces it. It costs one atomic load
// when there has never been a soft ban.
func (t *Bans) Stale(e *Entry) bool {
	soft := t.soft.Load()
	return soft != nil && soft.Dead(e)
}

// DeadAt is Dead for a table numbered otherwise than by the fleet's
// sequence: it judges e as if its Seq were seq. (The local tier numbers
// its own purges by time, and gives an entry the time it was stored.)
func (t *Bans) DeadAt(e *Entry, seq uint64) bool {
	s := t.load()
	if seq >= s.maxSeq {
		return false
	}
	return s.dead(e, seq)
}

// dead reports whether a ban numbered above seq matches e.
func (s *banSnapshot) dead(e *Entry, seq uint64) bool {
	if seq < s.all {
		return true
	}
	if s.urls.n > 0 {
		if banSeq, ok := s.urls.get(hashName(s.seed, e.URL), e.URL); ok && seq < banSeq {
			return true
		}
	}
	if s.tags.n > 0 {
		for _, tag := range e.Tags() {
			if banSeq, ok := s.tags.get(hashName(s.seed, tag), tag); ok && seq < banSeq {
				return true
			}
		}
	}
	for _, n := range s.lens {
		if n > len(e.URL) {
			break
		}
		p := e.URL[:n]
		if banSeq, ok := s.prefixes.get(hashName(s.seed, p), p); ok && seq < banSeq {
			return true
		}
	}
	return false
}

// Limits returns the table's bounds, defaults applied: the number of bans
// and the bytes they may cost.
func (t *Bans) Limits() (maxBans, maxBytes int) {
	maxBans, maxBytes = t.MaxBans, t.MaxBytes
	if maxBans <= 0 {
		maxBans = DefaultMaxBans
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBanBytes
	}
	return maxBans, maxBytes
}

// Apply adds bans to the table and raises Applied to the highest of their
// sequence numbers. Bans already applied (Seq <= Applied) are ignored.
// Bans applied before and recorded at or before now-keep are pruned,
// oldest first: no entry filled before them can still be alive. If keep
// <= 0 nothing is pruned by age. Then, while the table is past a bound,
// its oldest bans are collapsed into the all-ban (see Bans).
//
// A ban costs O(log n) in a table of n: Apply never copies or scans the
// table, and prunes or collapses each ban once.
func (t *Bans) Apply(now time.Time, keep time.Duration, bans ...Ban) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := *t.load()
	w := &t.w
	if w.names == nil {
		w.names = make(map[Selector]*heldBan)
		w.lens = make(map[int]int)
		w.seed = maphash.MakeSeed()
	}
	s.seed = w.seed
	w.edit = new(editToken)
	defer func() { w.edit = nil }()
	if !slices.IsSortedFunc(bans, byBanSeq) {
		bans = slices.SortedFunc(slices.Values(bans), byBanSeq)
	}
	lensChanged, prior := false, s.applied
	var soft []Ban
	for _, b := range bans {
		if b.Seq <= s.applied {
			continue
		}
		s.applied = b.Seq
		b = widen(b)
		if b.Soft {
			soft = append(soft, b)
			continue
		}
		if b.Kind == BanAll {
			// Every ban held is older, so redundant: drop them all.
			s.all = b.Seq
			s.urls, s.tags, s.prefixes, s.lens = banMap{}, banMap{}, banMap{}, nil
			w.names = make(map[Selector]*heldBan)
			w.lens = make(map[int]int)
			w.head, w.tail, w.bytes = nil, nil, 0
			lensChanged = false
			continue
		}
		if b.Kind != BanURL && b.Kind != BanTag && b.Kind != BanPrefix {
			continue
		}
		if w.hold(&s, b) {
			lensChanged = true
		}
	}
	if keep > 0 {
		// A ban applied now is pruned at a later Apply at the earliest,
		// whatever its At says (another clock may be behind ours).
		cutoff := now.Add(-keep)
		for h := w.head; h != nil && h.seq <= prior && !h.at.After(cutoff); h = w.head {
			if w.drop(&s, h) {
				lensChanged = true
			}
		}
	}
	maxBans, maxBytes := t.Limits()
	for h := w.head; h != nil && (len(w.names) > maxBans || w.bytes > maxBytes); h = w.head {
		// Every entry h kills has a Seq below h.seq.
		s.all = max(s.all, h.seq)
		if w.drop(&s, h) {
			lensChanged = true
		}
	}
	if lensChanged {
		s.lens = make([]int, 0, len(w.lens))
		for n := range w.lens {
			s.lens = append(s.lens, n)
		}
		slices.Sort(s.lens)
	}
	s.maxSeq = s.all
	if w.tail != nil {
		s.maxSeq = max(s.maxSeq, w.tail.seq)
	}
	t.snap.Store(&s)
	if len(soft) > 0 || t.soft.Load() != nil {
		t.applySoft(now, keep, soft)
	}
}

// applySoft applies soft bans to the soft table, within the same bounds
// (past them its oldest collapse into "everything is stale": more
// revalidation, never an entry served fresh that a soft purge named).
// Called with t.mu held.
func (t *Bans) applySoft(now time.Time, keep time.Duration, bans []Ban) {
	st := t.soft.Load()
	if st == nil {
		st = &Bans{MaxBans: t.MaxBans, MaxBytes: t.MaxBytes}
		t.soft.Store(st)
	}
	for i := range bans {
		bans[i].Soft = false // a plain ban in the soft table
	}
	st.Apply(now, keep, bans...)
}

func byBanSeq(a, b Ban) int { return cmp.Compare(a.Seq, b.Seq) }

// widen returns b, or if its Value is longer than MaxBanValue a ban of
// its first MaxBanValue bytes that matches everything b matches.
func widen(b Ban) Ban {
	if len(b.Value) <= MaxBanValue {
		return b
	}
	switch b.Kind {
	case BanURL, BanPrefix:
		b.Kind = BanPrefix
		b.Value = strings.Clone(b.Value[:MaxBanValue])
	default:
		b.Kind = BanAll
		b.Value = ""
	}
	return b
}

// indexOf returns the snapshot's map for kind.
func (s *banSnapshot) indexOf(kind BanKind) *banMap {
	switch kind {
	case BanURL:
		return &s.urls
	case BanTag:
		return &s.tags
	default:
		return &s.prefixes
	}
}

// hold makes b the newest ban of its name, at the tail of the list. It
// reports whether the set of prefix lengths changed.
func (w *banLog) hold(s *banSnapshot, b Ban) bool {
	name := b.Selector
	m := s.indexOf(b.Kind)
	*m = m.set(w.edit, hashName(w.seed, b.Value), b.Value, b.Seq)
	h := w.names[name]
	lensChanged := false
	if h != nil {
		w.unlink(h)
	} else {
		h = &heldBan{name: name}
		w.names[name] = h
		w.bytes += BanCost(b.Value)
		if b.Kind == BanPrefix {
			w.lens[len(b.Value)]++
			lensChanged = w.lens[len(b.Value)] == 1
		}
	}
	h.seq, h.at = b.Seq, b.At
	h.prev, h.next = w.tail, nil
	if w.tail != nil {
		w.tail.next = h
	} else {
		w.head = h
	}
	w.tail = h
	return lensChanged
}

// drop forgets the held ban h. It reports whether the set of prefix
// lengths changed.
func (w *banLog) drop(s *banSnapshot, h *heldBan) bool {
	w.unlink(h)
	delete(w.names, h.name)
	w.bytes -= BanCost(h.name.Value)
	m := s.indexOf(h.name.Kind)
	*m = m.del(w.edit, hashName(w.seed, h.name.Value), h.name.Value)
	if h.name.Kind != BanPrefix {
		return false
	}
	n := len(h.name.Value)
	if w.lens[n]--; w.lens[n] > 0 {
		return false
	}
	delete(w.lens, n)
	return true
}

func (w *banLog) unlink(h *heldBan) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		w.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		w.tail = h.prev
	}
	h.prev, h.next = nil, nil
}

// Len returns the number of distinct names (URLs, prefixes, tags, and
// "all") the table holds bans for.
func (t *Bans) Len() int {
	s := t.load()
	n := s.urls.n + s.tags.n + s.prefixes.n
	if s.all > 0 {
		n++
	}
	return n
}
