package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// clusterPaths warms n paths /k/<i> into the Cluster through s (an
// instance without L1) and returns, for each master, the paths whose
// entries it holds, and the master that holds the fleet's metadata.
func clusterPaths(t *testing.T, cluster *redistest.Cluster, s *server, n int) (byNode map[*redistest.Server][]string, meta *redistest.Server) {
	t.Helper()
	for i := range n {
		p := fmt.Sprintf("/k/%d", i)
		await.Until(t, 15*time.Second, "HIT-L2 of "+p, func() bool {
			x, _ := get(t, s, p)
			return x == "HIT-L2"
		})
	}
	ctx := context.Background()
	byNode = map[*redistest.Server][]string{}
	pathRE := regexp.MustCompile(`/k/[0-9]+`)
	for _, node := range cluster.Nodes {
		if role, _ := node.Client().Do(ctx, "ROLE").Slice(); len(role) == 0 || role[0] != "master" {
			continue
		}
		keys, err := node.Client().Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if strings.Contains(k, "purge:seq") {
				meta = node
			}
			if p := pathRE.FindString(k); p != "" && !seen[p] {
				seen[p] = true
				byNode[node] = append(byNode[node], p)
			}
		}
	}
	// Every write reached the replicas before a master is killed.
	await.Until(t, 15*time.Second, "replicas in sync", func() bool {
		var masters, replicas int64
		for _, node := range cluster.Nodes {
			role, _ := node.Client().Do(ctx, "ROLE").Slice()
			size, _ := node.Client().DBSize(ctx).Result()
			if len(role) > 0 && role[0] == "master" {
				masters += size
			} else {
				replicas += size
			}
		}
		return masters > 0 && masters == replicas
	})
	return byNode, meta
}

// TestClusterMasterKill: when a master of a Cluster (not the one holding
// the fleet's metadata) is killed, L2 hits go on for every key of the
// other masters, without a miss, and come back for the dead master's
// keys within seconds of its replica's promotion (issue 19, point 4: the
// whole tier was skipped for 25 to 50 s).
func TestClusterMasterKill(t *testing.T) {
	cluster := redistest.StartClusterWithReplicas(t)
	o := newVersionedOrigin(t)
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + cluster.URL(), "CACHEPROXY_ADMIN_TOKEN=" + fleetToken},
		// Every read goes to L2; a loaded machine must not turn a
		// surviving master's slow answer into a miss (the per-call
		// deadline is not what this tests).
		"-origin", o.URL, "-l1-max-bytes", "0", "-redis-timeout", "2s")
	byNode, meta := clusterPaths(t, cluster, s, 60)
	var victim *redistest.Server
	var survivors []string
	for node, paths := range byNode {
		if node != meta && victim == nil {
			victim = node
			continue
		}
		survivors = append(survivors, paths...)
	}
	if victim == nil || meta == nil || len(survivors) == 0 {
		t.Fatalf("no master to kill: metadata on %v, keys on %d masters", meta, len(byNode))
	}
	victimPaths := byNode[victim]
	victimKey := victim.Client().Keys(context.Background(), "*").Val()[0]

	victim.Kill()
	killed := time.Now()
	var promoted, recovered time.Time
	misses := 0
	for time.Since(killed) < 30*time.Second && recovered.IsZero() {
		for _, p := range survivors {
			if x, _ := get(t, s, p); x != "HIT-L2" {
				misses++
				t.Errorf("%v after the kill, %s (a surviving master's) = %s, want HIT-L2",
					time.Since(killed).Round(time.Millisecond), p, x)
			}
		}
		if promoted.IsZero() {
			if m := cluster.MasterOf(victimKey); m != nil && m != victim {
				promoted = time.Now()
				t.Logf("replica %s promoted %v after the kill", m.Addr, promoted.Sub(killed).Round(time.Millisecond))
			}
		}
		all := true
		for _, p := range victimPaths {
			if x, _ := get(t, s, p); x != "HIT-L2" {
				all = false
			}
		}
		if all && !promoted.IsZero() {
			recovered = time.Now()
		}
		if misses > 10 {
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
	switch {
	case promoted.IsZero():
		t.Fatal("no replica promoted within 30 s")
	case recovered.IsZero():
		t.Fatalf("the dead master's keys not L2 hits again 30 s after the kill (promotion at +%v)", promoted.Sub(killed).Round(time.Millisecond))
	case recovered.Sub(promoted) > 10*time.Second:
		t.Errorf("the dead master's keys L2 hits again %v after the promotion, want within 10 s", recovered.Sub(promoted).Round(time.Millisecond))
	}
	t.Logf("%d keys of surviving masters read every round, all HIT-L2; the dead master's %d keys HIT-L2 again %v after the promotion",
		len(survivors), len(victimPaths), recovered.Sub(promoted).Round(time.Millisecond))
}
