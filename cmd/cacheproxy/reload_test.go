package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// runCmd runs cacheproxy with args to its end and returns its exit status,
// stdout and stderr.
func runCmd(t *testing.T, args []string, env ...string) (int, string, string) {
	t.Helper()
	cmd := command(t, args, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// reloadOrigin answers every GET with its path; /kept/ with max-age=300,
// everything else without freshness (stored only by a route's ttl).
func reloadOrigin(t *testing.T) *httptest.Server {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/kept/") {
			w.Header().Set("Cache-Control", "max-age=300")
		}
		fmt.Fprint(w, r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

// traffic sends GETs to paths on s from 4 goroutines until stop is
// called (or 20,000 requests), and returns how many were sent and failed.
func traffic(t *testing.T, s *server, paths ...string) (stop func() (sent, failed int64)) {
	var n, failed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; n.Add(1) <= 20000; i++ {
				select {
				case <-done:
					return
				default:
				}
				resp, err := client.Get(s.proxyURL + paths[i%len(paths)])
				if err != nil {
					failed.Add(1)
					t.Logf("during the reload: %v", err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					t.Logf("during the reload: %d", resp.StatusCode)
				}
			}
		}()
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return min(n.Load(), 20000), failed.Load()
	}
}

// logged waits until the server's log has a line holding every one of
// parts, and returns it.
func logged(t *testing.T, s *server, after int, parts ...string) string {
	t.Helper()
	var found string
	await.Until(t, 15*time.Second, fmt.Sprintf("a log line with %q", parts), func() bool {
		s.logs.mu.Lock()
		defer s.logs.mu.Unlock()
		for _, l := range s.logs.lines[min(after, len(s.logs.lines)):] {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func logCount(s *server) int {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	return len(s.logs.lines)
}

// TestReloadSIGHUP: SIGHUP applies a changed route under traffic, with no
// failed request, keeps L1, names what needs a restart, and refuses a
// configuration that does not load with start-up's error, keeping the
// running one. cacheproxy reload (POST /reload) does the same.
func TestReloadSIGHUP(t *testing.T) {
	o := reloadOrigin(t)
	file := writeConfig(t, "routes:\n  - {path: /first/, ttl: 1m}\n")
	args := []string{"-config", file, "-origin", o.URL, "-default-ttl", "0"}
	s := startServer(t, nil, args...)
	for _, c := range []struct{ path, want string }{
		{"/kept/1", "MISS"}, {"/kept/1", "HIT-L1"}, {"/r/1", "PASS"}, {"/r/1", "PASS"},
	} {
		if x, _ := get(t, s, c.path); x != c.want {
			t.Fatalf("GET %s: %s, want %s", c.path, x, c.want)
		}
	}

	// A new route, and a restart-only setting changed, under traffic.
	stop := traffic(t, s, "/kept/1", "/r/1", "/first/1", "/kept/2")
	time.Sleep(200 * time.Millisecond) // some traffic before the reload
	if err := os.WriteFile(file, []byte("key-prefix: other\nroutes:\n  - {path: /first/, ttl: 1m}\n  - {path: /r/, ttl: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := logCount(s)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := logged(t, s, n, "configuration reloaded", `"trigger":"SIGHUP"`)
	if !strings.Contains(line, `"changed":["routes"]`) || !strings.Contains(line, `"restart_needed":["key-prefix"]`) {
		t.Errorf("reload log line: %s", line)
	}
	time.Sleep(200 * time.Millisecond) // some traffic after the reload
	sent, failed := stop()
	t.Logf("%d requests during the reload, %d failed", sent, failed)
	if failed != 0 || sent == 0 {
		t.Errorf("%d of %d requests failed during the reload", failed, sent)
	}
	if x, _ := get(t, s, "/kept/1"); x != "HIT-L1" {
		t.Errorf("after the reload GET /kept/1: %s, want HIT-L1 (L1 kept)", x)
	}
	get(t, s, "/r/2")
	if x, _ := get(t, s, "/r/2"); x != "HIT-L1" {
		t.Errorf("after the reload GET /r/2: %s, want HIT-L1 (the new route)", x)
	}

	// A configuration that does not load: refused with start-up's error.
	bad := "routes:\n  - {path: no-slash, ttl: 1m}\n"
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, startErr := runCmd(t, append([]string{"-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0"}, args...))
	if code != 2 || startErr == "" {
		t.Fatalf("start-up with the bad file: exit %d, %q", code, startErr)
	}
	msg := strings.TrimSpace(strings.TrimPrefix(startErr, "cacheproxy: "))
	n = logCount(s)
	s.cmd.Process.Signal(syscall.SIGHUP)
	line = logged(t, s, n, "reload refused")
	if !strings.Contains(line, jsonString(msg)) {
		t.Errorf("refused reload logged %s, want start-up's error %q", line, msg)
	}
	get(t, s, "/r/3")
	if x, _ := get(t, s, "/r/3"); x != "HIT-L1" {
		t.Errorf("after a refused reload GET /r/3: %s, want HIT-L1 (the running routes kept)", x)
	}

	// cacheproxy reload, through the admin API.
	admin := "CACHEPROXY_ADMIN=" + s.adminURL
	code, out, errOut := runCmd(t, []string{"reload"}, admin)
	if code != 1 || !strings.Contains(errOut, msg) {
		t.Errorf("cacheproxy reload of the bad file: exit %d, %q; want 1 and %q", code, errOut, msg)
	}
	if err := os.WriteFile(file, []byte("key-prefix: other\nroutes:\n  - {path: /s/, ttl: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, []string{"reload"}, admin)
	if code != 0 || !strings.Contains(out, "changed: routes") || !strings.Contains(out, "restart to apply: key-prefix") {
		t.Errorf("cacheproxy reload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	get(t, s, "/s/1")
	if x, _ := get(t, s, "/s/1"); x != "HIT-L1" {
		t.Errorf("after cacheproxy reload GET /s/1: %s, want HIT-L1", x)
	}
	if x, _ := get(t, s, "/kept/1"); x != "HIT-L1" {
		t.Errorf("after cacheproxy reload GET /kept/1: %s, want HIT-L1", x)
	}
}

// jsonString returns s as it appears inside a JSON string.
func jsonString(s string) string {
	return strings.ReplaceAll(s, `"`, `\"`)
}

// TestReloadLogLevelAndAccessLog: a reload changes the log level and
// turns the access log on; SIGUSR1 reopens it after a rename, as
// logrotate does.
func TestReloadLogLevelAndAccessLog(t *testing.T) {
	o := reloadOrigin(t)
	dir := t.TempDir()
	accessFile := filepath.Join(dir, "access.log")
	file := writeConfig(t, "log-level: info\n")
	s := startServer(t, nil, "-config", file, "-origin", o.URL)
	// startServer sets -log-level debug as a flag, which wins over the
	// file: a reload keeps it.
	if err := os.WriteFile(file, []byte("access-log: "+accessFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := logCount(s)
	s.cmd.Process.Signal(syscall.SIGHUP)
	logged(t, s, n, "configuration reloaded", `"changed":["access-log"]`)
	get(t, s, "/one")
	await.Until(t, 10*time.Second, "/one in the access log", func() bool {
		b, _ := os.ReadFile(accessFile)
		return bytes.Contains(b, []byte(`"path":"/one"`))
	})
	if err := os.Rename(accessFile, accessFile+".1"); err != nil {
		t.Fatal(err)
	}
	n = logCount(s)
	s.cmd.Process.Signal(syscall.SIGUSR1)
	logged(t, s, n, "access log reopened")
	get(t, s, "/two")
	await.Until(t, 10*time.Second, "/two in the new access log", func() bool {
		b, _ := os.ReadFile(accessFile)
		return bytes.Contains(b, []byte(`"path":"/two"`))
	})
	if b, _ := os.ReadFile(accessFile + ".1"); bytes.Contains(b, []byte("/two")) {
		t.Errorf("the renamed file got lines after SIGUSR1")
	}
}

// TestCheck: cacheproxy check prints the effective configuration with
// where each value came from, without listening, exits 0 on a valid one
// with its warnings, and 2 with start-up's error on each bad one.
func TestCheck(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := writeConfig(t, `origin: http://127.0.0.1:9000
l1-ttl: 20s
routes:
  - {path: /api/, ttl: 1m}
  - {path: /api/players/, ttl: 5m}
  - {path: /nottl/}
  - {path: /ov/, override: true}
  - {path: /login, bypass: true}
`)
	code, out, errOut := runCmd(t, []string{"check", "-config", file, "-listen", busy.Addr().String(), "-max-object-bytes", "1MiB"},
		"CACHEPROXY_DEFAULT_TTL=2m", "CACHEPROXY_DEFUALT_TTL=1m", "CACHEPROXY_ADMIN_TOKEN=0123456789abcdef0123")
	if code != 0 {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range [][]string{
		{"l1-ttl ", "file " + file + ":2", "restart", `"20s"`},
		{"max-object-bytes ", "flag", "applied", `"1MiB"`},
		{"default-ttl ", "env CACHEPROXY_DEFAULT_TTL", "applied", `"2m"`},
		{"lock-timeout ", "default", "restart", `"5s"`},
		{"admin-token ", "env CACHEPROXY_ADMIN_TOKEN", "(value not shown)"},
	} {
		if l := lineWith(out, want[0]); !containsAll(l, want[1:]...) {
			t.Errorf("check output: %q, want %q in it:\n%s", l, want, out)
		}
	}
	for _, want := range []string{
		"0  /api/          1m0s",
		"1  /api/players/  5m0s",
		"4  /login         -     bypass",
		"configuration ok, 4 warning(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0123456789abcdef0123") {
		t.Errorf("check printed the admin token")
	}
	for _, want := range []string{
		"routes[1] /api/players/: never applies: routes[0] /api/",
		"routes[2] /nottl/: no ttl",
		"routes[3] /ov/: override without a ttl",
		"environment variable CACHEPROXY_DEFUALT_TTL names no setting",
	} {
		if !strings.Contains(errOut, "warning: "+want) {
			t.Errorf("check warnings lack %q:\n%s", want, errOut)
		}
	}

	for _, bad := range []struct {
		name, file string
		args       []string
	}{
		{"unknown key", "origin: http://127.0.0.1:9000\nttl: 5m\n", nil},
		{"route path", "origin: http://127.0.0.1:9000\nroutes:\n  - {path: api}\n", nil},
		{"override without ttl", "origin: http://127.0.0.1:9000\ndefault-ttl: 0\nroutes:\n  - {path: /a/, override: true}\n", nil},
		{"bad duration", "origin: http://127.0.0.1:9000\nl1-ttl: soon\n", nil},
		{"no origin", "l1-ttl: 1s\n", nil},
		{"bad flag", "origin: http://127.0.0.1:9000\n", []string{"-purge-wait", "-1s"}},
		{"redis tls without rediss", "origin: http://127.0.0.1:9000\nredis: redis://127.0.0.1:1\nredis-ca: /nonexistent\n", nil},
	} {
		t.Run(bad.name, func(t *testing.T) {
			f := writeConfig(t, bad.file)
			args := append([]string{"-config", f, "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0"}, bad.args...)
			code, out, errOut := runCmd(t, append([]string{"check"}, args...))
			startCode, _, startErr := runCmd(t, args)
			if code != 2 || startCode != 2 || errOut != startErr || !strings.HasPrefix(errOut, "cacheproxy: invalid") && !strings.HasPrefix(errOut, "cacheproxy: missing") {
				t.Errorf("check: exit %d, %q; start-up: exit %d, %q; want 2 and the same error", code, errOut, startCode, startErr)
			}
			if out != "" {
				t.Errorf("check printed a configuration for a bad one:\n%s", out)
			}
		})
	}
}

// lineWith returns the first line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestOperationsDocListsReload: docs/operations.md's table of what a
// reload applies and what needs a restart is the settings table's.
func TestOperationsDocListsReload(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "| applied on reload | needs a restart |")
	table, _, _ = strings.Cut(table, "\n\n")
	documented := map[string]bool{} // name: live
	for _, row := range strings.Split(table, "\n")[2:] {
		cells := strings.Split(row, "|")
		for col, live := range map[int]bool{1: true, 2: false} {
			quoted := strings.Split(cells[col], "`")
			for i := 1; i < len(quoted); i += 2 { // the odd parts are between backquotes
				documented[quoted[i]] = live
			}
		}
	}
	for _, s := range settings {
		if live, ok := documented[s.name]; !ok || live != s.live {
			t.Errorf("docs/operations.md: %s documented %v (live %v), want live %v", s.name, ok, live, s.live)
		}
	}
}
