// Package local is the in-process cache tier (L1): a memory-bounded map of
// immutable *tiers.Entry values on top of ristretto, with a TinyLFU
// admission policy, per-entry TTLs and a cost equal to each entry's
// estimated memory (tiers.Entry.MemSize).
//
// TTLs are kept here rather than by ristretto: ristretto would read the
// clock on every Get of an entry with a TTL, and keep a second map of
// expiry buckets. Here an entry's deadline sits beside it, and a Get
// compares it with a clock that a ticker advances every clockTick, so an
// entry leaves within clockTick of its TTL. An entry past its deadline
// misses, and is deleted when read; one never read again stays, counted
// in Bytes, until evicted.
//
// Entries are stored by pointer and never copied: a Get returns the very
// Entry that was Set, which callers must treat as read-only (see
// tiers.Entry).
package local

import (
	"context"
	"errors"
	"fmt"
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
	// clockTick is how often the clock that TTLs are checked against
	// advances: an entry may be served for up to this long past its TTL.
	clockTick = 10 * time.Millisecond
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
	c   *ristretto.Cache[string, item]
	max int64
	log *slog.Logger

	// now is the clock TTLs are checked against, in Unix nanoseconds,
	// advanced every clockTick until stop is closed.
	now      atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once

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
// The Cache owns goroutines (ristretto's and its clock); call Close when
// done with it.
func New(opts Options) (*Cache, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("local: Options.MaxBytes must be > 0, got %d", opts.MaxBytes)
	}
	if opts.NumCounters < 0 {
		return nil, fmt.Errorf("local: Options.NumCounters must be >= 0, got %d", opts.NumCounters)
	}
	counters := numCounters(opts)
	c := &Cache{max: opts.MaxBytes, log: opts.Logger, stop: make(chan struct{})}
	if c.log == nil {
		c.log = slog.Default()
	}
	rc, err := ristretto.NewCache(&ristretto.Config[string, item]{
		NumCounters:        counters,
		MaxCost:            opts.MaxBytes,
		BufferItems:        bufferItems,
		IgnoreInternalCost: true,
		OnExit:             c.onExit,
	})
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	c.c = rc
	c.now.Store(time.Now().UnixNano())
	go c.tick()
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

// item is what ristretto holds under a key: the entry and the clock
// reading after which it is expired.
type item struct {
	e     *tiers.Entry
	until int64
}

// tick advances c.now every clockTick until Close.
func (c *Cache) tick() {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			c.now.Store(now.UnixNano())
		case <-c.stop:
			return
		}
	}
}

// onExit is called by ristretto whenever a value leaves the cache, and
// with the zero item when a Del finds nothing.
func (c *Cache) onExit(it item) {
	if it.e == nil {
		return
	}
	c.entries.Add(-1)
	c.bytes.Add(-int64(it.e.MemSize()))
}

// Get returns the entry stored under key. It never returns an error and
// does not allocate: it is the proxy's hot path.
func (c *Cache) Get(_ context.Context, key string) (*tiers.Entry, bool, error) {
	it, ok := c.c.Get(key)
	if !ok {
		return nil, false, nil
	}
	if c.now.Load() > it.until {
		c.c.Del(key)
		return nil, false, nil
	}
	return it.e, true, nil
}

// errNilEntry is returned by Set for a nil entry.
var errNilEntry = errors.New("local: Set of a nil entry")

// Set stores e under key for at most ttl, with a cost of e.MemSize() bytes.
// If ttl <= 0, or e is larger than MaxBytes, nothing is stored. The store
// is asynchronous and may be dropped or refused (see Cache). e must not be
// modified afterwards. Set returns an error only for a nil e.
func (c *Cache) Set(_ context.Context, key string, e *tiers.Entry, ttl time.Duration) error {
	if e == nil {
		return errNilEntry
	}
	if ttl <= 0 {
		return nil
	}
	cost := int64(e.MemSize())
	if cost > c.max {
		return nil
	}
	// Count first: once Set has accepted e, OnExit may run for it on
	// ristretto's goroutine before Set returns.
	c.entries.Add(1)
	c.bytes.Add(cost)
	if !c.c.Set(key, item{e: e, until: c.now.Load() + int64(ttl)}, cost) {
		c.entries.Add(-1)
		c.bytes.Add(-cost)
	}
	return nil
}

// Delete removes the given keys. It never returns an error.
func (c *Cache) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		c.c.Del(k)
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

// Len returns the number of entries held. It is exact after Wait; in
// between it may count Sets that ristretto has yet to apply. Entries past
// their TTL count until they are read, replaced or evicted.
func (c *Cache) Len() int64 {
	return c.entries.Load()
}

// Bytes returns the total cost (estimated memory) of the entries held,
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
	c.stopOnce.Do(func() { close(c.stop) })
}
