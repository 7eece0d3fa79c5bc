package shared

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// adoptAfter runs lose on a fleet of two that has purged, and checks that
// both adopt the new purge log: another epoch, a sequence that went on
// growing, L1 flushed, and purges applied and confirmed by both again.
func adoptAfter(t *testing.T, lose func(*redistest.Server)) {
	srv := redistest.Start(t)
	a, b := newMember(t, srv, "a"), newMember(t, srv, "b")
	ctx := context.Background()
	for range 3 {
		if _, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/before"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	old, applied := a.fleet.Stats().Epoch, b.bans.Applied()
	flushes := b.flushes.Load()
	inFlight := &tiers.Entry{URL: "/x", Seq: applied} // a fill from before, stored after
	lose(srv)
	for _, m := range []*member{a, b} {
		await.Until(t, 10*time.Second, "adopted", func() bool {
			st := m.fleet.Stats()
			return st.Epoch != old && st.EpochAdoptions > 0 && m.fleet.LocalUsable()
		})
	}
	if b.bans.Applied() <= applied {
		t.Errorf("sequence went back: %d after %d", b.bans.Applied(), applied)
	}
	if b.flushes.Load() == flushes {
		t.Error("b's local tier not flushed")
	}
	if !b.bans.Dead(inFlight) {
		t.Error("an entry filled before the new log is alive")
	}
	seq := b.bans.Applied()
	res, err := a.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, "")
	if err != nil || len(res.Confirmed) != 2 {
		t.Fatalf("purge after the adoption: %v %+v", err, res)
	}
	if !b.bans.Dead(&tiers.Entry{URL: "/x", Seq: seq}) || b.bans.Dead(&tiers.Entry{URL: "/y", Seq: seq}) {
		t.Error("the purge after the adoption is not applied as it should be")
	}
}

func TestFleetAdoptsRedisRestartedEmpty(t *testing.T) {
	adoptAfter(t, func(s *redistest.Server) { s.Kill(); s.Restart() })
}

func TestFleetAdoptsRedisFlushed(t *testing.T) {
	adoptAfter(t, func(s *redistest.Server) { s.FlushAll() })
}

// A sequence set back under the same epoch (a Redis restored from an older
// snapshot) is a new history too: another epoch is started.
func TestFleetAdoptsSequenceGoneBack(t *testing.T) {
	adoptAfter(t, func(s *redistest.Server) {
		if err := s.Client().Decr(context.Background(), "cacheproxy:{cacheproxy}:purge:seq").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// The read path finds a new log first (heartbeats far apart): the read is
// a miss, the local tier is fenced at once, and the fleet adopts the log.
func TestReadPathFindsNewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	m := newMemberWith(t, srv.URL(), "a", func(o *FleetOptions) { o.Heartbeat = 2 * time.Second })
	ctx := context.Background()
	old := m.fleet.Stats().Epoch
	srv.FlushAll()
	if _, _, err := m.tier.Get(ctx, "k"); !errors.Is(err, errRenewing) {
		t.Fatalf("Get after FLUSHALL: %v, want errRenewing", err)
	}
	if m.fleet.LocalUsable() {
		t.Error("local tier usable with the new log not adopted")
	}
	await.Until(t, 10*time.Second, "adopted", func() bool { return m.fleet.Stats().Epoch != old && !m.tier.renewing() })
	if _, _, err := m.tier.Get(ctx, "k"); err != nil {
		t.Errorf("Get after the adoption: %v", err)
	}
}

// ackWatcher collects the confirmations published on the fleet's ack
// channel.
func ackWatcher(t *testing.T, srv *redistest.Server) <-chan string {
	t.Helper()
	ps := srv.Client().Subscribe(context.Background(), "cacheproxy:purge:ack")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	out := make(chan string, 16)
	go func() {
		for m := range ps.Channel() {
			out <- m.Payload
		}
	}()
	return out
}

func noAck(t *testing.T, acks <-chan string, id string) {
	t.Helper()
	timeout := time.After(500 * time.Millisecond)
	for {
		select {
		case a := <-acks:
			if strings.HasPrefix(a, id) {
				t.Fatalf("confirmed %q", a)
			}
		case <-timeout:
			return
		}
	}
}

// A ban is confirmed only once applied: not one numbered at or below the
// table's high-water mark in another epoch (the bug: Redis restarted, the
// new sequence low, every purge taken as applied and confirmed), nor one
// of the same epoch and number but another ID.
func TestFleetConfirmsOnlyApplied(t *testing.T) {
	srv := redistest.Start(t)
	m := newMember(t, srv, "a")
	ctx := context.Background()
	if _, err := m.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/one"}, ""); err != nil {
		t.Fatal(err)
	}
	acks := ackWatcher(t, srv)
	epoch := m.fleet.Stats().Epoch
	applied := m.bans.Applied()
	publish := func(b tiers.Ban) {
		t.Helper()
		if err := srv.Client().Publish(ctx, "cacheproxy:purge", b.String()).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// A low number of an epoch Redis does not hold: a late message, or
	// a log not adopted yet. Not applied, not confirmed.
	publish(tiers.Ban{Seq: 1, Selector: tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, At: time.Now(), ID: "r1@other"})
	noAck(t, acks, "r1@")
	if m.fleet.Stats().Epoch != epoch {
		t.Fatal("a message of another epoch changed the epoch, with Redis unchanged")
	}

	// The table's own number and epoch, another ID: a changed history.
	publish(tiers.Ban{Seq: applied, Selector: tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, At: time.Now(), ID: "r2@" + epoch})
	noAck(t, acks, "r2@")
	await.Until(t, 10*time.Second, "a new epoch", func() bool { return m.fleet.Stats().Epoch != epoch && m.fleet.LocalUsable() })

	// The next ban, applied: confirmed.
	res, err := m.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/two"}, "")
	if err != nil || len(res.Confirmed) != 1 {
		t.Fatalf("purge: %v %+v", err, res)
	}
}

// With Redis frozen, request-path calls cost at most about Timeout, and a
// purge Redis runs only after its caller gave up is not recorded.
func TestFrozenRedisBounded(t *testing.T) {
	srv := redistest.Start(t)
	// The client's own read and write timeouts at 30s: a call that
	// returns within seconds was cut by the per-call deadline (Timeout,
	// 100ms), not by them.
	m := newMemberWith(t, srv.URL()+"?read_timeout=30s", "a", nil)
	ctx := context.Background()
	m.tier.peers.Store(2)
	seq, _ := srv.Client().Get(ctx, m.tier.seqKey()).Result()
	srv.Pause()
	frozen := true
	defer func() {
		if frozen {
			srv.Resume()
		}
	}()
	for range 5 {
		start := time.Now()
		m.tier.Get(ctx, "k")
		m.tier.Set(ctx, "k", entry("x"), time.Minute)
		m.tier.Lease(ctx, "k", time.Second)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Get, Set and Lease with Redis frozen took %v, want about 3 Timeouts (300ms), far below the 30s read timeout", d)
		}
	}
	if _, err := m.fleet.Purge(ctx, tiers.Selector{Kind: tiers.BanURL, Value: "/late"}, ""); err == nil {
		t.Fatal("purge with Redis frozen succeeded")
	}
	time.Sleep(200 * time.Millisecond)
	srv.Resume()
	frozen = false
	time.Sleep(200 * time.Millisecond) // Redis runs what it was sent
	if now, _ := srv.Client().Get(ctx, m.tier.seqKey()).Result(); now != seq {
		t.Errorf("the purge that failed was recorded once Redis resumed (sequence %s, was %s)", now, seq)
	}
}
