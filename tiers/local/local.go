// Package local is the in-process cache tier (L1): a memory-bounded map of
// immutable *tiers.Entry values on top of ristretto, with a TinyLFU
// admission policy, per-entry TTLs and a cost equal to each entry's
// estimated memory (tiers.Entry.MemSize).
//
// TTLs are ristretto's (SetWithTTL): an entry past its TTL misses, and
// ristretto's cleanup, run every ttlTick, removes the entries whose TTL
// ended in the last completed 5-second bucket, so an expired entry's
// memory is released within about ReclaimWithin of its TTL, read or not:
// -l1-ttl bounds memory as well as age, and an idle instance gives its
// entries back. (It costs a clock read on a Get of an entry with a TTL,
// about 20 ns.)
//
// A URL whose response varies is one item, under its base key: its
// variants and the Vary marker L1 makes for them (see group.go). A Get of
// a variant key (tiers.SplitKey) looks the variant up in its URL's group,
// a Set of one stores a new group with it, and a Set of a marker stores
// nothing: L1's marker is its own.
//
// Purge drops what a selector names without iterating the cache: a
// small table of local bans (tiers.Bans, numbered by time) that Get and
// Set check an entry against, as the fleet's bans are checked.
//
// Entries are stored by pointer and never copied: a Get returns the very
// Entry that was Set, which callers must treat as read-only (see
// tiers.Entry). The marker a Get of a varying URL's base key returns is
// part of the URL's group: while a caller holds it, it keeps the group's
// variants alive, as a variant keeps its body.
package local

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/cacheproxy/cacheproxy/tiers"
)

const (
	// avgEntryBytes is the entry size assumed when deriving NumCounters.
	avgEntryBytes = 1 << 10
	// minCounters is the smallest derived NumCounters.
	minCounters = 10_000
	// bufferItems is ristretto's recommended Get buffer size.
	bufferItems = 64
	// ttlTickSecs is ristretto's TtlTickerDurationInSec: its cleanup of
	// expired entries runs every half of it.
	ttlTickSecs = 1
	// ReclaimWithin bounds how long after its TTL an entry's memory is
	// released: ristretto files expiries in 5-second buckets and cleans
	// a bucket once the next has begun, checked every half second.
	ReclaimWithin = 11 * time.Second
	// recordBytes is what ristretto keeps per item beside the value: its
	// store map slot (a 48-byte record, its value one pointer: see
	// costOf; the map's control byte and free slots), the admission
	// policy's cost record and the TTL bucket's slot, as the live heap
	// shows it (TestMemSizeMatchesHeap here: 153-163 B at 20,000 items,
	// 141-197 B from 7,000 to 60,000 as the map grows by steps;
	// TestL1BytesPerEntry in proxy). It measured 178 B at 20,000 items
	// while the value was two pointers.
	recordBytes = 164
	// lockStripes is the number of locks that serialise the changes of
	// groups, a URL's always under the same one.
	lockStripes = 64
)

// Options configures a Cache.
type Options struct {
	// MaxBytes bounds the total estimated memory (tiers.Entry.MemSize) of the
	// entries held. Required: it must be greater than zero.
	MaxBytes int64

	// NumCounters is the number of access-frequency counters ristretto's
	// admission policy keeps; about ten times the number of entries the
	// cache holds when full is a good value. Each counter costs about 3
	// bytes. If zero, it is derived from MaxBytes assuming 1 KiB entries
	// (MaxBytes/1024*10, at least 10,000), rounded up to a power of two.
	NumCounters int64

	// Logger receives the cache's logs. If nil, slog.Default().
	Logger *slog.Logger
}

// Cache is an in-process tier. It implements the proxy's Tier interface.
// All methods are safe for concurrent use.
//
// Sets are applied asynchronously by ristretto: a Get right after a Set
// may miss, and a Set may be dropped under contention or refused by the
// admission policy. That is fine for a cache; tests call Wait.
type Cache struct {
	c   *ristretto.Cache[string, *tiers.Entry] // see costOf
	max int64
	log *slog.Logger

	// bans are the local purges (Purge), numbered by time: an entry is
	// dead if a ban newer than its StoredAt names it. maxTTL is the
	// longest TTL given to Set, so a ban may be forgotten once every
	// entry stored before it has expired.
	bans    tiers.Bans
	maxTTL  atomic.Int64
	purgeMu sync.Mutex // serialises Purges: each ban numbered above the last

	// groupMu serialises the read-modify-write of a group (a variant
	// stored or deleted), by a hash of the URL's base key, so that no
	// change is lost to another made at once; Get takes no lock.
	groupMu [lockStripes]sync.Mutex
	seed    maphash.Seed

	// Len and Bytes are tracked with an OnExit callback and two atomic
	// counters rather than with ristretto's Metrics: Metrics makes every
	// Get do an atomic add on a counter shared by all goroutines (hit or
	// miss), which contends on hot keys, whereas these counters are only
	// touched on Set and when a value leaves the cache.
	//
	// The accounting rests on one property of ristretto: every value
	// accepted by Set (it returned true) reaches OnExit exactly once,
	// whether it is rejected by the admission policy, evicted, deleted
	// (also when a Get finds it expired), replaced by a later Set of the
	// same key, or cleared. So the values currently held are those
	// accepted minus those that have exited.
	entries atomic.Int64
	bytes   atomic.Int64
}

// New returns a Cache configured by opts, or an error if opts is invalid.
// The Cache owns ristretto's goroutines; call Close when done with it.
func New(opts Options) (*Cache, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("local: Options.MaxBytes must be > 0, got %d", opts.MaxBytes)
	}
	if opts.NumCounters < 0 {
		return nil, fmt.Errorf("local: Options.NumCounters must be >= 0, got %d", opts.NumCounters)
	}
	counters := numCounters(opts)
	c := &Cache{max: opts.MaxBytes, log: opts.Logger, seed: maphash.MakeSeed()}
	c.bans.MaxBans = maxLocalBans
	if c.log == nil {
		c.log = slog.Default()
	}
	rc, err := ristretto.NewCache(&ristretto.Config[string, *tiers.Entry]{
		NumCounters:        counters,
		MaxCost:            opts.MaxBytes,
		BufferItems:        bufferItems,
		IgnoreInternalCost: true,
		OnExit:             c.onExit,
		// Expired entries are removed by ristretto's cleanup, read or
		// not, and their memory released.
		TtlTickerDurationInSec: ttlTickSecs,
	})
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	c.c = rc
	c.log.Debug("local cache ready", "max_bytes", opts.MaxBytes, "num_counters", counters)
	return c, nil
}

// numCounters returns opts.NumCounters or, if zero, ten counters per
// expected entry of avgEntryBytes, rounded up to a power of two.
//
// ristretto rounds its count-min sketch up to a power of two anyway, so
// the rounding costs no sketch memory; what it does change is the
// doorkeeper (a Bloom filter sized by NumCounters) and how often the
// counters are halved (every NumCounters increments). Both help on a
// steady skewed load: replaying a 1,590,000-request Zipf trace (s=1.01,
// 1,000,000 keys) through a 64 MiB cache of 1,744-byte entries, 655,360
// counters hit 73.6% and 1,048,576 hit 73.95%.
func numCounters(opts Options) int64 {
	if opts.NumCounters > 0 {
		return opts.NumCounters
	}
	n := max(opts.MaxBytes/avgEntryBytes*10, minCounters)
	return 1 << bits.Len64(uint64(n-1))
}

// costOf returns the memory that e, as ristretto holds it under a base
// key, holds: ristretto's record included, and for a varying URL's
// marker its whole group.
//
// What ristretto holds under a base key is one pointer, a *tiers.Entry:
// a response, or a varying URL's marker, which is the first field of its
// group (groupOf). A Get of the base key reads the entry either way, and
// a variant's Get reaches the group from it. Holding a response and a
// group side by side (two pointers) made every item's record 8 bytes
// larger, about 16 with the map's free slots, on responses that do not
// vary too; an interface would be two words as well.
func costOf(e *tiers.Entry) int64 {
	if g := groupOf(e); g != nil {
		return g.cost
	}
	return int64(recordBytes + e.MemSize())
}

// onExit is called by ristretto whenever a value leaves the cache, and
// with nil when a Del finds nothing.
func (c *Cache) onExit(e *tiers.Entry) {
	if e == nil {
		return
	}
	c.entries.Add(-1)
	c.bytes.Add(-costOf(e))
}

// Get returns the entry stored under key, if its TTL has not ended and
// no Purge since it was stored names it: a response, a Vary marker, or
// the variant a variant key names. It never returns an error and does
// not allocate: it is the proxy's hot path.
func (c *Cache) Get(_ context.Context, key string) (*tiers.Entry, bool, error) {
	base, suffix, variant := tiers.SplitKey(key)
	e, ok := c.c.Get(base)
	if !ok {
		return nil, false, nil
	}
	if variant {
		if e = groupOf(e).lookup(suffix, time.Now().UnixNano()); e == nil {
			return nil, false, nil
		}
	}
	if c.purged(e) {
		c.drop(base, suffix, variant)
		return nil, false, nil
	}
	return e, true, nil
}

// errNilEntry is returned by Set for a nil entry.
var errNilEntry = errors.New("local: Set of a nil entry")

// Set stores e under key for at most ttl: a response under a base key, or
// a variant under a variant key, with its URL's other variants (at most
// maxVariants, the oldest dropped; all dropped if they vary on other
// headers than e). A Vary marker is not stored: L1 makes its own for the
// variants it holds. An entry costs e.MemSize() bytes plus ristretto's
// record, a group the sum of its entries and its own bookkeeping. If ttl
// <= 0, or e (its group) is larger than MaxBytes, or a Purge since e was
// stored (e.StoredAt) names it, nothing is stored. The store is
// asynchronous and may be dropped or refused (see Cache); two variants of
// one URL stored at once may keep one only. e must not be modified
// afterwards. Set returns an error only for a nil e.
func (c *Cache) Set(_ context.Context, key string, e *tiers.Entry, ttl time.Duration) error {
	if e == nil {
		return errNilEntry
	}
	base, suffix, variant := tiers.SplitKey(key)
	// Responses only: the markers L1 holds are its groups' own, which
	// groupOf rests on.
	if ttl <= 0 || e.Kind != tiers.KindResponse {
		return nil
	}
	c.noteTTL(ttl) // before the ban check: see Purge
	if c.purged(e) {
		return nil
	}
	if !variant {
		c.store(base, e, ttl)
		return nil
	}
	mu := c.groupLock(base)
	mu.Lock()
	defer mu.Unlock()
	now := time.Now()
	old, _ := c.c.Get(base)
	if g := groupOf(old).with(suffix, e, now.Add(ttl).UnixNano(), now.UnixNano(), c.max); g != nil {
		c.storeGroup(base, g, now)
	}
	return nil
}

// storeGroup stores g under base until its last variant's TTL ends, or
// drops base if that was before now (a TTL of zero would be none).
func (c *Cache) storeGroup(base string, g *group, now time.Time) {
	ttl := time.Duration(g.expires() - now.UnixNano())
	if ttl <= 0 {
		c.c.Del(base)
		return
	}
	c.store(base, &g.marker, ttl)
}

// store hands e (a response, or a group's marker) to ristretto under
// base for ttl, counted.
func (c *Cache) store(base string, e *tiers.Entry, ttl time.Duration) {
	cost := costOf(e)
	if cost > c.max {
		return
	}
	// Count first: once Set has accepted it, OnExit may run for it on
	// ristretto's goroutine before SetWithTTL returns.
	c.entries.Add(1)
	c.bytes.Add(cost)
	if !c.c.SetWithTTL(base, e, cost, ttl) {
		c.entries.Add(-1)
		c.bytes.Add(-cost)
	}
}

// groupLock returns the lock that serialises the changes of base's group.
func (c *Cache) groupLock(base string) *sync.Mutex {
	return &c.groupMu[maphash.String(c.seed, base)%lockStripes]
}

// drop removes what a key names: under a base key the response or the
// whole varying URL, under a variant key that variant alone. If base's
// item is not visible yet (a Set ristretto has yet to apply), the whole
// URL is dropped: more, never less.
func (c *Cache) drop(base, suffix string, variant bool) {
	if !variant {
		c.c.Del(base)
		return
	}
	mu := c.groupLock(base)
	mu.Lock()
	defer mu.Unlock()
	e, ok := c.c.Get(base)
	switch {
	case !ok:
		c.c.Del(base)
	case groupOf(e) == nil:
		// A response that does not vary: no variant to drop.
	default:
		now := time.Now()
		g, held := groupOf(e).without(suffix, now.UnixNano())
		switch {
		case !held:
		case g == nil:
			c.c.Del(base)
		default:
			c.storeGroup(base, g, now)
		}
	}
}

// Delete removes the given keys: a base key removes its response or its
// whole varying URL, a variant key that variant. It never returns an
// error.
func (c *Cache) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		c.drop(tiers.SplitKey(k))
	}
	return nil
}

// Clear drops every entry. It is not atomic with respect to concurrent
// Sets: a Set racing with Clear may survive it.
func (c *Cache) Clear() {
	c.c.Clear()
}

// Wait blocks until every Set made before it has been applied (or
// refused), so that Get, Len and Bytes reflect it. It is meant for tests.
func (c *Cache) Wait() {
	c.c.Wait()
}

// Len returns the number of items held: responses, and varying URLs (a
// URL's variants and marker are one item). It is exact after Wait; in
// between it may count Sets that ristretto has yet to apply. Entries past
// their TTL count until ristretto's cleanup removes them (ReclaimWithin).
func (c *Cache) Len() int64 {
	return c.entries.Load()
}

// Bytes returns the total cost (estimated memory) of the items held,
// with the same precision as Len. After Wait it is at most MaxBytes, but
// for replacements: ristretto replaces an entry in place without evicting
// for the difference in cost.
func (c *Cache) Bytes() int64 {
	return c.bytes.Load()
}

// MaxBytes returns the configured bound on Bytes.
func (c *Cache) MaxBytes() int64 {
	return c.max
}

// Close drops every entry and stops the cache's goroutines. Afterwards Get
// misses and Set and Delete do nothing. Close must not be called
// concurrently with itself.
func (c *Cache) Close() {
	c.c.Close()
}
