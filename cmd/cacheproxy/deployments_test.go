package main

// End-to-end tests of the Redis deployments: a Cluster, Sentinel with a
// failover, TLS with a least-privilege ACL user, and the broken
// configurations, each reported by /readyz and the log.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// leastPrivilege is the ACL of a cacheproxy user with the default
// -key-prefix, as the README gives it: the commands it calls (the ones
// its scripts call included), its keys and its channels, nothing else.
var leastPrivilege = []any{"resetkeys", "~cacheproxy:*", "resetchannels", "&cacheproxy:*", "-@all",
	"+ping", "+hello", "+auth", "+select",
	"+get", "+mget", "+set", "+del", "+exists", "+pexpire", "+incr", "+incrby", "+decrby", "+time",
	"+zadd", "+zrem", "+zcard", "+zcount", "+zrange", "+zrangebyscore", "+zremrangebyscore", "+zremrangebyrank", "+zpopmin",
	"+eval", "+evalsha", "+publish", "+subscribe", "+unsubscribe"}

// newCountedOrigin serves "content of <path>" cacheable for five minutes
// after delay (its Requests counts them by path).
func newCountedOrigin(t *testing.T, delay time.Duration) *origintest.Origin {
	return origintest.New(t, origintest.Options{Delay: delay, Body: origintest.Content})
}

// checkL2Hit fetches a new path from a (a MISS), then from b: an L2 hit.
func checkL2Hit(t *testing.T, a, b *server, path string) {
	t.Helper()
	if x, _ := get(t, a, path); x != "MISS" {
		t.Errorf("first GET %s on A: %s, want MISS", path, x)
	}
	if x, _ := get(t, b, path); x != "HIT-L2" {
		t.Errorf("GET %s on B after A stored it: %s, want HIT-L2", path, x)
	}
}

// checkCoalesced sends a GET of a cold path to every instance at once:
// one origin request for all.
func checkCoalesced(t *testing.T, o *origintest.Origin, fleet []*server, path string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, s := range fleet {
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, body := fetch(t, "GET", s.proxyURL+path, "")
				if code != 200 || body != "content of "+path {
					t.Errorf("GET %s = %d %q", path, code, body)
				}
			}()
		}
	}
	wg.Wait()
	if n := o.Requests(path); n != 1 {
		t.Errorf("origin requests for a cold key asked of %d instances at once: %d, want 1", len(fleet), n)
	}
}

// checkReadyOK checks every instance's /readyz says ok, with Redis up.
func checkReadyOK(t *testing.T, fleet []*server) {
	t.Helper()
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "readyz ok", func() bool {
			code, r := readyz(t, s)
			return code == 200 && r.Status == "ok" && r.Redis == "up"
		})
	}
}

// A 3-master Cluster: entries on every master, L2 hits across instances,
// fleet-wide coalescing, every kind of purge, and readiness ok.
func TestClusterFleet(t *testing.T) {
	cluster := redistest.StartCluster(t)
	co := newCountedOrigin(t, 200*time.Millisecond)
	fleet := startFleetURL(t, cluster.URL(), co.URL, 2)
	ageEpoch(t, cluster.Client(), "cacheproxy")
	a, b := fleet[0], fleet[1]
	checkReadyOK(t, fleet)
	checkL2Hit(t, a, b, "/hit")
	checkCoalesced(t, co, fleet, "/cold")

	// Entries spread over every master, each beside its own variants
	// and lease, none a cross-slot call (which would have been a miss).
	for i := range 30 {
		get(t, a, fmt.Sprintf("/spread/%d", i))
	}
	for _, n := range cluster.Nodes {
		keys, err := n.Client().Keys(context.Background(), "cacheproxy:{1:G:/spread/*").Result()
		if err != nil || len(keys) == 0 {
			t.Errorf("master %s holds %d entries (%v), want some", n.Addr, len(keys), err)
		}
	}
	for _, s := range fleet {
		if st := adminStats(t, s); st.Redis == nil || st.Redis.Errors != 0 || len(st.Redis.ReplyErrors) != 0 {
			t.Errorf("redis stats %+v, want no errors", st.Redis)
		}
	}

	// Purges of every kind, confirmed by both instances.
	vo := newVersionedOrigin(t)
	kinds := startFleetURL(t, cluster.URL(), vo.URL, 2, "-key-prefix", "kinds")
	ageEpoch(t, cluster.Client(), "kinds")
	checkPurgeKinds(t, vo, kinds)
}

// A single seed node of a Cluster named without -redis-mode cluster is
// taken for a standalone server: Redis answers MOVED and CROSSSLOT, and
// /readyz and the log say so, where before every read was a silent miss.
func TestClusterSeedWithoutMode(t *testing.T) {
	cluster := redistest.StartCluster(t)
	co := newCountedOrigin(t, 0)
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", co.URL, "-redis", "redis://"+cluster.Nodes[0].Addr)
	for i := range 20 {
		get(t, s, fmt.Sprintf("/p/%d", i))
	}
	await.Until(t, 15*time.Second, "readyz degraded with MOVED or CROSSSLOT", func() bool {
		code, r := readyz(t, s)
		return code == 200 && r.Status == "degraded" && r.Redis == "failing" &&
			(strings.Contains(r.Reason, "MOVED") || strings.Contains(r.Reason, "CROSSSLOT"))
	})
	if !strings.Contains(s.logs.String(), "redis answers errors to") {
		t.Errorf("no warning of the error replies in the log")
	}
	// With the mode, the same seed works.
	s2 := startFleetURL(t, "redis://"+cluster.Nodes[0].Addr, co.URL, 1, "-redis-mode", "cluster", "-key-prefix", "seed")
	checkReadyOK(t, s2)
	get(t, s2[0], "/seeded")
	if x, _ := get(t, s2[0], "/seeded"); x != "HIT-L1" {
		t.Errorf("second GET with -redis-mode cluster: %s", x)
	}
}

// A master, a replica and three sentinels: traffic through two
// instances while SENTINEL FAILOVER runs fails no request, and within
// seconds of the promotion L2 hits and 200 purges are back, with no stale
// answer after a 200 purge. An instance given the master's address
// instead of the sentinels' reports READONLY after the failover.
func TestSentinelFailover(t *testing.T) {
	sent := redistest.StartSentinels(t)
	vo := newVersionedOrigin(t)
	fleet := startFleetURL(t, sent.URL(), vo.URL, 2)
	ageEpoch(t, sent.Master.Client(), "cacheproxy")
	a, b := fleet[0], fleet[1]
	checkReadyOK(t, fleet)
	direct := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken},
		"-origin", vo.URL, "-redis", sent.Master.URL(), "-key-prefix", "direct")
	if x, _ := get(t, a, "/before"); x != "MISS" {
		t.Fatalf("GET /before: %s", x)
	}
	if x, _ := get(t, b, "/before"); x != "HIT-L2" {
		t.Fatalf("GET /before on B: %s, want HIT-L2", x)
	}

	// Traffic through both instances during the failover.
	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(s.proxyURL + fmt.Sprintf("/traffic/%d", (n*7+i)%50))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
				done.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	promoted := time.Now()
	sent.Failover()
	t.Logf("failover took %v", time.Since(promoted).Round(time.Millisecond))
	promoted = time.Now()

	// 200 purges again, and L2 hits.
	await.Until(t, 15*time.Second, "200 purge after the failover", func() bool {
		code, _ := purge(t, a, "url=/warmup")
		return code == http.StatusOK
	})
	await.Until(t, 15*time.Second, "L2 hit after the failover", func() bool {
		p := fmt.Sprintf("/after/%d", time.Now().UnixNano())
		get(t, a, p)
		x, _ := get(t, b, p)
		return x == "HIT-L2"
	})
	t.Logf("200 purges and L2 hits %v after the promotion", time.Since(promoted).Round(time.Millisecond))
	if d := time.Since(promoted); d > 10*time.Second {
		t.Errorf("purges and L2 hits back only %v after the promotion", d)
	}
	// No stale answer after a 200 purge.
	warm(t, fleet, "/k", "v1 /k")
	vo.Version.Store(2)
	if code, res := purge(t, b, "url=/k"); code != http.StatusOK || len(res.Confirmed) != 2 {
		t.Fatalf("purge after the failover = %d %+v", code, res)
	}
	for _, s := range fleet {
		if _, body := get(t, s, "/k"); body != "v2 /k" {
			t.Errorf("after a 200 purge: %q, want v2", body)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || done.Load() == 0 {
		t.Errorf("%d of %d client requests failed during the failover", failed.Load(), done.Load())
	}
	checkReadyOK(t, fleet)

	// The instance that named the old master (now a replica) finds its
	// writes refused: READONLY, reported.
	for i := range 20 {
		get(t, direct, fmt.Sprintf("/direct/%d", i))
	}
	await.Until(t, 15*time.Second, "readyz degraded with READONLY", func() bool {
		code, r := readyz(t, direct)
		return code == 200 && r.Status == "degraded" && r.Redis == "failing" && strings.Contains(r.Reason, "READONLY")
	})
	code, _, body := fetch(t, "GET", direct.adminURL+"/metrics", fleetToken)
	if code != 200 || !strings.Contains(body, `cacheproxy_redis_reply_errors_total{kind="READONLY"`) ||
		!strings.Contains(body, "cacheproxy_redis_up 0") {
		t.Errorf("metrics do not show the READONLY replies:\n%s", grepLines(body, "cacheproxy_redis"))
	}
}

// TLS with a CA file and a client certificate, as a least-privilege ACL
// user: L2 hits, 200 purges, readiness ok. The same user without channel
// rights has its subscription refused: reported, retried, and working
// once the rights are granted. A wrong password is reported too.
func TestTLSLeastPrivilege(t *testing.T) {
	srv, files := redistest.StartTLS(t)
	ctx := context.Background()
	acl := append([]any{"ACL", "SETUSER", "cacheproxy", "reset", "on", ">s3cret-pass"}, leastPrivilege...)
	if err := srv.Client().Do(ctx, acl...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	url := "rediss://cacheproxy:s3cret-pass@" + srv.Addr + "/0"
	// A TLS handshake on a busy machine can take longer than the 100ms
	// production bound of a Redis call: this test is about TLS and ACLs,
	// not that bound, so it sets a bound of seconds.
	tlsArgs := []string{"-redis-ca", files.CA, "-redis-cert", files.ClientCert, "-redis-key", files.ClientKey, "-redis-timeout", "2s"}
	vo := newVersionedOrigin(t)
	fleet := startFleetURL(t, url, vo.URL, 2, tlsArgs...)
	ageEpoch(t, srv.Client(), "cacheproxy")
	checkReadyOK(t, fleet)
	if x, _ := get(t, fleet[0], "/tls"); x != "MISS" {
		t.Errorf("GET /tls: %s", x)
	}
	if x, _ := get(t, fleet[1], "/tls"); x != "HIT-L2" {
		t.Errorf("GET /tls on B: %s, want HIT-L2", x)
	}
	checkPurgeKinds(t, vo, fleet)
	for _, s := range fleet {
		if st := adminStats(t, s); len(st.Redis.ReplyErrors) != 0 {
			t.Errorf("error replies as the least-privilege user: %v", st.Redis.ReplyErrors)
		}
	}

	// No channel rights: the subscription is refused, and retried.
	noChan := append([]any{"ACL", "SETUSER", "nochan", "reset", "on", ">s3cret-pass"}, leastPrivilege...)
	noChan = append(noChan, "~held:*", "resetchannels")
	if err := srv.Client().Do(ctx, noChan...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	held := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken},
		append([]string{"-origin", vo.URL, "-redis", "rediss://nochan:s3cret-pass@" + srv.Addr + "/0", "-key-prefix", "held"}, tlsArgs...)...)
	await.Until(t, 15*time.Second, "readyz degraded: subscription refused", func() bool {
		code, r := readyz(t, held)
		refused := false
		for _, p := range r.RedisProblems {
			refused = refused || p.Purpose == "subscribe" && p.Kind == "NOPERM"
		}
		return code == 200 && r.Status == "degraded" && r.Redis == "failing" && strings.Contains(r.Reason, "redis answers errors") && refused
	})
	if !strings.Contains(held.logs.String(), "redis answers errors to subscribe calls") {
		t.Errorf("no warning of the refused subscription in the log")
	}
	if err := srv.Client().Do(ctx, "ACL", "SETUSER", "nochan", "&held:*").Err(); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 15*time.Second, "subscription accepted once the ACL allows it", func() bool {
		code, r := readyz(t, held)
		st := adminStats(t, held)
		return code == 200 && r.Status == "ok" && st.Fleet != nil && st.Fleet.Self.LocalUsable
	})

	// A wrong password: WRONGPASS, reported.
	wrong := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken},
		append([]string{"-origin", vo.URL, "-redis", "rediss://cacheproxy:wrong@" + srv.Addr + "/0", "-key-prefix", "wrong"}, tlsArgs...)...)
	for i := range 10 {
		get(t, wrong, fmt.Sprintf("/w/%d", i))
	}
	await.Until(t, 15*time.Second, "readyz degraded with WRONGPASS", func() bool {
		code, r := readyz(t, wrong)
		return code == 200 && r.Status == "degraded" && strings.Contains(r.Reason, "WRONGPASS")
	})
}

// grepLines returns the lines of s holding sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
