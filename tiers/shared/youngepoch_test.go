package shared

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// shortWindow makes a member's window (L1TTL + FillTimeout + heartbeats)
// about two seconds, so that a test can wait it out.
func shortWindow(o *FleetOptions) {
	o.L1TTL, o.FillTimeout = 700*time.Millisecond, 700*time.Millisecond
}

// lostRedisThenPurge kills Redis and restarts it empty (lose), waits
// until a has adopted the new purge log, and purges: the purge is
// incomplete, for Redis lost its members with its data and an instance
// cut off before may still serve: it names, in UnknownUntil, the
// epoch's start plus the window. Once the window has passed, purges are
// complete again.
func lostRedisThenPurge(t *testing.T, lose func(*redistest.Server)) {
	srv := redistest.Start(t)
	a := newMemberWith(t, srv.URL(), "a", shortWindow)
	b := newMemberWith(t, srv.URL(), "b", shortWindow)
	ctx := context.Background()
	await.Until(t, 10*time.Second, "the epoch older than the window", func() bool {
		res, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/before"}, "")
		return err == nil && res.Complete()
	})
	old := a.fleet.Stats().Epoch
	lost := time.Now()
	lose(srv)
	await.Until(t, 10*time.Second, "a on the new purge log", func() bool {
		st := a.fleet.Stats()
		return st.Epoch != old && a.fleet.LocalUsable()
	})
	res, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/k"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete() || res.UnknownUntil.IsZero() {
		t.Fatalf("purge right after Redis lost its members: %+v, want incomplete, with the time an unknown instance may serve until", res)
	}
	w := a.fleet.window()
	if lo, hi := lost.Add(w-time.Second), time.Now().Add(w+time.Second); res.UnknownUntil.Before(lo) || res.UnknownUntil.After(hi) {
		t.Errorf("unknown until %v, want the new epoch's start + the window %v (%v .. %v)", res.UnknownUntil, w, lo, hi)
	}
	// The start is recorded from the epoch's opening ban: exactly.
	start, opening := epochStartIn(t, srv, a)
	if !res.UnknownUntil.Equal(start.Add(w)) || !start.Equal(opening) {
		t.Errorf("unknown until %v; epoch recorded as begun %v, its opening ban at %v; want the opening ban's time + %v",
			res.UnknownUntil, start, opening, w)
	}
	await.Until(t, 10*time.Second, "purges complete once the epoch is older than the window", func() bool {
		res, err := b.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/k"}, "")
		return err == nil && res.Complete() && len(res.Confirmed) == 2
	})
	if d := time.Since(lost); d < w {
		t.Errorf("complete %v after Redis lost its data, within the window %v", d, w)
	}
}

func TestPurgeAfterRedisRestartedEmptyIsIncomplete(t *testing.T) {
	lostRedisThenPurge(t, func(s *redistest.Server) { s.Kill(); s.Restart() })
}

func TestPurgeAfterRedisFlushedIsIncomplete(t *testing.T) {
	lostRedisThenPurge(t, func(s *redistest.Server) { s.FlushAll() })
}

// epochStartIn returns when the current epoch began as recorded, and
// the time of its opening ban if the log still holds it.
func epochStartIn(t *testing.T, srv *redistest.Server, m *member) (recorded, opening time.Time) {
	t.Helper()
	ctx := context.Background()
	c := srv.Client()
	pl := m.fleet.plog()
	v, err := c.Get(ctx, pl.epochStartKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var ms int64
	if _, err := fmt.Sscanf(v, "%s %d", &name, &ms); err != nil {
		t.Fatalf("epoch start %q: %v", v, err)
	}
	if e, _ := c.Get(ctx, pl.epochKey()).Result(); e != name {
		t.Errorf("epoch start %q names another epoch than %q", v, e)
	}
	bans, _ := c.ZRange(ctx, pl.bansKey(), 0, -1).Result()
	for _, s := range bans {
		if b, err := tiers.ParseBan(s); err == nil && strings.HasPrefix(b.ID, epochBanPrefix) {
			opening = b.At
		}
	}
	return time.UnixMilli(ms), opening
}

// An epoch started by the previous release (which does not record its
// start) is dated by its opening ban; if that is gone too (a purge of
// everything dropped it), the epoch is taken to begin at the first purge
// that finds it so: later, never earlier, than it did.
func TestEpochStartOfAnEpochThePreviousReleaseStarted(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	ctx := context.Background()
	c := srv.Client()
	pl := a.fleet.plog()

	// An epoch in which Redis lost its history (only then is its start
	// returned: see lostKey).
	epoch, err := c.Get(ctx, pl.epochKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, pl.lostKey(), epoch, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The opening ban is in the log: its time.
	if err := c.Del(ctx, pl.epochStartKey()).Err(); err != nil {
		t.Fatal(err)
	}
	rec, _, err := a.fleet.record(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, "req/a")
	if err != nil {
		t.Fatal(err)
	}
	if _, opening := epochStartIn(t, srv, a); opening.IsZero() || !rec.epochStart.Equal(opening) {
		t.Errorf("epoch start %v, want the opening ban's time %v", rec.epochStart, opening)
	}

	// The previous release purges everything (dropping the opening ban),
	// and its start was never recorded (the key names another epoch).
	previousPurge(t, c, a.tier, tiers.All, "req/old")
	if err := c.Set(ctx, pl.epochStartKey(), "older 1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Get(ctx, pl.epochKey()).Result(); e != "" {
		c.Set(ctx, pl.lostKey(), e, 0) // the same epoch, or the one the all-ban kept
	}
	before := time.Now()
	rec, _, err = a.fleet.record(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/y"}, "req/a")
	if err != nil {
		t.Fatal(err)
	}
	if !rec.epochStart.Equal(rec.at) {
		t.Errorf("epoch start %v with its opening ban gone, want the purge's time %v", rec.epochStart, rec.at)
	}
	if d := rec.at.Sub(before); d < -5*time.Second || d > 5*time.Second {
		t.Errorf("purge at %v, started at %v", rec.at, before)
	}
	// And recorded: the next purge reads the same.
	next, _, err := a.fleet.record(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/z"}, "req/a")
	if err != nil || !next.epochStart.Equal(rec.epochStart) {
		t.Errorf("next purge: epoch start %v (%v), want %v", next.epochStart, err, rec.epochStart)
	}
}

// A new fleet on an empty Redis has lost nothing: no instance it does not
// know can be serving, and its first purge is complete (200) once every
// member confirmed, young as its epoch is. Each instance told the scripts
// it knew no other epoch (lostKey).
func TestPurgeOnANewFleetIsComplete(t *testing.T) {
	srv := redistest.Start(t)
	a := newMemberWith(t, srv.URL(), "a", shortWindow)
	newMemberWith(t, srv.URL(), "b", shortWindow)
	ctx := context.Background()
	await.Until(t, 10*time.Second, "both members confirming", func() bool {
		res, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/new"}, "")
		if err != nil || !res.UnknownUntil.IsZero() {
			t.Fatalf("purge on a new fleet: %+v, %v: want no unknown instance", res, err)
		}
		return res.Complete() && len(res.Confirmed) == 2
	})
	if n, _ := srv.Client().Exists(ctx, a.fleet.plog().lostKey()).Result(); n != 0 {
		t.Errorf("a new fleet marked its epoch as one in which Redis lost its history")
	}
}
