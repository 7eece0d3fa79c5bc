package redistest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || strings.HasSuffix(s.Addr, ":6379") {
		t.Fatalf("Addr = %q, want a loopback port other than 6379", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	s.Kill()
	if err := ping(s.Addr); err == nil {
		t.Fatal("server still answers PING after Kill")
	}

	s.Restart()
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// Persistence is off: the restarted server is empty. The client
	// reconnects by itself (its pooled connection died with the server).
	var n int64
	var err error
	for range 5 {
		if n, err = c.Exists(ctx, "k").Result(); err == nil {
			break
		}
	}
	if err != nil || n != 0 {
		t.Errorf("EXISTS k after Restart = %d, %v; want 0, nil", n, err)
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t)
	s.Pause()
	if err := ping(s.Addr); err == nil {
		t.Fatal("paused server answered PING")
	}
	s.Resume()
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("two servers share %s", a.Addr)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t)
	ctx := context.Background()
	cl := c.Client()
	for _, k := range []string{"a", "b", "c", "d"} {
		if err := cl.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var held int64
	for _, n := range c.Nodes {
		k, _ := n.Client().DBSize(ctx).Result()
		held += k
	}
	if held != 4 {
		t.Errorf("nodes hold %d keys, want 4", held)
	}
}

func TestSentinels(t *testing.T) {
	s := StartSentinels(t)
	if got := s.MasterAddr(); got != s.Master.Addr {
		t.Fatalf("master %s, want %s", got, s.Master.Addr)
	}
	if next := s.Failover(); next != s.Replica || s.MasterAddr() != s.Replica.Addr {
		t.Fatalf("after failover the master is %s, want %s", s.MasterAddr(), s.Replica.Addr)
	}
}

func TestTLS(t *testing.T) {
	s, files := StartTLS(t)
	if !strings.HasPrefix(s.URL(), "rediss://") || files.CA == "" {
		t.Fatalf("URL %s, files %+v", s.URL(), files)
	}
	if err := s.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING over TLS with the client certificate: %v", err)
	}
	if err := ping(s.Addr); err == nil {
		t.Error("a TLS-only server answered PING in clear")
	}
}
