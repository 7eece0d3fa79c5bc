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
