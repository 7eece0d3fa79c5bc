package shared

// The nodes of a Cluster. A master that cannot be reached costs the
// slots it holds, not the others: a call that fails to connect to it (or
// whose connection it broke) marks that node down, not the tier, and
// calls for keys in its slots are refused at once (a miss) while the
// others go on. The slot map is reloaded then and every RetryInterval
// while a node is down, and the node is up again as soon as it answers a
// ping or holds no slot any more (its replica was promoted: its slots
// are then the new master's). A node that holds the fleet's metadata
// (the purge sequence and epoch) is still the whole tier's failure, as
// on one server: without it no read can be judged. Timeouts are not
// attributed to a node (they keep the tier's own rule, see fail).

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodes is the Cluster's record of its masters that cannot be reached.
// The zero value, with no cluster, records nothing.
type nodes struct {
	cluster *redis.ClusterClient // nil unless a Cluster
	// down maps the address of each master found unreachable to when
	// it was; nil or empty while every master answers. It is replaced,
	// never modified, under mu.
	down atomic.Pointer[map[string]time.Time]
	mu   sync.Mutex
}

// anyDown reports whether some master is marked down: one atomic load.
func (n *nodes) anyDown() bool {
	m := n.down.Load()
	return m != nil && len(*m) > 0
}

// keyDown reports whether the master that holds key (a Redis key) is
// marked down. It costs one atomic load while none is.
func (t *Tier) keyDown(ctx context.Context, key string) bool {
	n := &t.nodes
	if n.cluster == nil || !n.anyDown() {
		return false
	}
	c, err := n.cluster.MasterForKey(ctx, key)
	if err != nil {
		return false
	}
	_, down := (*n.down.Load())[c.Options().Addr]
	return down
}

// refuseKey is refuse for a call on key: also refused, and counted,
// while the master that holds key is marked down.
func (t *Tier) refuseKey(ctx context.Context, p purpose, key string) bool {
	if t.refuse(p) {
		return true
	}
	if t.keyDown(ctx, key) {
		t.errs.Add(1)
		return true
	}
	return false
}

// nodeFailed marks down the master an unreachable-error names, if the
// tier is a Cluster and that master does not hold the fleet's metadata,
// and reports whether it did: the caller then leaves the tier up.
func (t *Tier) nodeFailed(ctx context.Context, err error) bool {
	n := &t.nodes
	if n.cluster == nil || isTimeout(err) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// A connection a master broke during a call names no node: that
		// call is a miss, and the tier stays up. The next call to a
		// master that died fails to dial, which names it (marked down
		// here), or is the metadata's (the tier's failure). Marking the
		// tier down here would cost every slot for up to a probe.
		return true
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Addr == nil {
		return false
	}
	addr := op.Addr.String()
	if meta, merr := n.cluster.MasterForKey(ctx, t.seq); merr != nil || meta.Options().Addr == addr {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.down.Load()
	if old != nil {
		if _, ok := (*old)[addr]; ok {
			return true
		}
	}
	m := map[string]time.Time{addr: time.Now()}
	if old != nil {
		for a, since := range *old {
			m[a] = since
		}
	}
	n.down.Store(&m)
	n.cluster.ReloadState(ctx) // lazily: a promotion may already be known
	t.log.Warn("redis cluster node unreachable: L2 skipped for its slots until it answers or its slots move",
		"node", addr, "err", err)
	return true
}

// probeNodes, while some master is marked down, reloads the slot map and
// clears each master marked down that answers a ping or no longer holds
// a slot. watch calls it every RetryInterval.
func (t *Tier) probeNodes() {
	n := &t.nodes
	if n.cluster == nil || !n.anyDown() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout+time.Second)
	defer cancel()
	down := *n.down.Load()
	var mu sync.Mutex
	masters, answered := map[string]bool{}, map[string]bool{}
	err := n.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		ok := false
		if _, isDown := down[addr]; isDown {
			pctx, pcancel := context.WithTimeout(ctx, t.timeout)
			ok = c.Ping(pctx).Err() == nil
			pcancel()
		}
		mu.Lock()
		masters[addr], answered[addr] = true, ok
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.log.Debug("redis cluster: reloading the slot map", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m := map[string]time.Time{}
	for addr, since := range *n.down.Load() {
		switch {
		case !masters[addr]:
			t.log.Info("redis cluster node holds no slots any more: its slots are served by their new master",
				"node", addr, "down_for", time.Since(since).Round(time.Millisecond))
		case answered[addr]:
			t.log.Info("redis cluster node reachable again", "node", addr,
				"down_for", time.Since(since).Round(time.Millisecond))
		default:
			m[addr] = since
		}
	}
	n.down.Store(&m)
}

// DownNodes returns the addresses of the Cluster masters marked down
// (none on one server).
func (t *Tier) DownNodes() []string {
	m := t.nodes.down.Load()
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(*m))
	for a := range *m {
		out = append(out, a)
	}
	return out
}
