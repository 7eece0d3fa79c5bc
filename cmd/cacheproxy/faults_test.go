package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/proxy"
)

// These tests run a fleet through Redis failures: Redis restarted empty
// or flushed (a new purge log, which every instance must adopt before a
// purge is confirmed), frozen, killed, and one instance partitioned from
// it.

// epochs returns each instance's purge epoch.
func epochs(t *testing.T, fleet []*server) []string {
	t.Helper()
	var out []string
	for _, s := range fleet {
		out = append(out, adminStats(t, s).Fleet.Self.Epoch)
	}
	return out
}

// awaitNewEpoch waits until every instance has adopted a purge epoch other
// than old, may use its L1, and sees the whole fleet.
func awaitNewEpoch(t *testing.T, fleet []*server, old string) {
	t.Helper()
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "instance on the new purge log", func() bool {
			st := adminStats(t, s)
			return st.Fleet.Self.Epoch != old && st.Fleet.Self.Epoch != "" &&
				st.Fleet.Self.LocalUsable && len(st.Fleet.Members) == len(fleet)
		})
	}
}

// purgeAfterNewRedis warms /k on a fleet of two, lets lose Redis's purge
// log, bumps the origin's version and purges: every instance applied the
// purge, and none serves the old version after it. It answers 202 all the
// same, naming the time until which an instance Redis no longer knows of
// may serve (checkUnknownUntil): Redis lost its members with its data.
func purgeAfterNewRedis(t *testing.T, lose func(*redistest.Server)) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2)
	// Purges before, so that the sequence is well ahead of a new one.
	for i := range 5 {
		if code, res := purge(t, fleet[i%2], fmt.Sprintf("url=/warmup%d", i)); code != http.StatusOK {
			t.Fatalf("purge before = %d %+v", code, res)
		}
	}
	warm(t, fleet, "/k", "v1 /k")
	old := epochs(t, fleet)[0]
	lost := time.Now()
	lose(redis)
	awaitNewEpoch(t, fleet, old)
	o.Version.Store(2)
	code, res := purge(t, fleet[0], "url=/k")
	checkUnknownUntil(t, "purge after Redis lost its log", code, res, lost)
	if len(res.Confirmed) != 2 {
		t.Fatalf("purge after Redis lost its log = %d %+v, want confirmed by both", code, res)
	}
	for round := range 20 {
		for i, s := range fleet {
			if x, body := get(t, s, "/k"); body != "v2 /k" {
				t.Fatalf("round %d, instance %d: %s %q after a 200 purge, want v2", round, i, x, body)
			}
		}
	}
	// And the fleet goes on: later purges are applied and confirmed.
	o.Version.Store(3)
	warm(t, fleet, "/k", "v2 /k")
	code, res = purge(t, fleet[1], "url=/k")
	checkUnknownUntil(t, "second purge", code, res, lost)
	if len(res.Confirmed) != 2 {
		t.Fatalf("second purge = %d %+v, want confirmed by both", code, res)
	}
	for _, s := range fleet {
		if _, body := get(t, s, "/k"); body != "v3 /k" {
			t.Fatalf("after the second purge: %q", body)
		}
	}
}

// checkUnknownUntil checks the answer of a purge made soon after Redis
// lost its data (at lost): 202, no instance missing among those Redis
// knows, and unknown_until about the new epoch's start plus the window
// (-l1-ttl 30s + fill timeout 30s + heartbeats, at the defaults).
func checkUnknownUntil(t *testing.T, what string, code int, res proxy.PurgeAnswer, lost time.Time) {
	t.Helper()
	if code != http.StatusAccepted || len(res.Missing) != 0 || res.UnknownUntil.IsZero() {
		t.Fatalf("%s = %d %+v, want 202 with unknown_until and nobody missing", what, code, res)
	}
	if lo, hi := lost.Add(60*time.Second), time.Now().Add(65*time.Second); res.UnknownUntil.Before(lo) || res.UnknownUntil.After(hi) {
		t.Errorf("%s: unknown_until %v, want the new epoch's start + about 62 s (%v .. %v)", what, res.UnknownUntil, lo, hi)
	}
}

func TestFleetPurgeAfterRedisRestartedEmpty(t *testing.T) {
	purgeAfterNewRedis(t, func(r *redistest.Server) {
		r.Kill()
		r.Restart()
	})
}

func TestFleetPurgeAfterRedisFlushed(t *testing.T) {
	purgeAfterNewRedis(t, func(r *redistest.Server) { r.FlushAll() })
}

// timedGet is get, with how long it took.
func timedGet(t *testing.T, s *server, path string) (string, string, time.Duration) {
	t.Helper()
	start := time.Now()
	x, body := get(t, s, path)
	return x, body, time.Since(start)
}

// TestFleetRedisFrozen: with Redis frozen for 4s, L1 hits go on, and a new
// URL costs one bounded wait for Redis, then is an L1 hit.
func TestFleetRedisFrozen(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2)
	a := fleet[0]
	warm(t, fleet, "/hot", "v1 /hot")
	redis.Pause()
	resumed := false
	defer func() {
		if !resumed {
			redis.Resume()
		}
	}()
	frozen := time.Now()
	var worst time.Duration
	for i := 0; time.Since(frozen) < 4*time.Second; i++ {
		x, body, d := timedGet(t, a, "/hot")
		if x != "HIT-L1" || body != "v1 /hot" {
			t.Fatalf("%v into the freeze: %s %q, want an L1 hit", time.Since(frozen).Round(time.Millisecond), x, body)
		}
		path := fmt.Sprintf("/new%d", i)
		_, body, d2 := timedGet(t, a, path)
		if body != "v1 "+path {
			t.Fatalf("new URL: %q", body)
		}
		x, _, d3 := timedGet(t, a, path)
		if x != "HIT-L1" {
			t.Errorf("second request of a new URL while Redis is frozen: %s, want HIT-L1", x)
		}
		worst = max(worst, d, d2, d3)
		time.Sleep(50 * time.Millisecond)
	}
	redis.Resume()
	resumed = true
	t.Logf("slowest request while Redis was frozen: %v", worst)
	if worst > time.Second {
		t.Errorf("a request took %v while Redis was frozen, want under 1s", worst)
	}
}

// TestFleetRedisKilled: with Redis dead, L1 keeps answering past the old
// 3s fence, new URLs are filled into L1, and a purge answers 503.
func TestFleetRedisKilled(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2)
	a := fleet[0]
	warm(t, fleet, "/hot", "v1 /hot")
	redis.Kill()
	killed := time.Now()
	for i := 0; time.Since(killed) < 6*time.Second; i++ {
		x, _, d := timedGet(t, a, "/hot")
		if x != "HIT-L1" {
			t.Fatalf("%v after the kill: %s, want HIT-L1", time.Since(killed).Round(time.Millisecond), x)
		}
		path := fmt.Sprintf("/new%d", i)
		get(t, a, path)
		if x, _ := get(t, a, path); x != "HIT-L1" {
			t.Fatalf("second request of a new URL with Redis dead: %s, want HIT-L1", x)
		}
		// Redis is dead (connections refused at once): an L1 hit waits on
		// nothing, and the bound only catches a hang. Seconds, not
		// milliseconds: a busy machine delays any request by hundreds of
		// milliseconds.
		if d > 2*time.Second {
			t.Errorf("an L1 hit took %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := purge(t, a, "url=/hot"); code != http.StatusServiceUnavailable {
		t.Errorf("purge with Redis dead = %d, want 503", code)
	}
}

// cutter forwards TCP connections to a Redis until cut: then it closes
// every connection and closes those that arrive at once, until restored.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); c.setCut(true) })
	go c.serve()
	return c
}

func (c *cutter) url() string { return "redis://" + c.ln.Addr().String() + "/0" }

func (c *cutter) serve() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.cut {
			c.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			c.mu.Unlock()
			in.Close()
			continue
		}
		c.conns[in], c.conns[out] = true, true
		c.mu.Unlock()
		go func() { io.Copy(out, in); out.Close(); in.Close() }()
		go func() { io.Copy(in, out); in.Close(); out.Close() }()
	}
}

func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = cut
	if cut {
		for conn := range c.conns {
			conn.Close()
		}
		clear(c.conns)
	}
}

// TestFleetPartition: b reaches Redis through a link that is cut. b keeps
// serving from L1; a purge from a answers 202 naming b, with the time by
// which b serves nothing older; once the link is back, b resyncs and
// serves the new version, and purges answer 200 again.
func TestFleetPartition(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	link := newCutter(t, redis.Addr)
	env := func(url string) []string {
		return []string{"CACHEPROXY_REDIS=" + url, "CACHEPROXY_ADMIN_TOKEN=" + fleetToken}
	}
	a := startServer(t, env(redis.URL()), "-origin", o.URL, "-purge-wait", "500ms")
	b := startServer(t, env(link.url()), "-origin", o.URL)
	fleet := []*server{a, b}
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "instance usable and fleet complete", func() bool {
			st := adminStats(t, s)
			return st.Fleet.Self.LocalUsable && len(st.Fleet.Members) == 2
		})
	}
	ageEpoch(t, redis.Client(), "cacheproxy")
	bID := adminStats(t, b).Fleet.Self.ID
	warm(t, fleet, "/k", "v1 /k")

	link.setCut(true)
	await.Until(t, 15*time.Second, "b cut off", func() bool { return adminStats(t, b).Fleet.Self.CutOff })
	o.Version.Store(2)
	before := time.Now()
	code, res := purge(t, a, "url=/k")
	if code != http.StatusAccepted || len(res.Missing) != 1 || res.Missing[0] != bID {
		t.Fatalf("purge with b cut off = %d %+v, want 202 naming %s", code, res, bID)
	}
	until := res.MissingUntil[bID]
	if lo, hi := before.Add(60*time.Second), before.Add(70*time.Second); until.Before(lo) || until.After(hi) {
		t.Errorf("b's until = %v, want about the purge + l1-ttl + fill timeout (%v .. %v)", until, lo, hi)
	}
	if _, body := get(t, a, "/k"); body != "v2 /k" {
		t.Errorf("a after the purge: %q", body)
	}
	// b, cut off, still serves its L1, as the 202 said it might.
	if x, body := get(t, b, "/k"); x != "HIT-L1" || body != "v1 /k" {
		t.Errorf("b cut off: %s %q, want its L1 entry", x, body)
	}

	link.setCut(false)
	await.Until(t, 15*time.Second, "b back and in sync", func() bool {
		st := adminStats(t, b)
		return !st.Fleet.Self.CutOff && st.Fleet.Self.LocalUsable && st.Fleet.Self.SubscriptionResyncs > 0
	})
	for range 10 {
		if x, body := get(t, b, "/k"); body != "v2 /k" {
			t.Fatalf("b after reconnecting: %s %q, want v2", x, body)
		}
	}
	o.Version.Store(3)
	if code, res := purge(t, a, "url=/k"); code != http.StatusOK || len(res.Confirmed) != 2 {
		t.Fatalf("purge once b is back = %d %+v", code, res)
	}
	for _, s := range fleet {
		if _, body := get(t, s, "/k"); body != "v3 /k" {
			t.Errorf("after the last purge: %q", body)
		}
	}
}

// TestFleetPurgeAfterRedisRestartedWithOneCutOff: b is cut off from Redis
// (its link cut) and keeps serving its L1 under its lease; meanwhile
// Redis is killed and restarted empty, losing the members with the purge
// log. A purge from a right after cannot know of b: it must not answer
// 200, but 202 with the time until which such an instance may serve
// (unknown_until) — and b does serve the purged version from its L1, as
// the 202 says it may. Once b is back, it adopts the new log and serves
// the new version.
func TestFleetPurgeAfterRedisRestartedWithOneCutOff(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	link := newCutter(t, redis.Addr)
	env := func(url string) []string {
		return []string{"CACHEPROXY_REDIS=" + url, "CACHEPROXY_ADMIN_TOKEN=" + fleetToken}
	}
	a := startServer(t, env(redis.URL()), "-origin", o.URL, "-purge-wait", "500ms")
	b := startServer(t, env(link.url()), "-origin", o.URL)
	fleet := []*server{a, b}
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "instance usable and fleet complete", func() bool {
			st := adminStats(t, s)
			return st.Fleet.Self.LocalUsable && len(st.Fleet.Members) == 2
		})
	}
	ageEpoch(t, redis.Client(), "cacheproxy")
	if code, res := purge(t, a, "url=/k"); code != http.StatusOK {
		t.Fatalf("purge before = %d %+v", code, res)
	}
	warm(t, fleet, "/k", "v1 /k")
	old := epochs(t, fleet)[0]

	link.setCut(true)
	await.Until(t, 15*time.Second, "b cut off", func() bool { return adminStats(t, b).Fleet.Self.CutOff })
	lost := time.Now()
	redis.Kill()
	redis.Restart()
	await.Until(t, 15*time.Second, "a on the new purge log", func() bool {
		st := adminStats(t, a)
		return st.Fleet.Self.Epoch != old && st.Fleet.Self.LocalUsable
	})
	o.Version.Store(2)
	code, res := purge(t, a, "url=/k")
	checkUnknownUntil(t, "purge with b cut off across the restart", code, res, lost)
	if _, body := get(t, a, "/k"); body != "v2 /k" {
		t.Errorf("a after the purge: %q", body)
	}
	// b, unknown to the new Redis, still serves its L1, as the 202 said
	// it might.
	if x, body := get(t, b, "/k"); x != "HIT-L1" || body != "v1 /k" {
		t.Errorf("b cut off: %s %q, want its L1 entry", x, body)
	}

	link.setCut(false)
	await.Until(t, 15*time.Second, "b back on the new purge log", func() bool {
		st := adminStats(t, b)
		return !st.Fleet.Self.CutOff && st.Fleet.Self.LocalUsable && st.Fleet.Self.Epoch != old
	})
	for range 10 {
		if x, body := get(t, b, "/k"); body != "v2 /k" {
			t.Fatalf("b after reconnecting: %s %q, want v2", x, body)
		}
	}
}
