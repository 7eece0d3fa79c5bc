package shared

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// member is one fleet instance for tests: its tier, ban table and fleet.
type member struct {
	tier    *Tier
	bans    *tiers.Bans
	fleet   *Fleet
	flushes atomic.Int64
}

func newMember(t *testing.T, srv *redistest.Server, id string) *member {
	t.Helper()
	return newMemberWith(t, srv.URL(), id, nil)
}

// newMemberWith starts a member on the Redis at url, its fleet's options
// changed by opts if not nil.
func newMemberWith(t *testing.T, url, id string, opts func(*FleetOptions)) *member {
	t.Helper()
	m := &member{bans: new(tiers.Bans)}
	m.tier, _ = newTier(t, Options{URL: url, Bans: m.bans, RetryInterval: 100 * time.Millisecond})
	fo := FleetOptions{Tier: m.tier, ID: id, Heartbeat: 100 * time.Millisecond,
		Flush: func() { m.flushes.Add(1) }}
	if opts != nil {
		opts(&fo)
	}
	f, err := NewFleet(fo)
	if err != nil {
		t.Fatal(err)
	}
	m.fleet = f
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	await.Until(t, 10*time.Second, "member "+id+" usable", f.LocalUsable)
	return m
}

func TestFleetPurgeConfirmedByAll(t *testing.T) {
	srv := redistest.Start(t)
	a, b, c := newMember(t, srv, "a"), newMember(t, srv, "b"), newMember(t, srv, "c")
	await.Until(t, 10*time.Second, "three live members", func() bool {
		ms, _ := a.fleet.Members(context.Background())
		return len(ms) == 3
	})
	seq := a.bans.Applied() // what a fill starting now records
	res, err := a.fleet.Purge(context.Background(), tiers.Selector{Kind: tiers.BanPrefix, Value: "/players/"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Confirmed) != 3 || len(res.Missing) != 0 {
		t.Fatalf("confirmed %v, missing %v", res.Confirmed, res.Missing)
	}
	old := &tiers.Entry{URL: "/players/1", Seq: seq}
	for name, m := range map[string]*member{"a": a, "b": b, "c": c} {
		if !m.bans.Dead(old) {
			t.Errorf("%s: purge not applied", name)
		}
		if m.bans.Dead(&tiers.Entry{URL: "/rank", Seq: seq}) {
			t.Errorf("%s: purge killed an entry it does not name", name)
		}
	}
	if got := a.fleet.Stats().Purges["prefix"]; got != 1 {
		t.Errorf("prefix purges counted %d", got)
	}
}

func TestFleetResyncAfterSubscriptionKilled(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newMember(t, srv, "a"), newMember(t, srv, "b")
	flushesBefore := b.flushes.Load()
	// Kill every pub/sub connection and purge before they come back.
	if err := srv.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.fleet.Purge(context.Background(), tiers.Selector{Kind: tiers.BanURL, Value: "/rank"}, ""); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "b resubscribed and usable", func() bool {
		return b.fleet.LocalUsable() && b.flushes.Load() > flushesBefore
	})
	if !b.bans.Dead(&tiers.Entry{URL: "/rank"}) {
		t.Error("b did not load the purge it missed")
	}
}

func TestFleetGapTriggersResync(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	b := newMember(t, srv, "b")
	flushes := b.flushes.Load()
	// Record a ban behind the fleet's back (no publish): the next
	// published one leaves a gap.
	cl := srv.Client()
	ctx := context.Background()
	seq, _ := cl.Incr(ctx, a.tier.seqKey()).Result()
	ban := tiers.Ban{Seq: uint64(seq), Selector: tiers.Selector{Kind: tiers.BanTag, Value: "hidden"}, At: time.Now(), ID: "x"}
	cl.ZAdd(ctx, a.tier.bansKey(), redisZ(float64(seq), ban.String()))
	if _, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, ""); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 10*time.Second, "b flushed after the gap", func() bool { return b.flushes.Load() > flushes })
	hidden := &tiers.Entry{}
	hidden.SetExtra(tiers.Extra{Tags: []string{"hidden"}})
	if !b.bans.Dead(hidden) {
		t.Error("hidden ban not loaded on resync")
	}
}

func TestFleetReadPathCatchesUp(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	// A tier with a ban table but no subscription: Get must still see
	// purges recorded since.
	bans := new(tiers.Bans)
	lone, _ := newTier(t, Options{URL: srv.URL(), Bans: bans})
	ctx := context.Background()
	if err := syncAll(ctx, lone); err != nil { // as a new instance does first
		t.Fatal(err)
	}
	e := entry("x")
	e.Seq = bans.Applied()
	if err := lone.Set(ctx, "k", e, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, ""); err != nil {
		t.Fatal(err)
	}
	got, ok, err := lone.Get(ctx, "k")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if !bans.Dead(got) {
		t.Error("entry read after a purge is not dead")
	}
}

// TestFleetPurgeWithRedisDown: an instance cut off from Redis keeps its
// local tier for L1TTL after its last heartbeat in sync, then bypasses it;
// purges fail meanwhile; once Redis is back it resyncs and uses it again.
func TestFleetPurgeWithRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	a := newMemberWith(t, srv.URL(), "a", func(o *FleetOptions) { o.L1TTL = 700 * time.Millisecond })
	flushes := a.flushes.Load()
	srv.Kill()
	killed := time.Now()
	await.Until(t, 10*time.Second, "a cut off", func() bool { return a.fleet.Stats().CutOff })
	if !a.fleet.LocalUsable() {
		t.Error("local tier fenced at once in an outage")
	}
	if _, err := a.fleet.Purge(context.Background(), tiers.All, ""); err == nil {
		t.Fatal("purge with Redis down succeeded")
	}
	await.Until(t, 10*time.Second, "local tier fenced at the lease's end", func() bool { return !a.fleet.LocalUsable() })
	if d := time.Since(killed); d < 500*time.Millisecond || d > 5*time.Second {
		t.Errorf("fenced %v after the kill, want about the 700ms lease", d)
	}
	srv.Restart()
	await.Until(t, 10*time.Second, "usable again", a.fleet.LocalUsable)
	if a.flushes.Load() == flushes {
		t.Error("local tier used again without a flush")
	}
}

func TestFleetMissingMemberReported(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	// A member that heartbeats but never confirms.
	ghost := &Fleet{t: a.tier, client: a.tier.client, timeout: a.tier.timeout, bans: a.tier.bans, id: "ghost", hb: 100 * time.Millisecond}
	ghost.heartbeatOnce(context.Background())
	a.fleet.purgeWait = 300 * time.Millisecond
	res, err := a.fleet.Purge(context.Background(), tiers.Selector{Kind: tiers.BanURL, Value: "/y"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Missing) != 1 || res.Missing[0] != "ghost" || len(res.Confirmed) != 1 {
		t.Errorf("confirmed %v missing %v", res.Confirmed, res.Missing)
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// TestFleetPrefixPurgeOfManyEntriesIsConstant purges a prefix covering
// 100,000 entries: the cost is one ban, whatever the number of entries.
func TestFleetPrefixPurgeOfManyEntriesIsConstant(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	ctx := context.Background()
	pipe := srv.Client().Pipeline()
	for i := 0; i < 100_000; i++ {
		e := entry("x")
		e.URL = fmt.Sprintf("/players/%d", i)
		e.Seq = a.bans.Applied()
		pipe.Set(ctx, a.tier.redisKey("cacheproxy:1:G:"+e.URL), tiers.Encode(e), time.Hour)
		if i%10_000 == 9_999 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	seq := a.bans.Applied()
	start := time.Now()
	res, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanPrefix, Value: "/players/"}, "")
	took := time.Since(start)
	if err != nil || len(res.Confirmed) != 1 {
		t.Fatalf("purge: %v %+v", err, res)
	}
	if took > 5*time.Second { // about 100ms on a quiet machine; seconds for a busy one
		t.Errorf("purge of a prefix over 100,000 entries took %v", took)
	}
	t.Logf("purge took %v", took)
	for _, u := range []string{"/players/0", "/players/99999"} {
		e, ok, err := a.tier.Get(ctx, "cacheproxy:1:G:"+u)
		if err != nil || !ok {
			t.Fatalf("Get %s: %v %v", u, ok, err)
		}
		if !a.bans.Dead(e) {
			t.Errorf("%s not purged", u)
		}
	}
	if a.bans.Dead(&tiers.Entry{URL: "/rank", Seq: seq}) {
		t.Error("/rank purged")
	}
}

// TestFleetLeaseOnlyWithPeers: an instance alone in its fleet takes no
// fill lease (its in-process flight collapses fills); with a peer it does.
func TestFleetLeaseOnlyWithPeers(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	ctx := context.Background()
	await.Until(t, 10*time.Second, "a to know it is alone", func() bool {
		_, _, _, err := a.tier.Lease(ctx, "k", time.Second)
		return errors.Is(err, ErrAlone)
	})
	newMember(t, srv, "b")
	await.Until(t, 10*time.Second, "a to see its peer", func() bool {
		_, held, release, err := a.tier.Lease(ctx, "k2", time.Second)
		if held {
			release()
		}
		return err == nil && held
	})
}
