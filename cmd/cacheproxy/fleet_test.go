package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/proxy"
)

const fleetToken = "fleet-secret"

// newVersionedOrigin is the fleet tests' origin: "v<version> <path>" for
// every GET, cacheable for five minutes and tagged player:<id> under
// /players/<id>; other methods are answered "done", uncacheable.
func newVersionedOrigin(t *testing.T) *origintest.Origin {
	return origintest.New(t, origintest.Options{Body: func(w http.ResponseWriter, r *http.Request, version int64) {
		if r.Method != http.MethodGet {
			w.Header().Del("Cache-Control")
			io.WriteString(w, "done")
			return
		}
		if id, ok := strings.CutPrefix(r.URL.Path, "/players/"); ok {
			w.Header().Set("Cache-Tag", "player:"+id)
		}
		origintest.Versioned(w, r, version)
	}})
}

// startFleet starts n cacheproxy processes on one Redis, waits until
// each has subscribed to purges and sees the others, and ages the purge
// log's epoch (ageEpoch), as for a fleet that has run on this Redis.
func startFleet(t *testing.T, redis *redistest.Server, origin string, n int, args ...string) []*server {
	t.Helper()
	fleet := startFleetURL(t, redis.URL(), origin, n, args...)
	ageEpoch(t, redis.Client(), keyPrefix(args))
	return fleet
}

// startFleetURL is startFleet on the Redis of redisURL, without the
// ageing: the caller ages the epoch with a client of its own.
func startFleetURL(t *testing.T, redisURL, origin string, n int, args ...string) []*server {
	t.Helper()
	var fleet []*server
	for i := 0; i < n; i++ {
		fleet = append(fleet, startServer(t, []string{"CACHEPROXY_REDIS=" + redisURL, "CACHEPROXY_ADMIN_TOKEN=" + fleetToken},
			append([]string{"-origin", origin}, args...)...))
	}
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "instance usable and fleet complete", func() bool {
			st := adminStats(t, s)
			return st.Fleet != nil && st.Fleet.Self.LocalUsable && len(st.Fleet.Members) == n
		})
	}
	return fleet
}

// ageEpoch makes the purge log's current epoch in the Redis of client,
// under key prefix prefix, look begun an hour ago, as for a fleet that
// has run on this Redis that long. In a younger epoch Redis cannot know
// every instance that may serve (it may have restarted empty), so purges
// answer 202 until the epoch is older than the fleet's window
// (docs/consistency.md): tests that are not about Redis losing its data
// start from the steady state. The key and its form ("<epoch> <ms>") are
// tiers/shared's epochStartKey, recorded by the first purge of an epoch.
func ageEpoch(t *testing.T, client redis.UniversalClient, prefix string) {
	t.Helper()
	ctx := context.Background()
	meta := prefix + ":{" + prefix + "}:"
	epoch, err := client.Get(ctx, meta+"purge:epoch").Result()
	if err == nil {
		began := time.Now().Add(-time.Hour).UnixMilli()
		err = client.Set(ctx, meta+"purge:epoch-start", fmt.Sprintf("%s %d", epoch, began), 0).Err()
	}
	if err != nil {
		t.Fatalf("ageing the purge epoch: %v", err)
	}
}

// keyPrefix returns the -key-prefix that args give, or the default.
func keyPrefix(args []string) string {
	prefix := "cacheproxy"
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-key-prefix" {
			prefix = args[i+1]
		}
	}
	return prefix
}

func adminStats(t *testing.T, s *server) stats {
	t.Helper()
	code, _, body := fetch(t, "GET", s.adminURL+"/stats", fleetToken)
	var st stats
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/stats = %d %q", code, body)
	}
	return st
}

// get fetches path from s and returns X-Cache and the body.
func get(t *testing.T, s *server, path string) (string, string) {
	t.Helper()
	code, h, body := fetch(t, "GET", s.proxyURL+path, "")
	if code != 200 {
		t.Fatalf("GET %s = %d %q", path, code, body)
	}
	return h.Get("X-Cache"), body
}

// warm fetches path on every instance until each serves it from L1.
func warm(t *testing.T, fleet []*server, path, want string) {
	t.Helper()
	for _, s := range fleet {
		await.Until(t, 15*time.Second, "HIT-L1 of "+path, func() bool {
			x, body := get(t, s, path)
			if body != want {
				t.Fatalf("warming %s: got %q, want %q", path, body, want)
			}
			return x == "HIT-L1"
		})
	}
}

func purge(t *testing.T, s *server, query string) (int, proxy.PurgeAnswer) {
	t.Helper()
	code, _, body := fetch(t, "DELETE", s.adminURL+"/cache?"+query, fleetToken)
	var res proxy.PurgeAnswer
	json.Unmarshal([]byte(body), &res)
	return code, res
}

func TestFleetPurgeKinds(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	checkPurgeKinds(t, o, startFleet(t, redis, o.URL, 3))
}

// checkPurgeKinds purges by URL, prefix, tag and all from the first
// instance of fleet, and checks every instance serves the new content,
// and keeps in L1 what a purge does not name.
func checkPurgeKinds(t *testing.T, o *origintest.Origin, fleet []*server) {
	t.Helper()
	a := fleet[0]
	cases := []struct {
		query, path, untouched string
	}{
		{"url=" + url.QueryEscape("/rank?b=2&a=1"), "/rank?a=1&b=2", "/rank?a=1"},
		{"prefix=/players/", "/players/7", "/rank"},
		{"tag=player:42", "/players/42", "/players/43"},
		{"all=true", "/anything", ""},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			v := o.Version.Load()
			old := fmt.Sprintf("v%d %s", v, strings.SplitN(tc.path, "?", 2)[0])
			warm(t, fleet, tc.path, old)
			var untouched string
			if tc.untouched != "" {
				untouched = fmt.Sprintf("v%d %s", v, strings.SplitN(tc.untouched, "?", 2)[0])
				warm(t, fleet, tc.untouched, untouched)
			}
			o.Version.Add(1)
			code, res := purge(t, a, tc.query)
			if code != http.StatusOK || len(res.Confirmed) != len(fleet) || !res.Fleet {
				t.Fatalf("purge = %d %+v", code, res)
			}
			fresh := fmt.Sprintf("v%d %s", v+1, strings.SplitN(tc.path, "?", 2)[0])
			for _, s := range append(fleet[1:], a) {
				x, body := get(t, s, tc.path)
				if body != fresh || x == "HIT-L1" {
					t.Errorf("after purge: %s %q, want new content %q", x, body, fresh)
				}
			}
			if tc.untouched != "" {
				for _, s := range fleet {
					if x, body := get(t, s, tc.untouched); x != "HIT-L1" || body != untouched {
						t.Errorf("entry the purge does not name: %s %q, want HIT-L1 %q", x, body, untouched)
					}
				}
			}
		})
	}
}

func TestFleetPurgeWhileSubscriptionDown(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 3)
	a, b := fleet[0], fleet[1]
	warm(t, fleet, "/k", "v1 /k")
	o.Version.Store(2)
	if err := redis.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	code, res := purge(t, a, "url=/k")
	if code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("purge = %d %+v", code, res)
	}
	for i := 0; i < 50; i++ {
		if _, body := get(t, b, "/k"); body != "v2 /k" {
			t.Fatalf("request %d after the purge: %q, want v2", i, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := adminStats(t, b); st.Fleet.Self.SubscriptionResyncs == 0 || st.Fleet.Self.L1Flushes < 2 {
		t.Errorf("b did not resync and flush: %+v", st.Fleet.Self)
	}
	_, _, metrics := fetch(t, "GET", b.adminURL+"/metrics", fleetToken)
	for _, m := range []string{"cacheproxy_subscription_reconnects_total 1", "cacheproxy_l1_flushes_total 2", "cacheproxy_invalidations_received_total", "cacheproxy_l1_usable 1"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	_, _, metrics = fetch(t, "GET", a.adminURL+"/metrics", fleetToken)
	if !strings.Contains(metrics, `cacheproxy_purges_total{kind="url"} 1`) {
		t.Errorf("/metrics of the purging instance lacks its purge count")
	}
}

func TestFleetSlowFillDoesNotResurrect(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 3)
	a, b := fleet[0], fleet[1]
	release := o.Hold("/slow")
	done := make(chan string)
	go func() {
		_, _, body := fetch(t, "GET", b.proxyURL+"/slow", "")
		done <- body
	}()
	<-o.Arrived() // b's fill has read version 1 and waits
	o.Version.Store(2)
	if code, res := purge(t, a, "url=/slow"); code != http.StatusOK {
		t.Fatalf("purge = %d %+v", code, res)
	}
	o.Unhold("/slow")
	close(release)
	if body := <-done; body != "v1 /slow" {
		t.Fatalf("the slow request itself got %q", body)
	}
	for round := 0; round < 3; round++ {
		for _, s := range fleet {
			if x, body := get(t, s, "/slow"); body != "v2 /slow" {
				t.Fatalf("round %d: %s %q: the slow fill brought old content back", round, x, body)
			}
		}
	}
}

func TestFleetUnsafeMethodInvalidates(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 3)
	a, b, c := fleet[0], fleet[1], fleet[2]
	warm(t, fleet, "/players/1", "v1 /players/1")
	o.Version.Store(2)
	if code, _, body := fetch(t, "POST", c.proxyURL+"/players/1", ""); code != 200 || body != "done" {
		t.Fatalf("POST = %d %q", code, body)
	}
	for _, s := range []*server{a, b} {
		if x, body := get(t, s, "/players/1"); body != "v2 /players/1" {
			t.Errorf("after POST through another instance: %s %q", x, body)
		}
	}
}

func TestFleetAdminNeedsToken(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	s := startFleet(t, redis, o.URL, 1)[0]
	for _, c := range []struct{ method, path string }{
		{"DELETE", "/cache?url=/x"}, {"GET", "/cache?url=/x"}, {"GET", "/stats"},
	} {
		if code, _, _ := fetch(t, c.method, s.adminURL+c.path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s without token = %d, want 401", c.method, c.path, code)
		}
		if code, _, _ := fetch(t, c.method, s.adminURL+c.path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token = %d, want 401", c.method, c.path, code)
		}
	}
	for _, q := range []string{"", "url=", "prefix=nope", "url=/a&tag=b", "all=yes", "tag="} {
		if code, _ := purge(t, s, q); code != http.StatusBadRequest {
			t.Errorf("purge ?%s = %d, want 400", q, code)
		}
	}
}

func TestFleetPurgeWithRedisDown(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	s := startFleet(t, redis, o.URL, 1)[0]
	warm(t, []*server{s}, "/x", "v1 /x")
	if n := adminStats(t, s).L1.Entries; n == 0 {
		t.Fatal("nothing in L1 before the purge")
	}
	redis.Kill()
	code, _, body := fetch(t, "DELETE", s.adminURL+"/cache?url=/x", fleetToken)
	var res proxy.ErrorAnswer
	if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &res) != nil || !res.LocalL1Purged {
		t.Fatalf("purge with Redis down = %d %q", code, body)
	}
	if !strings.Contains(res.Error, "fleet could not be told") {
		t.Errorf("error message %q", res.Error)
	}
	await.Until(t, 15*time.Second, "L1 emptied", func() bool { return adminStats(t, s).L1.Entries == 0 })
	if x, body := get(t, s, "/x"); body != "v1 /x" || x == "HIT-L1" {
		t.Errorf("after local purge: %s %q", x, body)
	}
}

func TestFleetInspect(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2)
	warm(t, fleet, "/players/5", "v1 /players/5")
	code, _, body := fetch(t, "GET", fleet[0].adminURL+"/cache?url=/players/5", fleetToken)
	var in struct {
		Key   string   `json:"key"`
		Tiers []string `json:"tiers"`
		Tags  []string `json:"tags"`
		Size  int      `json:"size"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &in) != nil {
		t.Fatalf("inspect = %d %q", code, body)
	}
	if in.Key != "cacheproxy:1:G:/players/5" || strings.Join(in.Tiers, ",") != "l1,l2" || strings.Join(in.Tags, ",") != "player:5" || in.Size == 0 {
		t.Errorf("inspect = %+v", in)
	}
	if code, _, _ := fetch(t, "GET", fleet[0].adminURL+"/cache?url=/never", fleetToken); code != http.StatusNotFound {
		t.Errorf("inspect of an uncached URL = %d, want 404", code)
	}
}

// TestFleetCLI runs the client commands, as a user would, against two
// running instances.
func TestFleetCLI(t *testing.T) {
	redis := redistest.Start(t)
	o := newVersionedOrigin(t)
	fleet := startFleet(t, redis, o.URL, 2)
	a := fleet[0]
	warm(t, fleet, "/rank", "v1 /rank")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := command(t, append(args, "-admin", a.adminURL), "CACHEPROXY_ADMIN_TOKEN="+fleetToken)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return code, stdout.String(), stderr.String()
	}
	if code, out, errOut := cli("inspect", "/rank"); code != 0 || !strings.Contains(out, "cacheproxy:1:G:/rank") || !strings.Contains(out, "l1, l2") {
		t.Errorf("inspect: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := cli("stats"); code != 0 || !strings.Contains(out, "hit ratio") || !strings.Contains(out, "(self)") {
		t.Errorf("stats: %d %q %q", code, out, errOut)
	}
	o.Version.Store(2)
	if code, out, errOut := cli("purge", "-url", "/rank"); code != 0 || !strings.Contains(out, "purged url /rank") || !strings.Contains(out, "confirmed by 2 instances") {
		t.Errorf("purge: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := cli("inspect", "/rank"); code != 1 || !strings.Contains(errOut, "not cached") {
		t.Errorf("inspect after purge: %d %q", code, errOut)
	}
	for _, s := range fleet {
		if _, body := get(t, s, "/rank"); body != "v2 /rank" {
			t.Errorf("after CLI purge: %q", body)
		}
	}
	if code, out, _ := cli("purge", "-json", "-tag", "nothing"); code != 0 || !strings.Contains(out, `"confirmed"`) {
		t.Errorf("purge -json: %d %q", code, out)
	}
	cmd := command(t, []string{"purge", "-url", "/rank", "-admin", a.adminURL})
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "unauthorized") {
		t.Errorf("purge without token: %v %q", err, stderr.String())
	}
}
