package main

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// server is a running system under test, or a part of one.
type server struct {
	name string
	url  string // base URL, e.g. http://127.0.0.1:40123
	addr string // host:port of url
	// pids are the processes whose CPU time and memory count as the
	// server's; their descendants count too.
	pids []int

	admin      string // cacheproxy: admin base URL
	varnishDir string // Varnish: its -n directory, for varnishstat
	nginxCache string // nginx cache: the proxy_cache_path directory
	redisAddr  string // Redis: host:port
}

// listen allocates a port and returns its 127.0.0.1 address.
func (h *harness) listen() (string, int, error) {
	p, err := h.ps.port()
	return fmt.Sprintf("127.0.0.1:%d", p), p, err
}

// launch starts argv, records the command for the report and waits for
// each of addrs to accept connections.
func (h *harness) launch(name string, argv []string, addrs ...string) (*proc, error) {
	p, err := h.ps.start(name, argv...)
	if err != nil {
		return nil, err
	}
	h.record(p.argv)
	if len(addrs) > 0 {
		p.addr = addrs[0]
	}
	for _, a := range addrs {
		if err := waitPort(p, a); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// startOrigin starts the fixed-body origin with the given artificial
// latency.
func (h *harness) startOrigin(latency time.Duration) (*server, error) {
	addr, _, err := h.listen()
	if err != nil {
		return nil, err
	}
	p, err := h.launchOrigin(addr, latency)
	if err != nil {
		return nil, err
	}
	return &server{name: "origin alone", url: "http://" + addr, addr: addr, pids: []int{p.Pid()}}, nil
}

// launchOrigin starts the fixed-body origin on addr, with extra flags.
func (h *harness) launchOrigin(addr string, latency time.Duration, extra ...string) (*proc, error) {
	argv := append([]string{filepath.Join(h.bin, "fixedorigin"), "-listen", addr, "-latency", latency.String()}, extra...)
	return h.launch("fixedorigin", argv, addr)
}

// startRedis starts a private Redis that keeps nothing on disk.
func (h *harness) startRedis() (*server, error) {
	addr, port, err := h.listen()
	if err != nil {
		return nil, err
	}
	p, err := h.launchRedis(addr, port)
	if err != nil {
		return nil, err
	}
	return &server{name: "redis", url: fmt.Sprintf("redis://%s/0", addr), addr: addr, redisAddr: addr, pids: []int{p.Pid()}}, nil
}

// launchRedis starts a Redis that keeps nothing on disk on 127.0.0.1:port
// (addr): started again on the same port, it starts empty.
func (h *harness) launchRedis(addr string, port int) (*proc, error) {
	return h.launch("redis", []string{"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", h.tmp}, addr)
}

// Which Redis the shared and stampede scenarios run cacheproxy against
// (-redis): one redis-server, a Cluster of three masters, or both side by
// side.
const (
	redisSingle  = "single"
	redisCluster = "cluster"
	redisBoth    = "both"
)

// clusterNodes is the number of masters of the benchmark's Cluster.
const clusterNodes = 3

// redisKinds returns the kinds of Redis (redisSingle, redisCluster) a run
// with -redis mode uses, in order.
func redisKinds(mode string) []string {
	switch mode {
	case redisCluster:
		return []string{redisCluster}
	case redisBoth:
		return []string{redisSingle, redisCluster}
	}
	return []string{redisSingle}
}

// startRedisKind starts one redis-server (redisSingle) or a Cluster
// (redisCluster).
func (h *harness) startRedisKind(kind string) (*server, error) {
	if kind == redisCluster {
		return h.startRedisCluster()
	}
	return h.startRedis()
}

// startRedisCluster starts a Redis Cluster of clusterNodes masters without
// replicas, keeping nothing on disk but each node's cluster config file
// (in its own directory under the run's temp directory): redis-server
// --cluster-enabled yes on free ports whose cluster bus port (+10000) is
// free too, joined with redis-cli --cluster create, then waited for until
// every node says cluster_state:ok. Its url is go-redis's Cluster form,
// redis://NODE1?addr=NODE2&addr=NODE3, which cacheproxy's -redis-mode
// auto takes for a Cluster; redisAddr is the first node.
func (h *harness) startRedisCluster() (*server, error) {
	s, _, err := h.startCluster(0)
	return s, err
}

// startCluster starts a Cluster of clusterNodes masters, each with
// replicas replicas, as startRedisCluster says; with replicas, a node
// keeps serving its slots while another master is failing
// (cluster-require-full-coverage no). It returns the nodes' processes
// too, in the order of the server's url.
func (h *harness) startCluster(replicas int) (*server, []*proc, error) {
	var addrs []string
	var pids []int
	var nodes []*proc
	for range clusterNodes * (1 + replicas) {
		addr, port, err := h.clusterPort()
		if err != nil {
			return nil, nil, err
		}
		dir, err := os.MkdirTemp(h.tmp, "redis-node-")
		if err != nil {
			return nil, nil, err
		}
		argv := []string{"redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000"}
		if replicas > 0 {
			argv = append(argv, "--cluster-require-full-coverage", "no")
		}
		p, err := h.launch("redis-cluster", argv, addr)
		if err != nil {
			return nil, nil, err
		}
		addrs = append(addrs, addr)
		pids = append(pids, p.Pid())
		nodes = append(nodes, p)
	}
	argv := append(append([]string{"redis-cli", "--cluster", "create"}, addrs...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	p, err := h.ps.start("redis-cli", argv...)
	if err != nil {
		return nil, nil, err
	}
	h.record(p.argv)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		h.ps.stop(p)
		return nil, nil, fmt.Errorf("redis-cli --cluster create did not finish in 30s; log %s:\n%s", p.log, tail(p.log, 15))
	}
	h.ps.stop(p) // gone already: only forgets it
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return nil, nil, fmt.Errorf("redis-cli --cluster create exited %d; log %s:\n%s", code, p.log, tail(p.log, 15))
	}
	if err := awaitClusterOK(addrs, 20*time.Second); err != nil {
		return nil, nil, err
	}
	return &server{name: "redis cluster", url: clusterURL(addrs), addr: addrs[0], redisAddr: addrs[0], pids: pids}, nodes, nil
}

// clusterPort allocates a port for a Cluster node whose cluster bus port
// (port + 10000) is free too, and reserves both.
func (h *harness) clusterPort() (string, int, error) {
	for range 50 {
		addr, port, err := h.listen()
		if err != nil {
			return "", 0, err
		}
		bus := port + 10000
		if bus > 65535 {
			continue
		}
		h.ps.mu.Lock()
		taken := h.ps.ports[bus]
		h.ps.ports[bus] = true
		h.ps.mu.Unlock()
		if taken {
			continue
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", bus)); err == nil {
			l.Close()
			return addr, port, nil
		}
	}
	return "", 0, fmt.Errorf("no free port with a free cluster bus port")
}

// clusterURL is go-redis's Cluster URL of the nodes at addrs.
func clusterURL(addrs []string) string {
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + a
	}
	return u
}

// awaitClusterOK waits until every node at addrs says cluster_state:ok
// and knows all the others.
func awaitClusterOK(addrs []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", len(addrs))) {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return fmt.Errorf("cluster node %s not ok within %v: %q, %v", a, within, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return nil
}

// benchKeyPrefix is the instances' -key-prefix.
const benchKeyPrefix = "bench"

// startCacheproxy starts one cacheproxy instance in front of origin, with
// Redis when redis is not nil, and extra flags.
func (h *harness) startCacheproxy(name string, origin, redis *server, extra ...string) (*server, error) {
	addr, _, err := h.listen()
	if err != nil {
		return nil, err
	}
	adminAddr, _, err := h.listen()
	if err != nil {
		return nil, err
	}
	argv := []string{filepath.Join(h.bin, "cacheproxy"), "-listen", addr, "-origin", origin.url,
		"-admin-listen", adminAddr, "-log-level", "warn", "-key-prefix", benchKeyPrefix}
	if redis != nil {
		argv = append(argv, "-redis", redis.url)
	}
	argv = append(argv, extra...)
	p, err := h.launch(name, argv, addr, adminAddr)
	if err != nil {
		return nil, err
	}
	return &server{name: name, url: "http://" + addr, addr: addr, admin: "http://" + adminAddr, pids: []int{p.Pid()}}, nil
}

// startPlain starts the Go reverse proxy without a cache.
func (h *harness) startPlain(origin *server) (*server, error) {
	addr, _, err := h.listen()
	if err != nil {
		return nil, err
	}
	p, err := h.launch("plainproxy", []string{filepath.Join(h.bin, "plainproxy"), "-listen", addr, "-origin", origin.url}, addr)
	if err != nil {
		return nil, err
	}
	return &server{name: "plainproxy", url: "http://" + addr, addr: addr, pids: []int{p.Pid()}}, nil
}

// nginxConf is the skeleton of every nginx we run: our own prefix, pid
// file and temp paths, in the foreground, with as many workers as the
// server CPUs. keepalive_requests is raised because its default (1,000)
// would make nginx, alone of all the systems, close client connections
// during a run.
const nginxConf = `user root;
worker_processes %d;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path %[2]s/client_body;
  proxy_temp_path %[2]s/proxy_temp;
  fastcgi_temp_path %[2]s/fastcgi_temp;
  uwsgi_temp_path %[2]s/uwsgi_temp;
  scgi_temp_path %[2]s/scgi_temp;
%[3]s
  server {
    listen %[4]s backlog=4096;
    location / {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
%[5]s
    }
  }
}
`

// startNginx writes a config from nginxConf with the given http-level and
// location-level directives and starts nginx on it.
func (h *harness) startNginx(name, httpBlock, location string) (*server, string, error) {
	addr, _, err := h.listen()
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp(h.tmp, "nginx-")
	if err != nil {
		return nil, "", err
	}
	conf := filepath.Join(dir, "nginx.conf")
	text := fmt.Sprintf(nginxConf, h.serverCPUCount(), dir, httpBlock, addr, location)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, "", err
	}
	p, err := h.launch(name, []string{"nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")}, addr)
	if err != nil {
		return nil, "", err
	}
	return &server{name: name, url: "http://" + addr, addr: addr, pids: []int{p.Pid()}}, dir, nil
}

// startNginxCache starts nginx as a cache of origin holding at most budget
// bytes on tmpfs. proxy_cache_lock is nginx's collapsing of concurrent
// misses.
func (h *harness) startNginxCache(origin *server, budget int64) (*server, error) {
	cacheDir, err := os.MkdirTemp(h.shm, "nginx-cache-")
	if err != nil {
		return nil, err
	}
	httpBlock, location := nginxCacheBlocks(cacheDir, budget, origin.addr)
	s, _, err := h.startNginx("nginx", httpBlock, location)
	if err != nil {
		return nil, err
	}
	s.nginxCache = cacheDir
	return s, nil
}

// nginxCacheBlocks returns the http-level and location-level directives
// of nginx as a cache of budget bytes.
//
// max_size alone does not hold nginx to the budget: its cache manager
// enforces it lazily, in batches, and under an insert-heavy load the cache
// grows to several times the size (319 MiB for 64m in the zipf run). The
// keys zone is enforced at once, evicting the least recently used key
// when full, so it is sized to the objects the budget holds on tmpfs, one
// 4 KiB page each (as max_size counts them), at about 8,000 keys a
// megabyte (nginx's documentation).
func nginxCacheBlocks(cacheDir string, budget int64, originAddr string) (httpBlock, location string) {
	zoneMB := max(1, (budget/4096+7999)/8000)
	httpBlock = fmt.Sprintf(`  proxy_cache_path %s levels=1:2 keys_zone=bench:%dm max_size=%dm inactive=1h use_temp_path=off;
  upstream origin { server %s; keepalive 512; }`, cacheDir, zoneMB, budget>>20, originAddr)
	location = `      proxy_pass http://origin;
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 30s;
      proxy_cache_lock_age 30s;
      add_header X-Cache $upstream_cache_status;`
	return httpBlock, location
}

// startNginxLB starts nginx as a round-robin load balancer over backends.
func (h *harness) startNginxLB(backends []*server) (*server, error) {
	var ups strings.Builder
	ups.WriteString("  upstream backends {\n")
	for _, b := range backends {
		fmt.Fprintf(&ups, "    server %s;\n", b.addr)
	}
	ups.WriteString("    keepalive 512;\n  }")
	s, _, err := h.startNginx("nginx-lb", ups.String(), "      proxy_pass http://backends;")
	return s, err
}

// varnishVCL is Varnish's builtin behaviour plus an X-Cache header.
const varnishVCL = `vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "%s"; }
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`

// startVarnish starts varnishd in the foreground as a cache of origin with
// mem of malloc storage (varnishd syntax: 64M). -j none keeps it from
// switching users, so that it can use our temp directory.
func (h *harness) startVarnish(origin *server, mem string) (*server, error) {
	return h.startVarnishVCL(origin, mem, varnishVCL)
}

// startVarnishVCL is startVarnish with its own VCL, a format taking the
// origin's port.
func (h *harness) startVarnishVCL(origin *server, mem, vclFormat string) (*server, error) {
	addr, _, err := h.listen()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(h.tmp, "varnish-")
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(origin.addr)
	vcl := filepath.Join(dir, "bench.vcl")
	if err := os.WriteFile(vcl, fmt.Appendf(nil, vclFormat, port), 0o644); err != nil {
		return nil, err
	}
	p, err := h.launch("varnish", []string{"varnishd", "-F", "-j", "none", "-n", filepath.Join(dir, "n"),
		"-a", addr, "-f", vcl, "-s", "malloc," + mem}, addr)
	if err != nil {
		return nil, err
	}
	return &server{name: "varnish", url: "http://" + addr, addr: addr, pids: []int{p.Pid()}, varnishDir: filepath.Join(dir, "n")}, nil
}

// redisStat returns the number of keys of the Redis at addr and one field
// of its INFO ("" if it cannot be read).
func redisStat(addr, infoField string) (keys int64, value string) {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, _ = c.DBSize(ctx).Result()
	info, err := c.Info(ctx).Result()
	if err != nil {
		return keys, ""
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), infoField+":"); ok {
			return keys, v
		}
	}
	return keys, ""
}

// dirUsage counts the files under dir and the space they take (in whole
// blocks, which is what nginx's max_size counts).
func dirUsage(dir string) (files, bytes int64) {
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			files++
			bytes += (info.Size() + 4095) / 4096 * 4096
		}
		return nil
	})
	return files, bytes
}
