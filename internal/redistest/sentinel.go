package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name under which a Sentinels' master is monitored.
const MasterName = "mymaster"

// Sentinels is a master, one replica and three sentinels monitoring the
// master (quorum 2, down after 1s), each a process of its own owned by
// one test.
type Sentinels struct {
	Master, Replica *Server
	Sentinels       []*Server
	t               testing.TB
}

// StartSentinels starts a master, a replica of it and three sentinels,
// each with a generated configuration in its own temporary directory, and
// waits until the replica is in sync and every sentinel knows it and the
// other sentinels.
func StartSentinels(t testing.TB) *Sentinels {
	t.Helper()
	s := &Sentinels{t: t}
	s.Master = Start(t)
	s.Replica = startWith(t, nil, func(r *Server) {
		r.args = []string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.port)}
	})
	for range 3 {
		s.Sentinels = append(s.Sentinels, startWith(t, nil, func(sn *Server) {
			conf := filepath.Join(sn.dir, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\n"+
				"sentinel down-after-milliseconds %s 1000\n"+
				"sentinel failover-timeout %s 10000\n"+
				"sentinel parallel-syncs %s 1\n",
				sn.port, sn.dir, MasterName, s.Master.port, MasterName, MasterName, MasterName)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatalf("redistest: %v", err)
			}
			// The config file first: redis-server reads it, then
			// --sentinel; the defaults after it (port, bind, dir) agree.
			sn.name = "redis-server --sentinel"
			sn.args = nil
			sn.sentinelConf = conf
		}))
	}
	s.await("replica in sync and known to every sentinel", func() bool {
		info, err := s.Replica.Client().Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false
		}
		for _, sn := range s.Sentinels {
			c := sn.Client()
			reps, err := c.Do(context.Background(), "SENTINEL", "REPLICAS", MasterName).Slice()
			if err != nil || len(reps) != 1 {
				return false
			}
			sents, err := c.Do(context.Background(), "SENTINEL", "SENTINELS", MasterName).Slice()
			if err != nil || len(sents) != 2 {
				return false
			}
		}
		return true
	})
	return s
}

func (s *Sentinels) await(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: %s: not within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL returns the go-redis failover URL:
// redis://SENTINEL1?master_name=mymaster&addr=SENTINEL2&addr=SENTINEL3.
func (s *Sentinels) URL() string {
	u := "redis://" + s.Sentinels[0].Addr + "?master_name=" + MasterName
	for _, sn := range s.Sentinels[1:] {
		u += "&addr=" + sn.Addr
	}
	return u
}

// MasterAddr returns the master's address as the first sentinel says.
func (s *Sentinels) MasterAddr() string {
	s.t.Helper()
	a, err := s.Sentinels[0].Client().Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName).StringSlice()
	if err != nil || len(a) != 2 {
		s.t.Fatalf("redistest: SENTINEL GET-MASTER-ADDR-BY-NAME: %v %v", a, err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// Failover runs SENTINEL FAILOVER on the first sentinel and waits until
// every sentinel names the former replica as master and it says it is
// one. It returns the new master.
func (s *Sentinels) Failover() *Server {
	s.t.Helper()
	old := s.MasterAddr()
	next := s.Replica
	if old == s.Replica.Addr {
		next = s.Master
	}
	if err := s.Sentinels[0].Client().Do(context.Background(), "SENTINEL", "FAILOVER", MasterName).Err(); err != nil {
		s.t.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	s.await("failover to "+next.Addr, func() bool {
		for _, sn := range s.Sentinels {
			a, err := sn.Client().Do(context.Background(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName).StringSlice()
			if err != nil || len(a) != 2 || net.JoinHostPort(a[0], a[1]) != next.Addr {
				return false
			}
		}
		role, err := next.Client().Do(context.Background(), "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	return next
}

// SentinelClient returns a client of the first sentinel, as the test's
// Client of any server.
func (s *Sentinels) SentinelClient() *redis.Client { return s.Sentinels[0].Client() }
