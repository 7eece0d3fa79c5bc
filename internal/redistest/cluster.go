package redistest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of three masters without replicas, each a
// Server of its own (it can be killed, paused and restarted alone), owned
// by one test.
type Cluster struct {
	Nodes []*Server
	t     testing.TB
}

// StartCluster starts three cluster-enabled redis-servers on free
// loopback ports (each with its cluster bus on port + 10000), joins them
// with redis-cli --cluster create, and waits until every node reports
// cluster_state:ok. They are killed when t finishes.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 0)
}

// StartClusterWithReplicas is StartCluster with a replica for each of the
// three masters (six nodes), so that killing a master promotes its
// replica (within about 2 to 5 s: the node timeout is 2 s). The nodes
// keep serving the slots they hold while another master is failing
// (cluster-require-full-coverage no).
func StartClusterWithReplicas(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 1)
}

func startCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	cli := binary(t, "redis-cli")
	c := &Cluster{t: t}
	for range 3 * (1 + replicas) {
		c.Nodes = append(c.Nodes, startWith(t, nil, func(s *Server) {
			for s.port+10000 > 65535 || !portFree(s.port+10000) {
				p, err := freePort()
				if err != nil {
					t.Fatalf("redistest: finding a free port: %v", err)
				}
				s.port = p
				s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
			}
			s.args = []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
				"--cluster-node-timeout", "2000"}
			if replicas > 0 {
				s.args = append(s.args, "--cluster-require-full-coverage", "no")
			}
		}))
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	c.awaitOK()
	return c
}

// awaitOK waits until every node says cluster_state:ok and knows every
// other.
func (c *Cluster) awaitOK() {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, err := n.Client().ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))) {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("redistest: cluster node %s not ok within 20s: %q, %v", n.Addr, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// MasterOf returns the node that is the master of key's slot now, as
// the live nodes see it, or nil if none is.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	ctx := context.Background()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		slot, err := n.Client().ClusterKeySlot(ctx, key).Result()
		if err != nil {
			continue
		}
		slots, err := n.Client().ClusterSlots(ctx).Result()
		if err != nil {
			continue
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
				return c.node(r.Nodes[0].Addr)
			}
		}
		return nil
	}
	return nil
}

// node returns the node listening on addr, or nil.
func (c *Cluster) node(addr string) *Server {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// URL returns the cluster's URL in go-redis's form:
// redis://NODE1?addr=NODE2&addr=NODE3.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr
	}
	return u
}

// Client returns a cluster client, closed when the test finishes.
func (c *Cluster) Client() *redis.ClusterClient {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr)
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// Do runs a command on every node, failing the test on an error: for
// ACL SETUSER, CONFIG SET and the like, which a cluster does not share.
func (c *Cluster) Do(args ...any) {
	c.t.Helper()
	for _, n := range c.Nodes {
		if err := n.Client().Do(context.Background(), args...).Err(); err != nil {
			c.t.Fatalf("redistest: %v on %s: %v", args, n.Addr, err)
		}
	}
}

// portFree reports whether a loopback TCP port can be listened on.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
