package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// The tests run the real program by re-executing the test binary with
// GO_WANT_CACHEPROXY_MAIN=1, which makes TestMain call main instead of the
// tests.
func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_CACHEPROXY_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// command returns a Cmd running main with args, in the test's environment
// less any CACHEPROXY_ variable, plus env.
func command(t *testing.T, args []string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The process is killed if it outlives the test's deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, exe, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GO_WANT_CACHEPROXY_MAIN=1")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func TestExitStatus(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests
	badFile := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badFile, []byte("origin: http://127.0.0.1:1\ncolour: blue\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStderr []string
		wantStdout string
	}{
		{name: "bad env duration", args: []string{"-origin", "http://127.0.0.1:1"}, env: []string{"CACHEPROXY_DEFAULT_TTL=5x"},
			wantCode: 2, wantStderr: []string{`cacheproxy: invalid -default-ttl (env CACHEPROXY_DEFAULT_TTL): "5x": time: unknown unit`}},
		{name: "bad flag size", args: []string{"-origin", "http://127.0.0.1:1", "-l1-max-bytes", "lots"},
			wantCode: 2, wantStderr: []string{`invalid -l1-max-bytes (flag): "lots"`}},
		{name: "missing origin", wantCode: 2, wantStderr: []string{"missing -origin"}},
		{name: "unknown yaml key", args: []string{"-config", badFile},
			wantCode: 2, wantStderr: []string{`unknown key "colour"`, "bad.yaml:2"}},
		{name: "non-loopback admin without token", args: []string{"-origin", "http://127.0.0.1:1", "-admin-listen", "0.0.0.0:0"},
			wantCode: 2, wantStderr: []string{"-admin-token is required"}},
		{name: "non-loopback admin with short token", args: []string{"-origin", "http://127.0.0.1:1", "-admin-listen", "0.0.0.0:0"},
			env:      []string{"CACHEPROXY_ADMIN_TOKEN=short"},
			wantCode: 2, wantStderr: []string{"invalid -admin-token (env CACHEPROXY_ADMIN_TOKEN)", "at least 16 bytes"}},
		{name: "zero body timeout", args: []string{"-origin", "http://127.0.0.1:1", "-body-timeout", "0"},
			wantCode: 2, wantStderr: []string{"invalid -body-timeout (flag)"}},
		{name: "bad log level", args: []string{"-origin", "http://127.0.0.1:1"}, env: []string{"CACHEPROXY_LOG_LEVEL=loud"},
			wantCode: 2, wantStderr: []string{"invalid -log-level (env CACHEPROXY_LOG_LEVEL)"}},
		{name: "sentinel url", args: []string{"-origin", "http://127.0.0.1:1", "-redis", "redis://127.0.0.1:1?master_name=m", "-redis-mode", "cluster"},
			wantCode: 2, wantStderr: []string{"invalid -redis (flag)", "-redis-mode cluster (flag)", "master_name"}},
		{name: "redis cert without key", args: []string{"-origin", "http://127.0.0.1:1", "-redis", "rediss://127.0.0.1:1", "-redis-cert", "c.pem"},
			wantCode: 2, wantStderr: []string{"invalid -redis-cert (flag): needs -redis-key too"}},
		{name: "unknown subcommand", args: []string{"frobnicate"},
			wantCode: 2, wantStderr: []string{`unknown command "frobnicate"`, "Usage:"}},
		{name: "help flag", args: []string{"-help"}, wantCode: 0, wantStdout: "CACHEPROXY_<NAME>"},
		{name: "help command", args: []string{"help"}, wantCode: 0, wantStdout: "-shutdown-timeout"},
		{name: "listen address in use", args: []string{"-origin", "http://127.0.0.1:1", "-listen", busy.Addr().String(), "-admin-listen", "127.0.0.1:0"},
			wantCode: 1, wantStderr: []string{"proxy listener"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := command(t, tt.args, tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if _, ok := err.(*exec.ExitError); err != nil && !ok {
				t.Fatal(err)
			}
			if got := cmd.ProcessState.ExitCode(); got != tt.wantCode {
				t.Errorf("exit status %d, want %d\nstderr: %s", got, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout does not contain %q:\n%s", tt.wantStdout, stdout.String())
			}
		})
	}
}

// server is a cacheproxy process started by startServer.
type server struct {
	cmd        *exec.Cmd
	logs       *logLines
	proxyURL   string
	adminURL   string
	exited     chan struct{} // closed when the process has exited
	exitStatus int
}

// logLines collects the process's stderr line by line and reports the
// addresses of the "listening" log lines.
type logLines struct {
	mu        sync.Mutex
	partial   []byte
	lines     []string
	listening chan [2]string // server, addr
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := l.partial[:i]
		l.lines = append(l.lines, string(line))
		var rec struct{ Msg, Server, Addr string }
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
			l.listening <- [2]string{rec.Server, rec.Addr}
		}
		l.partial = l.partial[i+1:]
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// startServer runs cacheproxy with args on ports picked by the kernel on
// 127.0.0.1 and waits until both listeners are up. The process is killed
// at the end of the test if it is still running.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	base := []string{"-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug", "-drain", "0"}
	s := &server{
		cmd:    command(t, append(base, args...), env...),
		logs:   &logLines{listening: make(chan [2]string, 2)},
		exited: make(chan struct{}),
	}
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		s.exitStatus = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("cacheproxy logs:\n%s", s.logs)
		}
	})
	timeout := time.After(20 * time.Second)
	for s.proxyURL == "" || s.adminURL == "" {
		select {
		case l := <-s.logs.listening:
			switch l[0] {
			case "proxy":
				s.proxyURL = "http://" + l[1]
			case "admin":
				s.adminURL = "http://" + l[1]
			}
		case <-s.exited:
			t.Fatalf("cacheproxy exited with status %d before listening:\n%s", s.exitStatus, s.logs)
		case <-timeout:
			t.Fatalf("cacheproxy not listening after 20s:\n%s", s.logs)
		}
	}
	return s
}

// stop sends SIGTERM to the process and returns its exit status.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return s.wait(t)
}

func (s *server) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.exitStatus
	case <-time.After(30 * time.Second):
		t.Fatalf("cacheproxy did not exit within 30s")
		return -1
	}
}

// fetch does one request with a client of its own and returns the status,
// headers and body.
func fetch(t *testing.T, method, url, token string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// TestGracefulShutdown sends SIGTERM while a request waits on a slow
// origin: the listener closes at once, the request still gets its full
// answer, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseFn := func() { releaseOnce.Do(func() { close(release) }) }
	body := strings.Repeat("slow response body. ", 4096)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select { // the origin is slow until the test has seen the listener close
		case <-release:
		case <-time.After(10 * time.Second):
		}
		time.Sleep(100 * time.Millisecond)
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, body)
	}))
	defer origin.Close()
	defer releaseFn()

	s := startServer(t, nil, "-origin", origin.URL)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(s.proxyURL + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("request ended before reaching the origin: %+v", r)
	case <-time.After(20 * time.Second):
		t.Fatal("request did not reach the origin")
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused while the request is still in flight.
	addr := strings.TrimPrefix(s.proxyURL, "http://")
	await.Until(t, 10*time.Second, "the proxy listener to refuse connections after SIGTERM", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case r := <-done:
		t.Fatalf("request ended before the origin answered: %+v", r)
	default:
	}
	releaseFn()

	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("in-flight request failed: %v", r.err)
		}
		if r.code != http.StatusOK || r.body != body {
			t.Fatalf("in-flight request: status %d, %d bytes; want 200 and %d bytes", r.code, len(r.body), len(body))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight request did not finish")
	}
	if code := s.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	logs := s.logs.String()
	for _, want := range []string{"no -redis: running with L1 only", "shutting down", `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs do not contain %q", want)
		}
	}
}

// TestServe checks the wiring of a running server: the proxy in front of
// the origin with L1, extension methods passed through, and the admin API
// behind its token.
func TestServe(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case "GET", "HEAD":
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprintf(w, "hello %s", r.URL.Path)
		default:
			w.Header().Set("X-Origin-Method", r.Method)
			w.WriteHeader(207)
			fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
		}
	}))
	defer origin.Close()
	const token = "t0ken"
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + token}, "-origin", origin.URL)

	code, hdr, body := fetch(t, "GET", s.proxyURL+"/hello", "")
	if code != 200 || body != "hello /hello" {
		t.Fatalf("GET /hello = %d %q", code, body)
	}
	if x := hdr.Get("X-Cache"); x != "MISS" {
		t.Errorf("first GET: X-Cache = %q, want MISS", x)
	}
	// L1 applies its sets asynchronously: poll for the hit.
	for i := 0; ; i++ {
		code, hdr, body = fetch(t, "GET", s.proxyURL+"/hello", "")
		if code != 200 || body != "hello /hello" {
			t.Fatalf("GET /hello = %d %q", code, body)
		}
		if hdr.Get("X-Cache") == "HIT-L1" {
			break
		}
		if i == 50 {
			t.Fatalf("no L1 hit after %d requests: X-Cache = %q", i, hdr.Get("X-Cache"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, method := range []string{"PROPFIND", "M-SEARCH", "PURGE"} {
		code, hdr, body := fetch(t, method, s.proxyURL+"/dav/x", "")
		if code != 207 || hdr.Get("X-Origin-Method") != method || body != method+" /dav/x" {
			t.Errorf("%s: %d %q %q; want the origin's 207", method, code, hdr.Get("X-Origin-Method"), body)
		}
	}

	if code, _, _ := fetch(t, "GET", s.adminURL+"/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	for _, p := range []string{"/readyz", "/stats", "/metrics"} {
		if code, hdr, _ := fetch(t, "GET", s.adminURL+p, ""); code != 401 || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without token = %d, want 401 with WWW-Authenticate", p, code)
		}
	}
	code, _, body = fetch(t, "GET", s.adminURL+"/readyz", token)
	var ready readiness
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 200 {
		t.Fatalf("/readyz = %d %q (%v)", code, body, err)
	}
	if ready.Status != "ok" || !ready.Origin.Up || ready.Redis != "disabled" || ready.L1 != "enabled" {
		t.Errorf("/readyz = %+v", ready)
	}
	code, _, body = fetch(t, "GET", s.adminURL+"/stats", token)
	var st stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("/stats = %d %q (%v)", code, body, err)
	}
	if st.Proxy.Requests["HIT-L1"] == 0 || st.Proxy.Requests["MISS"] == 0 || st.L1 == nil || st.L1.Entries == 0 || st.Redis != nil {
		t.Errorf("/stats = %s", body)
	}
	code, _, body = fetch(t, "GET", s.adminURL+"/metrics", token)
	for _, want := range []string{"cacheproxy_l1_entries", "cacheproxy_l1_bytes", "cacheproxy_requests_total", "go_goroutines", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) does not contain %s", code, want)
		}
	}

	if code := s.stop(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestServeRedis runs the server against a real redis-server: ready with
// Redis up, still ready ("degraded") once it is gone.
func TestServeRedis(t *testing.T) {
	redis := redistest.Start(t)

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()
	s := startServer(t, []string{"CACHEPROXY_REDIS=" + redis.URL()}, "-origin", origin.URL, "-key-prefix", "test")

	readyz := func() (int, readiness) {
		code, _, body := fetch(t, "GET", s.adminURL+"/readyz", "")
		var r readiness
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("/readyz = %d %q: %v", code, body, err)
		}
		return code, r
	}
	if code, _, body := fetch(t, "GET", s.proxyURL+"/a", ""); code != 200 || body != "hello" {
		t.Fatalf("GET /a = %d %q", code, body)
	}
	// Ready once subscribed with the purges loaded (not at once: see
	// TestReadyOnlyOncePurgesAreLoaded).
	await.Until(t, 15*time.Second, "ready", func() bool { code, _ := readyz(); return code == 200 })
	if code, r := readyz(); code != 200 || r.Status != "ok" || r.Redis != "up" {
		t.Errorf("/readyz with Redis up = %d %+v", code, r)
	}
	code, _, body := fetch(t, "GET", s.adminURL+"/metrics", "")
	if code != 200 || !strings.Contains(body, "cacheproxy_redis_up 1") {
		t.Errorf("/metrics (%d) does not report cacheproxy_redis_up 1", code)
	}

	redis.Kill()
	for i := 0; ; i++ {
		// Requests make the shared tier notice that Redis is gone.
		if code, _, body := fetch(t, "GET", s.proxyURL+fmt.Sprintf("/down/%d", i), ""); code != 200 || body != "hello" {
			t.Fatalf("GET with Redis down = %d %q, want the origin's answer", code, body)
		}
		code, r := readyz()
		if r.Redis == "down" {
			if code != 200 || r.Status != "degraded" {
				t.Errorf("/readyz with Redis down = %d %+v, want 200 degraded", code, r)
			}
			break
		}
		if i == 100 {
			t.Fatalf("/readyz still reports Redis %q 10s after it stopped", r.Redis)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestEngine checks that the Gin engine hands every method, extension
// methods included, to the handler and sends its status untouched.
func TestEngine(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch r.URL.Path {
		case "/implicit": // no WriteHeader: net/http sends 200
			io.WriteString(w, "implicit")
		case "/empty404":
			w.WriteHeader(http.StatusNotFound)
		case "/nothing":
		default:
			w.WriteHeader(207)
			io.WriteString(w, r.Method)
		}
	})
	srv := httptest.NewServer(newEngine(h))
	defer srv.Close()

	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{"GET", "/implicit", 200, "implicit"},
		{"GET", "/empty404", 404, ""},
		{"HEAD", "/empty404", 404, ""},
		{"GET", "/nothing", 200, ""},
		{"GET", "/x", 207, "GET"},
		{"POST", "/x", 207, "POST"},
		{"DELETE", "/x", 207, "DELETE"},
		{"OPTIONS", "/x", 207, "OPTIONS"},
		{"PROPFIND", "/x", 207, "PROPFIND"},
		{"M-SEARCH", "/x", 207, "M-SEARCH"},
		{"PURGE", "/x/", 207, "PURGE"},
		{"GET", "/x//y/", 207, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, hdr, body := fetch(t, tt.method, srv.URL+tt.path, "")
			if code != tt.wantCode || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", code, body, tt.wantCode, tt.wantBody)
			}
			if ct := hdr.Get("Content-Type"); tt.wantBody == "" && ct != "" {
				t.Errorf("Content-Type %q added to an empty answer", ct)
			}
			mu.Lock()
			last := seen[len(seen)-1]
			mu.Unlock()
			if want := tt.method + " " + tt.path; last != want {
				t.Errorf("handler saw %q, want %q", last, want)
			}
		})
	}
}

func TestRunSubcommands(t *testing.T) {
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"frobnicate", "x"}, env(nil), &stdout, &stderr); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `unknown command "frobnicate"`) || !strings.Contains(stderr.String(), "Usage:") {
		t.Errorf("stderr = %q", stderr.String())
	}
	stdout.Reset()
	if code := run(ctx, []string{"help"}, env(nil), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage:") {
		t.Errorf("help: exit %d, stdout %q", code, stdout.String())
	}
	stderr.Reset()
	if code := run(ctx, []string{"serve", "-default-ttl", "1y", "-origin", "http://o"}, env(nil), &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "invalid -default-ttl (flag)") {
		t.Errorf("serve with a bad flag: exit %d, stderr %q", code, stderr.String())
	}
}

// The proxy listener keeps -header-timeout and -idle-timeout: an idle
// kept-alive connection and one that never finishes its header are
// closed, while a request slower than both timeouts is served whole.
func TestServeConnectionTimeouts(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	s := startServer(t, nil, "-origin", origin.URL, "-header-timeout", "300ms", "-idle-timeout", "300ms")
	addr := strings.TrimPrefix(s.proxyURL, "http://")
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	closedWithin := func(c net.Conn, br *bufio.Reader, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, br)
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}

	c, br := dial()
	for range 2 {
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("a request slower than the timeouts was cut: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("slow request: body %q", b)
		}
	}
	if !closedWithin(c, br, 10*time.Second) {
		t.Error("an idle connection was not closed within 10s of a 300ms idle timeout")
	}

	c, br = dial()
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	if !closedWithin(c, br, 10*time.Second) {
		t.Error("a connection with an unfinished header was not closed within 10s of a 300ms header timeout")
	}
}
