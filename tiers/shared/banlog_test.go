package shared

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// seedEpoch names the purge log's epoch "test", so that the scripts find
// one and number bans from 1, as in a log an older version kept.
func seedEpoch(t *testing.T, srv *redistest.Server, tier *Tier) {
	t.Helper()
	if err := srv.Client().Set(context.Background(), tier.epochKey(), "test", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// syncAll applies every ban in the log, as a resync does.
func syncAll(ctx context.Context, tier *Tier) error {
	_, seq, err := tier.readState(ctx, "", 0)
	if err != nil {
		return err
	}
	return tier.loadUpTo(ctx, seq)
}

// recordBans writes n URL bans (/u/1 .. /u/n, Seq 1 .. n) straight into
// the log of epoch "test", as a fleet that purged them would have.
func recordBans(t *testing.T, srv *redistest.Server, tier *Tier, n int) {
	t.Helper()
	ctx := context.Background()
	seedEpoch(t, srv, tier)
	pipe := srv.Client().Pipeline()
	now := time.Now()
	for i := 1; i <= n; i++ {
		b := tiers.Ban{Seq: uint64(i), Selector: tiers.Selector{Kind: tiers.BanURL, Value: "/u/" + strconv.Itoa(i)}, At: now, ID: "x"}
		pipe.ZAdd(ctx, tier.bansKey(), redisZ(float64(i), b.String()))
		if i%5000 == 0 || i == n {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := srv.Client().Set(ctx, tier.seqKey(), n, 0).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeTooLongRefused(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	ctx := context.Background()
	seq, _ := srv.Client().Get(ctx, a.tier.seqKey()).Result()
	_, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/q?x=" + strings.Repeat("a", tiers.MaxBanValue)}, "")
	if !errors.Is(err, tiers.ErrBanTooLong) {
		t.Fatalf("Purge of a long URL: %v, want ErrBanTooLong", err)
	}
	if now, _ := srv.Client().Get(ctx, a.tier.seqKey()).Result(); now != seq {
		t.Error("the refused ban was recorded")
	}
	if !a.tier.Healthy() {
		t.Error("a refused ban marked Redis down")
	}
	if _, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/q?x=" + strings.Repeat("a", tiers.MaxBanValue-5)}, ""); err != nil {
		t.Errorf("Purge of MaxBanValue bytes: %v", err)
	}
}

// TestFleetLoadsManyBansPaged: a new instance finds 20,000 bans in Redis
// and loads them in pages; its reads meanwhile are misses that leave
// Redis marked up, and it uses its local tier once they are all in.
func TestFleetLoadsManyBansPaged(t *testing.T) {
	srv := redistest.Start(t)
	bans := new(tiers.Bans)
	lone, logs := newTier(t, Options{URL: srv.URL(), Bans: bans})
	const n = 20_000
	recordBans(t, srv, lone, n)
	ctx := context.Background()
	e := entry("x")
	if err := lone.Set(ctx, "k", e, time.Minute); err != nil {
		t.Fatal(err)
	}
	// One page: 1,000 bans, applied at once.
	if more, err := lone.loadPage(ctx); err != nil || !more || bans.Applied() != banPage {
		t.Fatalf("first page: more %v, %v, applied %d", more, err, bans.Applied())
	}
	// The read path does not wait for 19 more pages: it starts the
	// loading, which goes on from the last page applied, and answers a
	// miss.
	if _, ok, err := lone.Get(ctx, "k"); ok || !errors.Is(err, errBansLoading) {
		t.Errorf("first Get: %v, %v; want a miss while the bans load", ok, err)
	}
	// (The load logs once it has applied the last page: wait for both.)
	await.Until(t, 10*time.Second, "the bans loaded", func() bool { return bans.Applied() == n && logs.count("purge bans loaded") > 0 })
	if !lone.Healthy() {
		t.Error("loading bans marked Redis down")
	}
	if got := bans.Len(); got != n {
		t.Errorf("Len = %d, want %d", got, n)
	}
	if logs.count("purge bans loaded") != 1 {
		t.Error("the paged load was not logged once")
	}
	if got, ok, err := lone.Get(ctx, "k"); !ok || err != nil || bans.Dead(got) {
		t.Errorf("Get after the load: %v, %v", ok, err)
	}
	for _, i := range []int{1, 999, 1000, 1001, 12345, n} {
		if !bans.Dead(&tiers.Entry{URL: "/u/" + strconv.Itoa(i), Seq: 0}) {
			t.Errorf("ban %d not loaded", i)
		}
	}

	// A fleet member starting now loads them all before it is usable.
	m := newMember(t, srv, "b")
	if m.bans.Applied() != n || m.tier.BanFloors() != 0 {
		t.Errorf("member: applied %d, floors %d", m.bans.Applied(), m.tier.BanFloors())
	}
}

// TestPurgeLogBounded: the log in Redis keeps within its bounds, a new
// all-ban drops every ban before it, and bans older than the retention
// leave it.
func TestPurgeLogBounded(t *testing.T) {
	srv := redistest.Start(t)
	m := &member{bans: &tiers.Bans{MaxBans: 50, MaxBytes: 40 * tiers.BanCost(strings.Repeat("x", 100))}}
	m.tier, _ = newTier(t, Options{URL: srv.URL(), Bans: m.bans, BanKeep: time.Hour})
	f, err := NewFleet(FleetOptions{Tier: m.tier, ID: "a", PurgeWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl := srv.Client()
	seedEpoch(t, srv, m.tier)
	for i := 1; i <= 100; i++ {
		if _, err := f.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/u/" + strconv.Itoa(i)}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := cl.ZCard(ctx, m.tier.bansKey()).Result(); n != 50 {
		t.Errorf("log holds %d bans, want 50", n)
	}
	if floor, _ := cl.Get(ctx, m.tier.floorKey()).Int(); floor != 50 {
		t.Errorf("floor = %d, want 50", floor)
	}
	// Long bans: the byte bound binds before the count.
	for i := 1; i <= 60; i++ {
		v := "/long/" + strconv.Itoa(i) + strings.Repeat("x", 100)
		if _, err := f.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: v[:100]}, ""); err != nil {
			t.Fatal(err)
		}
	}
	n, _ := cl.ZCard(ctx, m.tier.bansKey()).Result()
	bytes, _ := cl.Get(ctx, m.tier.bytesKey()).Int()
	if n != 40 || bytes != 40*tiers.BanCost(strings.Repeat("x", 100)) {
		t.Errorf("log holds %d bans, counted %d bytes; want 40 and %d", n, bytes, 40*tiers.BanCost(strings.Repeat("x", 100)))
	}
	if _, err := f.Purge(ctx, tiers.All, ""); err != nil {
		t.Fatal(err)
	}
	if n, _ := cl.ZCard(ctx, m.tier.bansKey()).Result(); n != 1 {
		t.Errorf("log holds %d bans after an all-ban, want 1", n)
	}
	// Age: a ban recorded two hours ago leaves at the next purge.
	old := tiers.Ban{Seq: 1, Selector: tiers.Selector{Kind: tiers.BanTag, Value: "old"}, At: time.Now().Add(-2 * time.Hour), ID: "x"}
	cl.ZAdd(ctx, m.tier.bansKey(), redisZ(1, old.String()))
	if _, err := f.Purge(ctx, tiers.Selector{Kind: tiers.BanTag, Value: "new"}, ""); err != nil {
		t.Fatal(err)
	}
	if s, _ := cl.ZScore(ctx, m.tier.bansKey(), old.String()).Result(); s != 0 {
		t.Error("a ban older than the retention was kept")
	}
}

// TestCatchUpBelowFloor: an instance whose bans stop below the log's
// floor cannot load the bans trimmed since; it applies an all-ban at the
// floor instead (every entry older is dead, newer ones are judged by the
// bans kept), and its fleet flushes its local tier.
func TestCatchUpBelowFloor(t *testing.T) {
	srv := redistest.Start(t)
	a := &member{bans: &tiers.Bans{MaxBans: 50}}
	a.tier, _ = newTier(t, Options{URL: srv.URL(), Bans: a.bans})
	fa, err := NewFleet(FleetOptions{Tier: a.tier, ID: "a", PurgeWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	seedEpoch(t, srv, a.tier)
	purge := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			if _, err := fa.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/u/" + strconv.Itoa(i)}, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	purge(1, 5)

	// b has applied bans 1..5, then is cut off while 95 more are
	// recorded: 1..50 are trimmed from the log.
	b := new(tiers.Bans)
	lone, _ := newTier(t, Options{URL: srv.URL(), Bans: b})
	if err := syncAll(ctx, lone); err != nil || b.Applied() != 5 {
		t.Fatalf("first sync: %v, applied %d", err, b.Applied())
	}
	flushes := 0
	flush := func() { flushes++ }
	lone.flushLocal.Store(&flush)
	purge(6, 100)

	e := entry("x")
	e.URL, e.Seq = "/untouched", 5
	if err := lone.Set(ctx, "k", e, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ok, err := lone.Get(ctx, "k")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if b.Applied() != 100 || lone.BanFloors() != 1 || flushes != 1 {
		t.Errorf("applied %d, floors %d, flushes %d; want 100, 1, 1", b.Applied(), lone.BanFloors(), flushes)
	}
	if !b.Dead(got) {
		t.Error("an entry older than the floor, named by a trimmed ban or not, is alive")
	}
	for _, tc := range []struct {
		e    tiers.Entry
		dead bool
	}{
		{tiers.Entry{URL: "/u/20", Seq: 49}, true}, // trimmed ban, under the floor
		{tiers.Entry{URL: "/other", Seq: 49}, true},
		{tiers.Entry{URL: "/other", Seq: 50}, false},
		{tiers.Entry{URL: "/u/70", Seq: 69}, true}, // a ban kept in the log
		{tiers.Entry{URL: "/u/70", Seq: 70}, false},
	} {
		if got := b.Dead(&tc.e); got != tc.dead {
			t.Errorf("Dead(%s, seq %d) = %v, want %v", tc.e.URL, tc.e.Seq, got, tc.dead)
		}
	}

	// A fleet member (re)starting now finds the log trimmed too: its
	// Flush runs for the floor as well as for the subscription.
	m := newMember(t, srv, "m")
	if m.bans.Applied() != 100 || m.tier.BanFloors() != 1 || m.flushes.Load() < 2 {
		t.Errorf("member: applied %d, floors %d, flushes %d", m.bans.Applied(), m.tier.BanFloors(), m.flushes.Load())
	}
	if !m.bans.Dead(&tiers.Entry{URL: "/other", Seq: 49}) {
		t.Error("member: an entry older than the floor is alive")
	}
}
