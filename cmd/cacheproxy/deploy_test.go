package main

// Tests of the deployment files in configs/deploy: each is checked against
// the real program (its flags, its config loader, a running instance) and,
// where the tool is installed by .ci/run, by the tool itself (systemd-analyze,
// nginx).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// deployFile returns the path of a file under configs/deploy, from this
// package's directory.
func deployFile(elem ...string) string {
	return filepath.Join(append([]string{"..", "..", "configs", "deploy"}, elem...)...)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// needProgram returns the path of a program the test needs. A missing one
// fails the test, saying how to install it: .ci/run installs every one.
func needProgram(t *testing.T, name, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	t.Fatalf("%s is not installed, and this test needs it: apt-get install %s (bash .ci/run installs it when missing)", name, debianPackage)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// helpFlags returns the flags listed by cacheproxy -help.
func helpFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := command(t, []string{"-help"}).Output()
	if err != nil {
		t.Fatalf("cacheproxy -help: %v", err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+) `).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["config"] || !flags["drain"] || !flags["shutdown-timeout"] {
		t.Fatalf("cacheproxy -help lists no -config, -drain or -shutdown-timeout:\n%s", out)
	}
	return flags
}

// checkFlags fails t for every -flag in args that cacheproxy -help does not
// list.
func checkFlags(t *testing.T, where string, args []string) {
	t.Helper()
	known := helpFlags(t)
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			t.Errorf("%s: flag %s is not a flag of cacheproxy -help", where, a)
		}
	}
}

// replaceArg returns args with the value of flag (as "-flag value")
// replaced, and the value it had.
func replaceArg(t *testing.T, args []string, flag, value string) ([]string, string) {
	t.Helper()
	out := append([]string(nil), args...)
	for i := range out[:len(out)-1] {
		if out[i] == flag {
			old := out[i+1]
			out[i+1] = value
			return out, old
		}
	}
	t.Fatalf("%q has no %s VALUE", args, flag)
	return nil, ""
}

// getenvFrom returns a getenv reading m.
func getenvFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// unitFile is a parsed systemd unit: section, key, then the values in the
// order they appear.
type unitFile map[string]map[string][]string

// parseUnit parses the systemd unit syntax: [Section] lines, Key=Value
// lines, comments starting with # or ;, and lines continued by a
// trailing backslash.
func parseUnit(text string) (unitFile, error) {
	u := unitFile{}
	var section, pending string
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("line %d: %q is neither a section nor Key=Value", n+1, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, nil
}

// one returns the single value of section.key, failing t if there is not
// exactly one.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %d values %q, want one", section, key, len(v), v)
	}
	return v[0]
}

// parseTimespan parses a systemd time span: "40s", "1min 30s", "90"
// (seconds), "500ms".
func parseTimespan(v string) (time.Duration, error) {
	var total time.Duration
	units := strings.NewReplacer("min", "m", "sec", "s", "hr", "h", "us", "µs")
	for _, f := range strings.Fields(v) {
		if _, err := strconv.ParseFloat(f, 64); err == nil {
			f += "s"
		}
		d, err := time.ParseDuration(units.Replace(f))
		if err != nil {
			return 0, fmt.Errorf("time span %q: %w", v, err)
		}
		total += d
	}
	return total, nil
}

// parseEnvFile reads KEY=VALUE lines, skipping blank lines and comments.
func parseEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// TestSystemdUnit checks configs/deploy/cacheproxy.service: its settings,
// that ExecStart's flags are real and, with the EnvironmentFile and the
// config file of configs/deploy, make a configuration the real loader
// accepts, that TimeoutStopSec exceeds -drain + -shutdown-timeout, and
// that systemd-analyze verify finds nothing to say about it.
func TestSystemdUnit(t *testing.T) {
	text := readFile(t, deployFile("cacheproxy.service"))
	u, err := parseUnit(text)
	if err != nil {
		t.Fatalf("cacheproxy.service: %v", err)
	}
	for key, want := range map[string]string{
		"DynamicUser":     "yes",
		"Restart":         "on-failure",
		"KillSignal":      "SIGTERM",
		"EnvironmentFile": "/etc/cacheproxy/cacheproxy.env",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"PrivateTmp":      "yes",
	} {
		if got := u.one(t, "Service", key); got != want {
			t.Errorf("[Service] %s=%s, want %s", key, got, want)
		}
	}
	if got := u.one(t, "Service", "RestartPreventExitStatus"); got != "2" {
		t.Errorf("RestartPreventExitStatus=%s, want 2 (a bad configuration, which a restart cannot fix)", got)
	}

	execStart := strings.Fields(u.one(t, "Service", "ExecStart"))
	if execStart[0] != "/usr/local/bin/cacheproxy" {
		t.Errorf("ExecStart runs %s, want /usr/local/bin/cacheproxy", execStart[0])
	}
	args := execStart[1:]
	checkFlags(t, "ExecStart", args)
	args, configPath := replaceArg(t, args, "-config", deployFile("cacheproxy.yaml"))
	if configPath != "/etc/cacheproxy/cacheproxy.yaml" {
		t.Errorf("ExecStart -config %s, want /etc/cacheproxy/cacheproxy.yaml (where the unit's comments install configs/deploy/cacheproxy.yaml)", configPath)
	}
	env := parseEnvFile(t, deployFile("cacheproxy.env"))
	for _, k := range []string{"CACHEPROXY_ADMIN_TOKEN", "CACHEPROXY_REDIS"} {
		if env[k] == "" {
			t.Errorf("cacheproxy.env does not set %s", k)
		}
	}
	cfg, err := loadConfig(args, getenvFrom(env))
	if err != nil {
		t.Fatalf("ExecStart with cacheproxy.env and cacheproxy.yaml: %v", err)
	}
	stop, err := parseTimespan(u.one(t, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	if stop <= cfg.Drain+cfg.ShutdownTimeout {
		t.Errorf("TimeoutStopSec %v does not exceed -drain %v + -shutdown-timeout %v: systemd would kill the process mid-drain",
			stop, cfg.Drain, cfg.ShutdownTimeout)
	}
	if r := u.one(t, "Service", "ExecReload"); r != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%s, want /bin/kill -HUP $MAINPID (SIGHUP reloads)", r)
	}
	if u.one(t, "Install", "WantedBy") != "multi-user.target" {
		t.Errorf("[Install] WantedBy is not multi-user.target")
	}

	// systemd-analyze verify checks every key and value, and that
	// ExecStart's program exists: point it at this test binary.
	analyze := needProgram(t, "systemd-analyze", "systemd")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "cacheproxy.service")
	if err := os.WriteFile(unit, []byte(strings.Replace(text, "ExecStart=/usr/local/bin/cacheproxy", "ExecStart="+self, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify cacheproxy.service: %v\n%s", err, out)
	}
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// renderNginx returns configs/deploy/nginx-lb.conf with its upstream
// servers replaced by upstreams (keeping the parameters of the first) and
// its listen address by listen.
func renderNginx(t *testing.T, upstreams []string, listen string) string {
	t.Helper()
	text := readFile(t, deployFile("nginx-lb.conf"))
	server := regexp.MustCompile(`(?m)^(\s*)server 192\.0\.2\.\d+:8080( [^;]*)?;\n`)
	m := server.FindStringSubmatch(text)
	if m == nil {
		t.Fatal("nginx-lb.conf: no upstream server line (server 192.0.2.x:8080 ...;)")
	}
	var lines strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&lines, "%sserver %s%s;\n", m[1], u, m[2])
	}
	first := true
	text = server.ReplaceAllStringFunc(text, func(string) string {
		if first {
			first = false
			return lines.String()
		}
		return ""
	})
	listenLine := regexp.MustCompile(`(?m)^(\s*)listen 80;`)
	if !listenLine.MatchString(text) {
		t.Fatal("nginx-lb.conf: no `listen 80;` line")
	}
	text = listenLine.ReplaceAllString(text, "${1}listen "+listen+";")
	if strings.Contains(text, "192.0.2.") {
		t.Fatalf("rendered nginx-lb.conf still names an example address:\n%s", text)
	}
	return text
}

// nginxMain is the main configuration the test wraps around the snippet:
// everything nginx writes stays under its prefix.
const nginxMain = `daemon off;
%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[2]s/cacheproxy.conf;
}
`

// TestNginxLB runs configs/deploy/nginx-lb.conf in a real nginx in front of
// two cacheproxy instances sharing a Redis: nginx -t accepts it, requests
// through nginx are spread over both instances and hit the cache, the
// origin gets the client address nginx saw (not the one the client
// claimed), the Date an instance sends reaches the client unchanged (on a
// miss and on a hit), and when one instance stops the other takes every
// request.
func TestNginxLB(t *testing.T) {
	nginx := needProgram(t, "nginx", "nginx")
	redis := redistest.Start(t)

	var mu sync.Mutex
	var originRequests int
	var forwardedFor []string
	originDate := time.Now().Add(-17 * time.Minute).UTC().Format(http.TimeFormat)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		originRequests++
		forwardedFor = append(forwardedFor, r.Header.Get("X-Forwarded-For"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/lb/dated" {
			// A Date nginx's own clock cannot produce, fresh for an hour.
			w.Header().Set("Date", originDate)
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		fmt.Fprintf(w, "item %s", r.URL.Path)
	}))
	defer origin.Close()

	env := []string{"CACHEPROXY_REDIS=" + redis.URL()}
	s1 := startServer(t, env, "-origin", origin.URL, "-key-prefix", "nginxlb")
	s2 := startServer(t, env, "-origin", origin.URL, "-key-prefix", "nginxlb")
	for _, s := range []*server{s1, s2} {
		await.Until(t, 15*time.Second, "instance ready", func() bool { code, _, _ := fetch(t, "GET", s.adminURL+"/readyz", ""); return code == 200 })
	}

	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	snippet := renderNginx(t, []string{strings.TrimPrefix(s1.proxyURL, "http://"), strings.TrimPrefix(s2.proxyURL, "http://")}, listen)
	user := ""
	if os.Geteuid() == 0 {
		// As root, workers would run as nobody, who cannot enter the
		// test's temporary directory.
		user = "user root;"
	}
	conf := filepath.Join(prefix, "nginx.conf")
	for name, content := range map[string]string{"cacheproxy.conf": snippet, "nginx.conf": fmt.Sprintf(nginxMain, user, prefix)} {
		if err := os.WriteFile(filepath.Join(prefix, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	errorLog := filepath.Join(prefix, "error.log")
	base := []string{"-p", prefix + "/", "-c", conf, "-e", errorLog}
	if out, err := exec.Command(nginx, append(base, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects nginx-lb.conf: %v\n%s\nrendered snippet:\n%s", err, out, snippet)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nginx, base...)
	var nginxOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &nginxOut, &nginxOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stopNginx := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGQUIT) // graceful shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("nginx (pid %d) did not stop within 10s of SIGQUIT", cmd.Process.Pid)
		}
	}
	defer func() {
		stopNginx()
		if t.Failed() {
			t.Logf("nginx output:\n%s\nerror.log:\n%s", nginxOut.String(), readFile(t, errorLog))
		}
	}()
	await.Until(t, 15*time.Second, "nginx listening", func() bool {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if pid := strings.TrimSpace(readFile(t, filepath.Join(prefix, "nginx.pid"))); pid != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("nginx.pid holds %q, want the child's pid %d", pid, cmd.Process.Pid)
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	getHeader := func(path string) (int, string, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+listen+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "api.example.com"
		req.Header.Set("X-Forwarded-For", "203.0.113.9") // what a client may claim
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s through nginx: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Cache"), string(body), resp.Header
	}
	get := func(path string) (int, string, string) {
		t.Helper()
		code, xcache, body, _ := getHeader(path)
		return code, xcache, body
	}

	var results []string
	for range 8 {
		code, xcache, body := get("/lb/item")
		if code != 200 || body != "item /lb/item" {
			t.Fatalf("GET /lb/item through nginx = %d %q", code, body)
		}
		results = append(results, xcache)
	}
	t.Logf("X-Cache of 8 requests through nginx: %q", results)
	if results[0] != "MISS" {
		t.Errorf("first request through nginx: X-Cache %q, want MISS", results[0])
	}
	hits := 0
	for _, r := range results[1:] {
		if strings.HasPrefix(r, "HIT-") {
			hits++
		}
	}
	if hits < len(results)-2 {
		t.Errorf("X-Cache through nginx: %q; want hits after the first request (at most one more miss)", results)
	}
	for i, s := range []*server{s1, s2} {
		_, _, body := fetch(t, "GET", s.adminURL+"/stats", "")
		var st stats
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/stats: %v", err)
		}
		var n int64
		for _, c := range st.Proxy.Requests {
			n += c
		}
		if n == 0 {
			t.Errorf("instance %d served none of the requests: nginx did not balance them", i+1)
		}
	}
	// nginx passes the instances' Date through (proxy_pass_header Date): a
	// cached answer keeps the Date of its origin response.
	for i := range 3 {
		code, xcache, _, h := getHeader("/lb/dated")
		if code != 200 || h.Get("Date") != originDate {
			t.Errorf("GET /lb/dated #%d through nginx: %d X-Cache %s Date %q, want the instance's Date %q", i+1, code, xcache, h.Get("Date"), originDate)
		}
	}

	mu.Lock()
	if originRequests > 4 {
		t.Errorf("the origin got %d requests for two URLs, want 2 (at most one per URL and instance)", originRequests)
	}
	for _, xff := range forwardedFor {
		if xff != "127.0.0.1, 127.0.0.1" {
			t.Errorf("origin got X-Forwarded-For %q, want \"127.0.0.1, 127.0.0.1\" (the client as nginx saw it, then nginx)", xff)
		}
	}
	mu.Unlock()

	// One instance goes away: nginx sends everything to the other, retrying
	// a refused connection there.
	if code := s1.stop(t); code != 0 {
		t.Errorf("instance 1 exited %d after SIGTERM", code)
	}
	for i := range 6 {
		if code, _, body := get(fmt.Sprintf("/lb/after/%d", i%3)); code != 200 || body != fmt.Sprintf("item /lb/after/%d", i%3) {
			t.Errorf("GET through nginx with one instance stopped = %d %q, want 200 from the other", code, body)
		}
	}
	stopNginx()
}
