package local

import (
	"context"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// tagged is an entry for url with tags, stored at storedAt.
func tagged(url string, storedAt time.Time, tags ...string) *tiers.Entry {
	e := entry("x")
	e.URL, e.StoredAt = url, tiers.At(storedAt)
	e.SetExtra(tiers.Extra{Tags: tags})
	return e
}

// TestPurgeNamesOnly: a local purge drops the entries it names that were
// stored before it, under every key, and nothing else; an entry stored
// before it that arrives after (a fill in flight) is refused; one stored
// after it is kept.
func TestPurgeNamesOnly(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	for _, tc := range []struct {
		sel  tiers.Selector
		dead []string
	}{
		{tiers.Selector{Kind: tiers.BanURL, Value: "/a/1"}, []string{"a1", "a1-variant"}},
		{tiers.Selector{Kind: tiers.BanPrefix, Value: "/a/"}, []string{"a1", "a1-variant", "a2"}},
		{tiers.Selector{Kind: tiers.BanTag, Value: "red"}, []string{"a2", "b"}},
		{tiers.Selector{Kind: tiers.BanAll}, []string{"a1", "a1-variant", "a2", "b", "c"}},
	} {
		t.Run(tc.sel.Kind.String()+tc.sel.Value, func(t *testing.T) {
			c := newCache(t, 1<<20)
			held := map[string]*tiers.Entry{
				"a1":         tagged("/a/1", t0, "blue"),
				"a1-variant": tagged("/a/1", t0),
				"a2":         tagged("/a/2", t0, "red"),
				"b":          tagged("/b", t0, "red", "blue"),
				"c":          tagged("/c", t0),
			}
			for k, e := range held {
				c.Set(ctx, k, e, time.Hour)
			}
			c.Wait()
			c.Purge(tc.sel, t0.Add(time.Millisecond))
			dead := map[string]bool{}
			for _, k := range tc.dead {
				dead[k] = true
			}
			for k := range held {
				if _, ok, _ := c.Get(ctx, k); ok == dead[k] {
					t.Errorf("Get(%s) hit = %v after purging %v", k, ok, tc.sel)
				}
			}
			// A fill that fetched before the purge stores after it.
			for k, e := range held {
				c.Set(ctx, k, e, time.Hour)
			}
			// A fill that fetched after it.
			fresh := tagged("/a/1", t0.Add(2*time.Millisecond), "red", "blue")
			c.Set(ctx, "new", fresh, time.Hour)
			c.Wait()
			for k := range held {
				if _, ok, _ := c.Get(ctx, k); ok == dead[k] {
					t.Errorf("after a late Set, Get(%s) hit = %v", k, ok)
				}
			}
			if got, ok, _ := c.Get(ctx, "new"); !ok || got != fresh {
				t.Errorf("an entry stored after the purge missed")
			}
			checkAccounting(t, c)
		})
	}
}

// TestPurgeForgotten: a local ban is forgotten once every entry stored
// before it has expired, so the table does not grow with purges.
func TestPurgeForgotten(t *testing.T) {
	c := newCache(t, 1<<20)
	c.Set(context.Background(), "k", entry("x"), 10*time.Millisecond)
	c.Wait()
	for i := range 3 {
		c.Purge(tiers.Selector{Kind: tiers.BanTag, Value: "t" + string(rune('a'+i))}, time.Now())
	}
	if c.bans.Len() != 3 {
		t.Fatalf("%d bans held, want 3", c.bans.Len())
	}
	// Each Purge of "last" replaces the one before (a name holds one
	// ban); the three older ones go once k's TTL and banMargin passed.
	await.Until(t, 10*time.Second, "the older bans forgotten", func() bool {
		c.Purge(tiers.Selector{Kind: tiers.BanTag, Value: "last"}, time.Now())
		return c.bans.Len() == 1
	})
}
