package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster fault (cluster-master-kill): the same load on 3 cacheproxy
// instances, but on a Redis Cluster of 3 masters and 3 replicas and with
// L1 off (-l1-max-bytes 0), so that every request is a read of L2 and
// says by its X-Cache whether L2 answered. One master is killed — not
// the one holding the fleet's metadata slot, whose loss stops purges
// fleet-wide by design — and its replica is promoted by the Cluster. The
// analysis (faultclusterstats.go) splits the requests by the master that
// held their key before the kill.

// sysFaultCluster is the system the cluster fault measures.
const sysFaultCluster = "cacheproxy ×3 (Redis Cluster, 3 masters + 3 replicas, L1 off)"

// clusterStack is the Cluster of the cluster fault and what was learned
// of it before and during the fault.
type clusterStack struct {
	addrs []string // every node, masters and replicas
	nodes []*proc  // the nodes' processes, as addrs
	// victim, replica and meta index addrs: the master killed, its
	// replica, and the master of the fleet's metadata slot.
	victim, replica, meta int
	victimKeys            map[int]bool // load keys whose entries the victim held
	killed, promoted      time.Time    // zero until seen
}

// at returns t as an offset from t0; -1 if t was never seen.
func (c *clusterStack) at(t, t0 time.Time) time.Duration {
	if t.IsZero() {
		return -1
	}
	return t.Sub(t0)
}

// clusterPromotionWait bounds the wait for the replica's promotion (the
// node timeout is 2 s; a promotion takes 3 to 5 s).
const clusterPromotionWait = 30 * time.Second

// startClusterFaultStack starts the origin (with versions, max-age=300),
// a Cluster with a replica per master and three instances without L1 on
// it; reads every key until an instance answers it from L2; finds which
// master holds each key, the metadata's master and the master to kill
// and its replica; and waits until that replica holds what its master
// does.
func (h *harness) startClusterFaultStack(f faultKind) (*faultStack, error) {
	st := &faultStack{keys: faultKeys, cluster: &clusterStack{}}
	var err error
	if st.originAddr, _, err = h.listen(); err != nil {
		return nil, err
	}
	if st.origin, err = h.launchOrigin(st.originAddr, 0, "-versions"); err != nil {
		return nil, err
	}
	rds, nodes, err := h.startCluster(1)
	if err != nil {
		return nil, err
	}
	cs := st.cluster
	cs.nodes = nodes
	for _, p := range nodes {
		cs.addrs = append(cs.addrs, p.addr)
	}
	origin := &server{url: st.originURL(), addr: st.originAddr}
	for i := range 3 {
		s, err := h.startCacheproxy(fmt.Sprintf("cacheproxy-%d", i+1), origin, rds, "-l1-max-bytes", "0", "-drain", "0")
		if err != nil {
			return nil, err
		}
		st.fronts = append(st.fronts, s)
	}
	// Warm-up: every key an L2 hit (the first read fills L2).
	for k := range st.keys {
		u := fmt.Sprintf("%s/blob/%d?size=1024", st.fronts[k%len(st.fronts)].url, k)
		deadline := time.Now().Add(15 * time.Second)
		for {
			x, err := xcache(u)
			if err == nil && x == "HIT-L2" {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("warm-up: %s not HIT-L2 within 15 s (X-Cache %q, %v)", u, x, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := cs.survey(); err != nil {
		return nil, err
	}
	return st, nil
}

// xcache GETs u and returns its X-Cache.
func xcache(u string) (string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(u)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Header.Get("X-Cache"), nil
}

// nodeClient is a plain client of one Cluster node, with short timeouts.
func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
}

// benchMetaKey is a key in the fleet's metadata slot: the instances'
// -key-prefix as the hash tag (tiers/shared/keys.go).
const benchMetaKey = benchKeyPrefix + ":{" + benchKeyPrefix + "}:purge:seq"

// survey finds each node's role, the metadata's master (the master of
// benchMetaKey's slot), the load keys each master holds, the master to
// kill (the first, in node order, that holds load keys and not the
// metadata) and its replica, then waits up to 15 s until that replica
// holds as many keys as its master.
func (c *clusterStack) survey() error {
	ctx := context.Background()
	roles := make([]string, len(c.addrs))
	masterOf := make([]string, len(c.addrs)) // a replica's master's address
	byNode := map[int][]int{}
	for i, a := range c.addrs {
		cl := nodeClient(a)
		reply, err := cl.Do(ctx, "ROLE").Slice()
		if err != nil {
			cl.Close()
			return fmt.Errorf("ROLE on %s: %w", a, err)
		}
		roles[i], masterOf[i] = roleOf(reply)
		if roles[i] == "master" {
			keys, err := cl.Keys(ctx, "*").Result()
			if err != nil {
				cl.Close()
				return fmt.Errorf("KEYS on %s: %w", a, err)
			}
			byNode[i] = blobKeys(keys)
		}
		cl.Close()
	}
	metaAddr, err := slotMaster(c.addrs[0], benchMetaKey)
	if err != nil {
		return err
	}
	c.victim, c.replica, c.meta = -1, -1, -1
	for i, a := range c.addrs {
		if roles[i] == "master" && a == metaAddr {
			c.meta = i
		}
	}
	for i := range c.addrs {
		if roles[i] == "master" && i != c.meta && len(byNode[i]) > 0 {
			c.victim = i
			break
		}
	}
	if c.meta < 0 || c.victim < 0 {
		return fmt.Errorf("no master to kill: metadata on %q, roles %v", metaAddr, roles)
	}
	for i := range c.addrs {
		if roles[i] == "slave" && masterOf[i] == c.addrs[c.victim] {
			c.replica = i
		}
	}
	if c.replica < 0 {
		return fmt.Errorf("master %s has no replica: roles %v, masters %v", c.addrs[c.victim], roles, masterOf)
	}
	c.victimKeys = map[int]bool{}
	for _, k := range byNode[c.victim] {
		c.victimKeys[k] = true
	}
	vm, vr := nodeClient(c.addrs[c.victim]), nodeClient(c.addrs[c.replica])
	defer vm.Close()
	defer vr.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err1 := vm.DBSize(ctx).Result()
		r, err2 := vr.DBSize(ctx).Result()
		if err1 == nil && err2 == nil && m > 0 && m == r {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s not in sync with %s within 15 s: %d keys against %d (%v, %v)", c.addrs[c.replica], c.addrs[c.victim], r, m, err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slotMaster returns the address of the master of key's slot, as the node
// at addr sees it.
func slotMaster(addr, key string) (string, error) {
	ctx := context.Background()
	cl := nodeClient(addr)
	defer cl.Close()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("CLUSTER KEYSLOT on %s: %w", addr, err)
	}
	slots, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("CLUSTER SLOTS on %s: %w", addr, err)
	}
	for _, r := range slots {
		if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
			return r.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("slot %d of %s has no master", slot, key)
}

// roleOf reads a ROLE reply: the node's role ("master", "slave",
// "sentinel") and, for a replica, its master's host:port.
func roleOf(reply []any) (role, master string) {
	if len(reply) == 0 {
		return "", ""
	}
	role, _ = reply[0].(string)
	if role == "slave" && len(reply) >= 3 {
		host, _ := reply[1].(string)
		var port string
		switch p := reply[2].(type) {
		case int64:
			port = strconv.FormatInt(p, 10)
		case string:
			port = p
		}
		if host != "" && port != "" {
			master = host + ":" + port
		}
	}
	return role, master
}

// blobRE finds the load's key number in a Redis key of its entry (or
// lease): ".../blob/<n>?...".
var blobRE = regexp.MustCompile(`/blob/([0-9]+)\?`)

// blobKeys returns the load keys named by Redis keys, each once, in the
// order first seen.
func blobKeys(keys []string) []int {
	seen := map[int]bool{}
	var out []int
	for _, k := range keys {
		m := blobRE.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

// killMaster kills the chosen master with SIGKILL and waits, at most
// clusterPromotionWait, until its replica says it is a master (polled
// every 100 ms). A promotion not seen is no error: the row says so.
func (st *faultStack) killMaster(h *harness, ctx context.Context) error {
	c := st.cluster
	p := c.nodes[c.victim]
	c.killed = time.Now()
	syscall.Kill(p.Pid(), syscall.SIGKILL)
	h.ps.stop(p) // reaps it
	h.progress(fmt.Sprintf("killed master %s; waiting for %s", c.addrs[c.victim], c.addrs[c.replica]))
	cl := nodeClient(c.addrs[c.replica])
	defer cl.Close()
	for time.Since(c.killed) < clusterPromotionWait {
		if reply, err := cl.Do(ctx, "ROLE").Slice(); err == nil {
			if role, _ := roleOf(reply); role == "master" {
				c.promoted = time.Now()
				return nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
