package local

// Local purges: what an instance drops from its L1 alone, when the purge
// could not be recorded for the fleet (proxy.Handler.Purge). ristretto
// cannot be iterated, so a purge is a ban in a table of the Cache's own
// (the fleet's tiers.Bans, with its own numbering): every Get and Set
// checks an entry against the bans made since the entry was stored.

import (
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// maxLocalBans bounds the local ban table: past it the oldest bans are
// collapsed into one ban of everything stored before them (see
// tiers.Bans), which drops more, never less.
const maxLocalBans = 10_000

// banMargin is added to the longest TTL given to Set to decide when a
// local ban may be forgotten: every entry stored before it has expired.
const banMargin = time.Second

// Purge drops every entry sel names (a URL, a prefix, a tag, or all)
// whose response was stored (tiers.Entry.StoredAt) before storedBefore:
// from then on Get misses them and Set refuses them, so a fill that
// fetched before the purge and stores after it is dropped too. An entry
// stored at or after storedBefore is kept. It matches as the fleet's
// bans do (tiers.Bans): a URL in every variant and under every key, a
// prefix of the URL, any of the entry's tags. A ban is forgotten once
// every entry stored before it has expired (the longest TTL given to Set
// since), or collapsed with older ones past maxLocalBans. An invalid sel
// (tiers.Selector.Validate) is ignored.
func (c *Cache) Purge(sel tiers.Selector, storedBefore time.Time) {
	if sel.Validate() != nil {
		return
	}
	c.purgeMu.Lock()
	defer c.purgeMu.Unlock()
	seq := max(c.bans.Applied()+1, nanos(storedBefore))
	now := time.Now()
	c.bans.Apply(now, time.Duration(c.maxTTL.Load())+banMargin, tiers.Ban{Seq: seq, Selector: sel, At: now})
	if sel.Kind == tiers.BanAll {
		c.c.Clear() // release the memory at once
	}
}

// purged reports whether a Purge since e was stored names it. It costs
// one atomic load while no purge is newer than e.
func (c *Cache) purged(e *tiers.Entry) bool {
	return c.bans.DeadAt(e, nanos(e.StoredAt.Time()))
}

// noteTTL raises the longest TTL given to Set to ttl.
func (c *Cache) noteTTL(ttl time.Duration) {
	for {
		old := c.maxTTL.Load()
		if int64(ttl) <= old || c.maxTTL.CompareAndSwap(old, int64(ttl)) {
			return
		}
	}
}

// nanos returns t in Unix nanoseconds, or 0 for a time before 1970 (the
// zero time included): such an entry is older than every purge.
func nanos(t time.Time) uint64 {
	if t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}
