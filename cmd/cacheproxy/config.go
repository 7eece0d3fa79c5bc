package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers/shared"
)

// envPrefix starts the name of every environment variable the server reads.
const envPrefix = "CACHEPROXY_"

// config is the validated configuration of the serve command. It is built
// only by loadConfig, from flags, environment, the YAML file and defaults,
// and then mapped into each package's Options by serve.
type config struct {
	ConfigFile      string
	Listen          string
	Origin          *url.URL
	Redis           string // empty: L1 only
	RedisMode       shared.Mode
	RedisCA         string // PEM file of the CAs to trust; empty: the system's
	RedisCert       string // PEM file of the client certificate, with RedisKey
	RedisKey        string
	RedisTLS        *tls.Config // built from the three above; nil: the URL's own
	RedisTimeout    time.Duration
	KeyPrefix       string
	DefaultTTL      time.Duration
	L1MaxBytes      int64 // 0: no L1
	L1TTL           time.Duration
	MaxObjectBytes  int64
	AdminListen     string
	AdminToken      string
	LogLevel        slog.Level
	LogFormat       string // "json" or "text"
	ShutdownTimeout time.Duration
	Drain           time.Duration
	LockTimeout     time.Duration
	ClientNoCache   proxy.ClientNoCachePolicy
	// StaleIfError, StaleWhileRevalidate, StatusTTL,
	// OriginBackoff, OriginBackoffMax: proxy.Options'.
	StaleIfError         time.Duration
	StaleWhileRevalidate time.Duration
	StatusTTL            map[int]time.Duration
	OriginBackoff        time.Duration
	OriginBackoffMax     time.Duration
	AccessLog            string // "": none
	AccessLogFormat      string // "json" or "combined"
	TagHeaders           []string
	HeaderTimeout        time.Duration
	IdleTimeout          time.Duration
	PurgeWait            time.Duration
	PublicHost           string
	Hosts                []string
	StripHeaders         []string // nil: proxy.DefaultStripHeaders
	Routes               []proxy.Route

	MaxBans          int // bans held, here and in Redis (tiers.Bans.MaxBans); 0: tiers.DefaultMaxBans
	MaxInflightBytes int64
	WriteTimeout     time.Duration
	BodyTimeout      time.Duration

	MaxConns           int // client connections; autoLimit: from the file limit (limits.go); 0: none
	MaxOriginConns     int // origin requests in flight; autoLimit, or 0: none
	OriginQueueTimeout time.Duration
	RequestBuffering   int64 // 0: off

	// values and sources are each setting's value as given (flag syntax)
	// and where it came from, by name: what cacheproxy check prints and a
	// reload compares.
	values  map[string]string
	sources map[string]source
}

// setting is one configuration key. The same name is the flag (-name), the
// YAML key (name) and, upper-cased with '-' turned into '_' and prefixed
// with CACHEPROXY_, the environment variable.
type setting struct {
	name  string
	def   string // the default, in flag syntax
	usage string
	// redact, if set, returns the value as it may be shown in an error:
	// secrets are never echoed.
	redact func(string) string
	// parse validates v and stores it in c.
	parse func(c *config, v string) error
	// live says a reload (SIGHUP, cacheproxy reload) applies a change of
	// it to the running process; a change of any other needs a restart.
	live bool
}

// settings lists every key but -config and routes, in usage order.
var settings = []setting{
	{name: "listen", def: ":8080", usage: "proxy listen address",
		parse: func(c *config, v string) (err error) { c.Listen, err = parseListen(v); return err }},
	{name: "origin", usage: "origin base URL, e.g. http://127.0.0.1:9000 (required)",
		parse: func(c *config, v string) (err error) { c.Origin, err = parseOrigin(v); return err }},
	{name: "redis", usage: "Redis URL in go-redis's forms: redis://[user:password@]host:port/db (rediss:// for TLS) for one server; ...?master_name=NAME&addr=host:port for Sentinel (the addresses are sentinels); redis://host:port?addr=host:port&addr=... for a Cluster; empty runs with L1 only", redact: redactURL,
		parse: func(c *config, v string) error { c.Redis = v; return checkRedisURL(v) }},
	{name: "redis-mode", def: "auto", usage: "how -redis is deployed: auto (from the URL: master_name= is Sentinel, addr= without it a Cluster, else one server), standalone, sentinel or cluster (needed for a Cluster named by one seed node)",
		parse: func(c *config, v string) (err error) { c.RedisMode, err = shared.ParseMode(v); return err }},
	{name: "redis-ca", usage: "PEM file of the certificate authorities trusted for Redis's TLS certificates (needs a rediss:// -redis); empty: the system's",
		parse: func(c *config, v string) error { c.RedisCA = v; return nil }},
	{name: "redis-cert", usage: "PEM file of the client certificate presented to Redis (with -redis-key; needs a rediss:// -redis)",
		parse: func(c *config, v string) error { c.RedisCert = v; return nil }},
	{name: "redis-key", usage: "PEM file of the private key of -redis-cert",
		parse: func(c *config, v string) error { c.RedisKey = v; return nil }},
	{name: "redis-timeout", def: "100ms", usage: "bound of each Redis call on a request's path (dialling and TLS included): past it the call counts as a miss and the request goes on without Redis",
		parse: func(c *config, v string) (err error) { c.RedisTimeout, err = parseDuration(v, true); return err }},
	{name: "key-prefix", def: "cacheproxy", usage: "namespace of every Redis key and channel",
		parse: func(c *config, v string) error {
			if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t\r\n") {
				return errors.New("must be non-empty and contain no spaces")
			}
			if strings.ContainsAny(v, "{}") {
				return errors.New("must not contain '{' or '}' (Redis Cluster hash tags)")
			}
			c.KeyPrefix = v
			return nil
		}},
	{name: "public-host", usage: "host name clients reach the proxy by (api.example.com), sent to the origin as X-Forwarded-Host; empty sends none. The client's Host never reaches the origin",
		parse: func(c *config, v string) (err error) { c.PublicHost, err = parseHostName(v); return err }},
	{name: "hosts", usage: "comma-separated host names this proxy serves (a.example,b.example): the Host is then part of the cache key and sent to the origin, and any other Host gets 421; empty serves every Host alike",
		parse: func(c *config, v string) error {
			c.Hosts = nil
			for _, hn := range strings.Split(v, ",") {
				if hn = strings.TrimSpace(hn); hn == "" {
					continue
				}
				hn, err := parseHostName(hn)
				if err != nil {
					return err
				}
				c.Hosts = append(c.Hosts, hn)
			}
			return nil
		}},
	{name: "strip-headers", live: true, def: strings.Join(proxy.DefaultStripHeaders, ","), usage: "comma-separated request headers removed before a cacheable request reaches the origin (forwarding and override headers that are not part of the cache key); \"none\" keeps them all",
		parse: func(c *config, v string) error {
			c.StripHeaders = []string{}
			if strings.TrimSpace(v) == "none" {
				return nil
			}
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n == "" {
					continue
				}
				if strings.IndexFunc(n, func(r rune) bool {
					return !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
				}) >= 0 {
					return fmt.Errorf("%q is not a header name", n)
				}
				c.StripHeaders = append(c.StripHeaders, n)
			}
			return nil
		}},
	{name: "default-ttl", live: true, def: "5m", usage: "most heuristic freshness for responses without explicit freshness: 10% of the time since Last-Modified, or this with only an ETag; 0 stores only explicit freshness",
		parse: func(c *config, v string) (err error) { c.DefaultTTL, err = parseDuration(v, false); return err }},
	{name: "l1-max-bytes", def: "256MiB", usage: "L1 (in-process) memory bound: 256MiB, 1GB, 1048576; 0 turns L1 off",
		parse: func(c *config, v string) (err error) { c.L1MaxBytes, err = parseSize(v, false); return err }},
	{name: "l1-ttl", def: "30s", usage: "longest an entry stays in L1",
		parse: func(c *config, v string) (err error) { c.L1TTL, err = parseDuration(v, true); return err }},
	{name: "max-object-bytes", live: true, def: "8MiB", usage: "larger responses are streamed, never stored",
		parse: func(c *config, v string) (err error) { c.MaxObjectBytes, err = parseSize(v, true); return err }},
	{name: "admin-listen", def: "127.0.0.1:9090", usage: "admin listen address (/healthz, /readyz, /stats, /metrics)",
		parse: func(c *config, v string) (err error) { c.AdminListen, err = parseListen(v); return err }},
	{name: "admin-token", usage: "bearer token for the admin API; required, of at least 16 bytes, when -admin-listen is not a loopback address; without one, only requests for a loopback Host are answered", redact: func(string) string { return "(value not shown)" },
		parse: func(c *config, v string) error {
			if err := admin.CheckToken(v); err != nil {
				return err
			}
			c.AdminToken = v
			return nil
		}},
	{name: "log-level", live: true, def: "info", usage: "debug, info, warn or error",
		parse: func(c *config, v string) error {
			switch strings.ToLower(v) {
			case "debug":
				c.LogLevel = slog.LevelDebug
			case "info":
				c.LogLevel = slog.LevelInfo
			case "warn":
				c.LogLevel = slog.LevelWarn
			case "error":
				c.LogLevel = slog.LevelError
			default:
				return errors.New("want debug, info, warn or error")
			}
			return nil
		}},
	{name: "access-log", live: true, usage: "one line per proxied request (see -access-log-format): \"stderr\" or a file to append to; empty logs none",
		parse: func(c *config, v string) error {
			if strings.ContainsAny(v, "\x00\n") {
				return errors.New("want stderr or a file name")
			}
			c.AccessLog = v
			return nil
		}},
	{name: "access-log-format", def: "json", usage: "format of -access-log: json (one object per request: time, id, remote, host, method, path, status, x_cache, reason, tier, bytes, duration_ms, origin_ms, user_agent, referer) or combined (the Apache/nginx combined format, for log tools that read it)",
		parse: func(c *config, v string) error {
			switch v {
			case "json", "combined":
				c.AccessLogFormat = v
				return nil
			}
			return errors.New("want json or combined")
		}},
	{name: "log-format", def: "json", usage: "log format: json or text",
		parse: func(c *config, v string) error {
			switch v {
			case "json", "text":
				c.LogFormat = v
				return nil
			}
			return errors.New("want json or text")
		}},
	{name: "header-timeout", def: "10s", usage: "how long a client may take to send a request's header, from its first byte (slow clients are disconnected)",
		parse: func(c *config, v string) (err error) { c.HeaderTimeout, err = parseDuration(v, true); return err }},
	{name: "idle-timeout", def: "2m", usage: "how long a kept-alive client connection may wait for its next request",
		parse: func(c *config, v string) (err error) { c.IdleTimeout, err = parseDuration(v, true); return err }},
	{name: "purge-wait", def: "2s", usage: "how long a purge waits for every live instance to confirm before answering 202",
		parse: func(c *config, v string) (err error) { c.PurgeWait, err = parseDuration(v, true); return err }},
	{name: "client-no-cache", live: true, def: "honour", usage: "how a client's no-cache (a browser reload: Cache-Control no-cache or max-age=0, Pragma no-cache) is treated: honour (RFC 9111: revalidate with the origin, or fetch again without a validator), revalidate (only revalidate: an entry without a validator is served from the cache), ignore (request cache directives are ignored); routes may set their own",
		parse: func(c *config, v string) (err error) { c.ClientNoCache, err = proxy.ParseClientNoCache(v); return err }},
	{name: "tag-headers", live: true, def: strings.Join(proxy.DefaultTagHeaders, ","), usage: "comma-separated response headers naming an entry's tags for purges by tag; removed before responses reach clients",
		parse: func(c *config, v string) error {
			c.TagHeaders = []string{}
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n != "" {
					c.TagHeaders = append(c.TagHeaders, n)
				}
			}
			return nil
		}},
	{name: "lock-timeout", def: "5s", usage: "how long a request waits for another's fill of the same key (here or on another instance) before serving its stale copy where allowed or fetching on its own; a fill older than this is not joined",
		parse: func(c *config, v string) (err error) { c.LockTimeout, err = parseDuration(v, true); return err }},
	{name: "stale-if-error", def: "0s", usage: "how long past its freshness a stored response that states no stale-if-error of its own may be served when the origin fails (RFC 5861); routes may set their own; 0: none",
		parse: func(c *config, v string) (err error) { c.StaleIfError, err = parseDuration(v, false); return err }},
	{name: "stale-while-revalidate", def: "0s", usage: "how long past its freshness a stored response that states no stale-while-revalidate of its own may be served while it is revalidated in the background (RFC 5861); routes may set their own; 0: none",
		parse: func(c *config, v string) (err error) {
			c.StaleWhileRevalidate, err = parseDuration(v, false)
			return err
		}},
	{name: "status-ttl", usage: "freshness per status for responses without explicit freshness (negative caching, as nginx's proxy_cache_valid), e.g. 404=10s,410=1m; statuses 200-499 but 206 and 304; never stores what is private, no-store, sets a cookie or may not be shared; routes may set their own; empty: none",
		parse: func(c *config, v string) (err error) { c.StatusTTL, err = parseStatusTTL(v); return err }},
	{name: "origin-backoff", def: "1s", usage: "after a key's origin fetch failed (error, refused connection, 5xx), how long requests with a stale copy they may serve on error get it without asking the origin (fleet-wide: one fetch per key per interval); doubles with each failure in a row up to -origin-backoff-max, ends with a fetch that succeeds",
		parse: func(c *config, v string) (err error) { c.OriginBackoff, err = parseDuration(v, true); return err }},
	{name: "origin-backoff-max", def: "30s", usage: "the longest -origin-backoff interval",
		parse: func(c *config, v string) (err error) { c.OriginBackoffMax, err = parseDuration(v, true); return err }},
	{name: "drain", def: "5s", usage: "on SIGTERM/SIGINT, how long /readyz answers 503 while the proxy keeps serving, so a load balancer stops sending traffic before the listener closes; 0 closes it at once",
		parse: func(c *config, v string) (err error) { c.Drain, err = parseDuration(v, false); return err }},
	{name: "shutdown-timeout", def: "25s", usage: "on SIGTERM/SIGINT, how long in-flight requests may take to finish",
		parse: func(c *config, v string) (err error) { c.ShutdownTimeout, err = parseDuration(v, true); return err }},

	// The ban table's bound (see tiers.Bans).
	// The default is empty, for tiers.DefaultMaxBans.
	{name: "max-bans", usage: "most purges remembered, in each instance and in Redis (default 100000); past it the oldest collapse into a purge of everything older (costs hit ratio, never serves a purged entry)",
		parse: func(c *config, v string) (err error) {
			if v == "" {
				return nil
			}
			if c.MaxBans, err = strconv.Atoi(v); err == nil && c.MaxBans <= 0 {
				err = errors.New("must be a positive number of bans")
			}
			return err
		}},
	{name: "max-inflight-bytes", def: "256MiB", usage: "most bytes of response bodies that fills hold in memory at once while reading them to store them; a storable response that does not fit is streamed to its one client and not stored (responses that may not be stored are always streamed)",
		parse: func(c *config, v string) (err error) { c.MaxInflightBytes, err = parseSize(v, true); return err }},
	{name: "write-timeout", def: "60s", usage: "how long a response may wait for a client that reads none of it; the connection is then reset and its buffers freed (a slow but steady reader is not cut)",
		parse: func(c *config, v string) (err error) { c.WriteTimeout, err = parseDuration(v, true); return err }},
	{name: "body-timeout", live: true, def: "60s", usage: "how long a client may go without sending any of a request body being forwarded; it then gets 408 and the origin request is aborted",
		parse: func(c *config, v string) (err error) { c.BodyTimeout, err = parseDuration(v, true); return err }},

	// Connection limits (docs/limits.md). An empty -max-conns or
	// -max-origin-conns is derived from the open-file limit.
	{name: "max-conns", usage: "most client connections open at once; past it a new connection is answered 503 and closed at once (those open keep working); 0: no limit; default: half the open-file limit less a reserve (logged at start)",
		parse: func(c *config, v string) (err error) { c.MaxConns, err = parseLimit(v); return err }},
	{name: "max-origin-conns", usage: "most origin requests in flight at once, fills and pass-through alike; past it a request waits -origin-queue-timeout, then gets 503 with Retry-After; 0: no limit; default: as -max-conns",
		parse: func(c *config, v string) (err error) { c.MaxOriginConns, err = parseLimit(v); return err }},
	{name: "origin-queue-timeout", def: "5s", usage: "how long a request waits for an origin request slot under -max-origin-conns before its 503",
		parse: func(c *config, v string) (err error) { c.OriginQueueTimeout, err = parseDuration(v, true); return err }},
	{name: "request-buffering", def: "64KiB", usage: "request bodies up to this size are read whole before the origin is asked, so that a client sending one slowly holds no origin connection; longer ones stream as they arrive; 0 streams every body",
		parse: func(c *config, v string) (err error) { c.RequestBuffering, err = parseSize(v, false); return err }},
}

// parseLimit parses a connection limit: empty for the default derived
// from the open-file limit (autoLimit), 0 for none, or a positive count.
func parseLimit(v string) (int, error) {
	if v = strings.TrimSpace(v); v == "" {
		return autoLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("want 0 (no limit) or a positive number of connections")
	}
	return n, nil
}

// envName returns the environment variable that sets the named key.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// source says where a value came from, for error messages.
type source string

func fromFlag() source                        { return "flag" }
func fromEnv(name string) source              { return source("env " + envName(name)) }
func fromFile(file string, line int) source   { return source(fmt.Sprintf("file %s:%d", file, line)) }
func fromDefault() source                     { return "default" }
func (s source) String() string               { return string(s) }
func (s source) describe(field string) string { return fmt.Sprintf("%s (%s)", field, s) }

// fileValue is one scalar read from the YAML file.
type fileValue struct {
	value string
	line  int
}

// loadConfig builds the serve configuration from args (without the program
// name), the environment as seen through getenv and the YAML file named by
// -config or CACHEPROXY_CONFIG. For every key a flag wins over the
// environment, which wins over the file, which wins over the default. An
// environment variable set to the empty string counts as unset.
//
// Every error names the field and where its value came from. It returns
// flag.ErrHelp when args ask for help.
func loadConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("cacheproxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is printed by the caller
	configFlag := fs.String("config", "", "")
	flagVals := make(map[string]*string, len(settings))
	for _, s := range settings {
		flagVals[s.name] = fs.String(s.name, s.def, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w (see cacheproxy -help)", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see cacheproxy -help)", fs.Arg(0))
	}
	setByFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setByFlag[f.Name] = true })

	c.ConfigFile = *configFlag
	if !setByFlag["config"] {
		c.ConfigFile = getenv(envName("config"))
	}
	var file map[string]fileValue
	if c.ConfigFile != "" {
		var err error
		if file, c.Routes, err = readConfigFile(c.ConfigFile); err != nil {
			return c, err
		}
	}

	sources := make(map[string]source, len(settings)+1)
	c.values, c.sources = make(map[string]string, len(settings)), sources
	if c.Routes != nil {
		sources["routes"] = source("file " + c.ConfigFile)
	}
	for _, s := range settings {
		v, src := s.def, fromDefault()
		if setByFlag[s.name] {
			v, src = *flagVals[s.name], fromFlag()
		} else if e := getenv(envName(s.name)); e != "" {
			v, src = e, fromEnv(s.name)
		} else if fv, ok := file[s.name]; ok {
			v, src = fv.value, fromFile(c.ConfigFile, fv.line)
		}
		sources[s.name], c.values[s.name] = src, v
		if s.name == "origin" && v == "" {
			return c, fmt.Errorf("missing -origin: set the flag, env %s or key origin in the -config file", envName("origin"))
		}
		if err := s.parse(&c, v); err != nil {
			shown := strconv.Quote(v)
			if s.redact != nil {
				shown = s.redact(v)
			}
			return c, fmt.Errorf("invalid %s: %s: %w", src.describe("-"+s.name), shown, err)
		}
	}

	// Checks across fields.
	if c.AdminToken == "" && !isLoopback(c.AdminListen) {
		return c, fmt.Errorf("-admin-token is required when -admin-listen %q (%s) is not a loopback address; set it with env %s",
			c.AdminListen, sources["admin-listen"], envName("admin-token"))
	}
	if len(c.AdminToken) < minAdminToken && !isLoopback(c.AdminListen) {
		return c, fmt.Errorf("invalid %s: (value not shown): must be at least %d bytes when -admin-listen %q (%s) is not a loopback address",
			sources["admin-token"].describe("-admin-token"), minAdminToken, c.AdminListen, sources["admin-listen"])
	}
	if c.Listen == c.AdminListen && !strings.HasSuffix(c.Listen, ":0") {
		return c, fmt.Errorf("invalid %s: %q is also -admin-listen", sources["listen"].describe("-listen"), c.Listen)
	}
	if err := checkRedis(&c, sources); err != nil {
		return c, err
	}
	if c.PublicHost != "" && len(c.Hosts) > 0 {
		return c, fmt.Errorf("invalid %s: -public-host and -hosts exclude each other: with -hosts, the served Host is forwarded", sources["hosts"].describe("-hosts"))
	}
	for i, r := range c.Routes {
		if r.Override && r.TTL == 0 && c.DefaultTTL == 0 {
			return c, fmt.Errorf("invalid routes[%d] (file %s): override needs a ttl when -default-ttl is 0", i, c.ConfigFile)
		}
	}
	return c, nil
}

// minAdminToken is the shortest admin token accepted on a listener that
// is not loopback-only: 16 bytes of a random token are out of reach of
// guessing over the network.
const minAdminToken = 16

// parseDuration parses a Go duration. Negative values are refused, and
// zero too when positive is set.
func parseDuration(v string, positive bool) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	if positive && d == 0 {
		return 0, errors.New("must be greater than 0")
	}
	return d, nil
}

// parseStatusTTL parses a status-ttl value: status=duration pairs,
// comma-separated ("404=10s,410=1m"); empty is none.
func parseStatusTTL(v string) (map[int]time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	m := map[int]time.Duration{}
	for _, pair := range strings.Split(v, ",") {
		code, d, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("%q: want status=duration, e.g. 404=10s", pair)
		}
		if err := addStatusTTL(m, code, d); err != nil {
			return nil, err
		}
	}
	return m, proxy.ValidateStatusTTL(m)
}

// addStatusTTL adds the status code's lifetime d to m.
func addStatusTTL(m map[int]time.Duration, code, d string) error {
	n, err := strconv.Atoi(strings.TrimSpace(code))
	if err != nil {
		return fmt.Errorf("%q: not a status code", code)
	}
	if _, dup := m[n]; dup {
		return fmt.Errorf("status %d given twice", n)
	}
	if m[n], err = parseDuration(strings.TrimSpace(d), true); err != nil {
		return fmt.Errorf("status %d: %q: %w", n, d, err)
	}
	return nil
}

// parseSize parses a byte count with optional unit: 1048576, 256MiB, 1GB,
// 1.5 GiB. Negative values are refused, and zero too when positive is set.
func parseSize(v string, positive bool) (int64, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "-") {
		return 0, errors.New("must not be negative")
	}
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return 0, fmt.Errorf("want a size such as 1048576, 256MiB or 1GB: %w", err)
	}
	if n > math.MaxInt64 {
		return 0, errors.New("too large")
	}
	if positive && n == 0 {
		return 0, errors.New("must be greater than 0")
	}
	return int64(n), nil
}

// parseListen checks a host:port listen address.
func parseListen(v string) (string, error) {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return v, nil
}

// parseOrigin checks the origin base URL: http or https with a host.
func parseOrigin(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return nil, errors.New("missing host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}

// parseHostName checks a host name with an optional port: api.example.com,
// api.example.com:8443, [::1]:8080. Empty is allowed.
func parseHostName(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if strings.ContainsAny(v, "/?#@ \t,") || strings.Contains(v, "://") {
		return "", errors.New("want a host name such as api.example.com, without scheme or path")
	}
	host := v
	if h, port, err := net.SplitHostPort(v); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "", fmt.Errorf("bad port %q", port)
		}
		host = h
	}
	if host == "" {
		return "", errors.New("missing host name")
	}
	return strings.ToLower(v), nil
}

// checkRedisURL validates a Redis URL the way the Redis client will read
// it. Its errors never contain the URL, which may hold a password.
func checkRedisURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix" {
		return errors.New("want a redis://, rediss:// or unix:// URL")
	}
	return nil // the rest is checked for -redis-mode (checkRedis)
}

// checkRedis checks -redis against -redis-mode and the TLS files, and
// loads the files into c.RedisTLS.
func checkRedis(c *config, sources map[string]source) error {
	files := map[string]string{"redis-ca": c.RedisCA, "redis-cert": c.RedisCert, "redis-key": c.RedisKey}
	if c.Redis == "" {
		for _, name := range []string{"redis-ca", "redis-cert", "redis-key"} {
			if files[name] != "" {
				return fmt.Errorf("invalid %s: needs -redis", sources[name].describe("-"+name))
			}
		}
		if c.RedisMode != shared.ModeAuto {
			return fmt.Errorf("invalid %s: needs -redis", sources["redis-mode"].describe("-redis-mode"))
		}
		return nil
	}
	d, err := shared.ParseDeployment(c.Redis, c.RedisMode)
	if err != nil {
		return fmt.Errorf("invalid %s: %s with -redis-mode %s (%s): %w", sources["redis"].describe("-redis"),
			redactURL(c.Redis), c.RedisMode, sources["redis-mode"], err)
	}
	if (c.RedisCert == "") != (c.RedisKey == "") {
		name, other := "redis-cert", "-redis-key"
		if c.RedisCert == "" {
			name, other = "redis-key", "-redis-cert"
		}
		return fmt.Errorf("invalid %s: needs %s too", sources[name].describe("-"+name), other)
	}
	if c.RedisCA == "" && c.RedisCert == "" {
		return nil
	}
	for _, name := range []string{"redis-ca", "redis-cert"} {
		if files[name] != "" && !d.TLS {
			return fmt.Errorf("invalid %s: needs a rediss:// -redis URL (TLS), not %s (%s)", sources[name].describe("-"+name),
				redactURL(c.Redis), sources["redis"])
		}
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.RedisCA != "" {
		pem, err := os.ReadFile(c.RedisCA)
		if err != nil {
			return fmt.Errorf("invalid %s: %w", sources["redis-ca"].describe("-redis-ca"), err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("invalid %s: %q holds no PEM certificate", sources["redis-ca"].describe("-redis-ca"), c.RedisCA)
		}
	}
	if c.RedisCert != "" {
		cert, err := tls.LoadX509KeyPair(c.RedisCert, c.RedisKey)
		if err != nil {
			return fmt.Errorf("invalid %s: %w", sources["redis-cert"].describe("-redis-cert"), err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	c.RedisTLS = conf
	return nil
}

// redactURL returns v quoted with any password masked, or a placeholder if
// v is not a URL.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "(value not shown)"
	}
	return strconv.Quote(u.Redacted())
}

// isLoopback reports whether a listen address only accepts connections from
// this machine. An empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printUsage writes the serve command's usage to w.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  cacheproxy [serve] [flags]   run the proxy (the default command)
  cacheproxy purge [flags]     purge cached entries fleet-wide: -url, -prefix, -tag or -all
  cacheproxy inspect URL       show what the cache holds for a URL
  cacheproxy stats [-watch]    show an instance's counters and its fleet (-watch: refresh)
  cacheproxy report            show which routes are cached, and why not
  cacheproxy check [flags]     check a configuration as start-up would, print it, exit 0 or 2
  cacheproxy reload            reload a running instance's configuration (as SIGHUP does)
  cacheproxy purges            list the last purges asked of an instance
  cacheproxy tail [filters]    show the requests an instance answers, live
  cacheproxy version           print the version and commit built (also -version)
  cacheproxy help              print this help

cacheproxy is a caching reverse proxy: L1 in-process, L2 Redis, then the origin.

Every flag can also be set with the environment variable CACHEPROXY_<NAME>
(upper case, '-' becomes '_') or as a key in the YAML file given by -config.
A flag wins over the environment, which wins over the file, which wins over
the default. Route rules are set only in the file, under "routes:".

Flags:
  -config string
	YAML configuration file (env CACHEPROXY_CONFIG)
`)
	for _, s := range settings {
		def := ""
		if s.def != "" {
			def = fmt.Sprintf(" (default %q)", s.def)
		}
		fmt.Fprintf(w, "  -%s string\n\t%s%s (env %s)\n", s.name, s.usage, def, envName(s.name))
	}
}
