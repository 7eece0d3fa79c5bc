package shared

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// channelLog records every message published on the fleet's channels,
// by channel, through a pattern subscription.
type channelLog struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func watchChannels(t *testing.T, srv *redistest.Server) *channelLog {
	t.Helper()
	ps := srv.Client().PSubscribe(context.Background(), "cacheproxy:purge*")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	l := &channelLog{msgs: map[string][]string{}}
	go func() {
		for m := range ps.Channel() {
			l.mu.Lock()
			l.msgs[m.Channel] = append(l.msgs[m.Channel], m.Payload)
			l.mu.Unlock()
		}
	}()
	return l
}

// take returns what was published since the last take, and forgets it.
func (l *channelLog) take() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.msgs
	l.msgs = map[string][]string{}
	return out
}

// No message goes to every instance but the purges: a heartbeat's echo
// goes to its own instance's reply channel, and a purge's confirmations
// to the asker's, one per member, so a purge costs O(N) deliveries.
func TestFleetTrafficIsNotAllToAll(t *testing.T) {
	srv := redistest.Start(t)
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		newMember(t, srv, id)
	}
	asker := newMember(t, srv, "d")
	ids = append(ids, "d")
	log := watchChannels(t, srv)
	time.Sleep(500 * time.Millisecond) // five heartbeats of each
	idle := log.take()
	for ch, msgs := range idle {
		id, own := strings.CutPrefix(ch, "cacheproxy:purge:ack:")
		if !own {
			t.Errorf("at idle, %d messages on %s, which is not an instance's own channel", len(msgs), ch)
			continue
		}
		for _, m := range msgs {
			if m != "beat|"+id {
				t.Errorf("at idle, %q on %s", m, ch)
			}
		}
	}
	for _, id := range ids {
		if len(idle["cacheproxy:purge:ack:"+id]) == 0 {
			t.Errorf("no echo of %s's heartbeats on its own channel", id)
		}
	}

	res, err := asker.fleet.Purge(context.Background(), tiers.Selector{Kind: tiers.BanURL, Value: "/x"}, "")
	if err != nil || len(res.Confirmed) != len(ids) {
		t.Fatalf("purge: %v, %+v", err, res)
	}
	time.Sleep(200 * time.Millisecond)
	confirms := 0
	for ch, msgs := range log.take() {
		for _, m := range msgs {
			switch {
			case ch == "cacheproxy:purge":
			case ch == "cacheproxy:purge:ack:d" && strings.Contains(m, "@"):
				confirms++
			case strings.HasPrefix(m, "beat|"):
			default:
				t.Errorf("after the purge, %q on %s", m, ch)
			}
		}
	}
	if confirms != len(ids) {
		t.Errorf("%d confirmations on the asker's channel, want %d", confirms, len(ids))
	}
}

// v1Instance is an instance of protocol 1, as releases before protocol 2
// behave on the wire: it announces itself in the members set, confirms
// every ban on the shared ack channel, and asks for purges with a request
// ID that names no asker.
type v1Instance struct {
	id     string
	client *redis.Client
	tier   *Tier // only for the keys and the channels
}

func startV1(t *testing.T, srv *redistest.Server, tier *Tier, id string) *v1Instance {
	t.Helper()
	v := &v1Instance{id: id, client: srv.Client(), tier: tier}
	ctx, cancel := context.WithCancel(context.Background())
	ps := v.client.Subscribe(ctx, tier.purgeChannel(), tier.ackChannel())
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ps.Close(); wg.Wait() })
	beat := func() {
		now, err := v.client.Time(ctx).Result()
		if err == nil {
			v.client.ZAdd(ctx, tier.metaKey("members"), redis.Z{Score: float64(now.UnixMilli()), Member: id})
			v.client.Publish(ctx, tier.ackChannel(), "beat|"+id)
		}
	}
	beat()
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				beat()
			}
		}
	})
	wg.Go(func() {
		for m := range ps.Channel() {
			if m.Channel != tier.purgeChannel() {
				continue
			}
			b, err := tiers.ParseBan(m.Payload)
			if err != nil {
				t.Errorf("protocol 1 cannot parse the ban %q: %v", m.Payload, err)
				continue
			}
			v.client.Publish(ctx, tier.ackChannel(), b.ID+"|"+id)
		}
	})
	return v
}

// purge records a ban as protocol 1 does (its request ID a bare hex name,
// with a script of its own release: the previous one's stands for it)
// and returns its ID.
func (v *v1Instance) purge(t *testing.T, value string) string {
	t.Helper()
	s := previousPurge(t, v.client, v.tier, tiers.Selector{Kind: tiers.BanURL, Value: value}, randomID())
	b, err := tiers.ParseBan(s)
	if err != nil {
		t.Fatal(err)
	}
	return b.ID
}

// Instances of protocols 1 and 2 under one prefix interoperate: a purge
// asked of either waits for, and is confirmed by, both.
func TestFleetInteroperatesWithProtocol1(t *testing.T) {
	srv := redistest.Start(t)
	a := newMember(t, srv, "a")
	old := startV1(t, srv, a.tier, "old")
	await.Until(t, 10*time.Second, "the old instance among the members", func() bool {
		ms, _ := a.fleet.Members(context.Background())
		return len(ms) == 2
	})

	// Asked of protocol 2: the old instance's confirmation on the shared
	// channel counts.
	res, err := a.fleet.Purge(context.Background(), tiers.Selector{Kind: tiers.BanURL, Value: "/new"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Confirmed, ",") != "a,old" || len(res.Missing) != 0 {
		t.Errorf("purge asked of protocol 2: confirmed %v, missing %v; want a and old confirmed", res.Confirmed, res.Missing)
	}

	// Asked of protocol 1: the new instance confirms on the shared
	// channel, where the old asker waits.
	acks := ackWatcher(t, srv)
	id := old.purge(t, "/old")
	want := confirmation(id, "a")
	timeout := time.After(10 * time.Second)
	for got := ""; got != want; {
		select {
		case got = <-acks:
		case <-timeout:
			t.Fatalf("no confirmation %q by the protocol 2 instance on the shared channel", want)
		}
	}
}

// Members costs two commands whatever the fleet's size, and one read a
// heartbeat however often it is asked.
func TestFleetMembersReadsOnceAHeartbeat(t *testing.T) {
	srv := redistest.Start(t)
	var ms []*member
	for _, id := range []string{"a", "b", "c", "d"} {
		ms = append(ms, newMemberWith(t, srv.URL(), id, func(o *FleetOptions) { o.Heartbeat = time.Second }))
	}
	f := ms[0].fleet
	var reads atomic.Int64
	f.client.AddHook(countReads{&reads})
	await.Until(t, 10*time.Second, "four members", func() bool {
		got, _ := f.Members(context.Background())
		return len(got) == 4
	})
	for range 4 {
		reads.Store(0)
		for range 20 {
			if got, err := f.Members(context.Background()); err != nil || len(got) != 4 {
				t.Fatalf("Members: %v, %d members", err, len(got))
			}
		}
		if n := reads.Load(); n <= 2 {
			return // twenty answers within one heartbeat: one read of two commands
		}
		// A heartbeat went by meanwhile: the answer is read again. Retry.
	}
	t.Errorf("20 calls of Members within a heartbeat cost %d commands, want at most 2", reads.Load())
}

// countReads counts the commands Members may issue.
type countReads struct{ n *atomic.Int64 }

func (c countReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c countReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "zrangebyscore", "mget", "get":
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c countReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
