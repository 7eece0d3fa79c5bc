package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

func readyz(t *testing.T, s *server) (int, readiness) {
	t.Helper()
	code, _, body := fetch(t, "GET", s.adminURL+"/readyz", fleetToken)
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	return code, r
}

// TestReadyOnlyOncePurgesAreLoaded starts an instance while its Redis is
// hung: it is not ready (it could use neither its L1 nor know the purges)
// until Redis answers and the purges are loaded.
func TestReadyOnlyOncePurgesAreLoaded(t *testing.T) {
	redis := redistest.Start(t)
	o := newEchoOrigin(t)
	redis.Pause()
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL(), "CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", o.URL)
	for range 3 {
		if code, r := readyz(t, s); code != http.StatusServiceUnavailable || r.Status != "starting" {
			t.Fatalf("/readyz with Redis hung at start = %d %+v, want 503 starting", code, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	redis.Resume()
	await.Until(t, 15*time.Second, "ready", func() bool {
		code, r := readyz(t, s)
		return code == http.StatusOK && r.Status == "ok"
	})
	if st := adminStats(t, s); !st.Fleet.Self.LocalUsable {
		t.Error("ready, but L1 not usable")
	}
}

// TestReadyWithoutRedisAfterGrace starts an instance whose Redis never
// answers: after startGrace it runs without the shared tier, ready and
// degraded.
func TestReadyWithoutRedisAfterGrace(t *testing.T) {
	redis := redistest.Start(t)
	o := newEchoOrigin(t)
	redis.Kill()
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL()}, "-origin", o.URL)
	if code, r := readyz(t, s); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz at start with Redis down = %d %+v, want 503", code, r)
	}
	time.Sleep(startGrace)
	await.Until(t, 15*time.Second, "ready without Redis", func() bool {
		code, r := readyz(t, s)
		return code == http.StatusOK && r.Status == "degraded" && r.Redis == "down"
	})
	if x, _ := get(t, s, "/p"); x != "MISS" {
		t.Errorf("X-Cache %q", x)
	}
}

// TestDrain sends SIGTERM to an instance with -drain: /readyz turns 503 at
// once while the proxy keeps serving for the drain period, then the
// listener closes and the process exits 0.
func TestDrain(t *testing.T) {
	o := newEchoOrigin(t)
	s := startServer(t, nil, "-origin", o.URL, "-drain", "3s")
	if code, _ := readyz(t, s); code != http.StatusOK {
		t.Fatalf("/readyz = %d before SIGTERM", code)
	}
	sent := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 15*time.Second, "/readyz 503 draining", func() bool {
		code, r := readyz(t, s)
		return code == http.StatusServiceUnavailable && r.Status == "draining"
	})
	// Still serving: new connections are accepted and answered.
	for time.Since(sent) < 2*time.Second {
		if code, _, _ := fetch(t, "GET", s.proxyURL+"/d", ""); code != http.StatusOK {
			t.Fatalf("GET during the drain = %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := s.wait(t); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if d := time.Since(sent); d < 3*time.Second {
		t.Errorf("exited %v after SIGTERM, before the 3s drain", d)
	}
	if !strings.Contains(s.logs.String(), `"msg":"draining"`) {
		t.Error("no draining log line")
	}
}
