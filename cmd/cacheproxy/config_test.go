package main

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// writeConfig writes a YAML file in a temporary directory and returns its
// path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cacheproxy.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env returns a getenv reading m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig([]string{"-origin", "http://127.0.0.1:9000"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Listen:           ":8080",
		Origin:           c.Origin,
		RedisMode:        "auto",
		RedisTimeout:     100 * time.Millisecond,
		KeyPrefix:        "cacheproxy",
		DefaultTTL:       5 * time.Minute,
		L1MaxBytes:       256 << 20,
		L1TTL:            30 * time.Second,
		MaxObjectBytes:   8 << 20,
		AdminListen:      "127.0.0.1:9090",
		LogLevel:         slog.LevelInfo,
		LogFormat:        "json",
		AccessLogFormat:  "json",
		ShutdownTimeout:  25 * time.Second,
		Drain:            5 * time.Second,
		LockTimeout:      5 * time.Second,
		OriginBackoff:    time.Second,
		OriginBackoffMax: 30 * time.Second,
		ClientNoCache:    proxy.NoCacheHonour,
		TagHeaders:       proxy.DefaultTagHeaders,
		HeaderTimeout:    10 * time.Second,
		IdleTimeout:      2 * time.Minute,
		PurgeWait:        2 * time.Second,
		StripHeaders:     proxy.DefaultStripHeaders,

		MaxInflightBytes: 256 << 20,
		WriteTimeout:     time.Minute,
		BodyTimeout:      time.Minute,

		MaxConns:           autoLimit,
		MaxOriginConns:     autoLimit,
		OriginQueueTimeout: 5 * time.Second,
		RequestBuffering:   64 << 10,
	}
	if c.sources["listen"] != fromDefault() || c.sources["origin"] != fromFlag() || c.values["listen"] != ":8080" {
		t.Errorf("sources %v, values %v: want listen from its default :8080, origin from the flag", c.sources, c.values)
	}
	want.values, want.sources = c.values, c.sources
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.Origin.String() != "http://127.0.0.1:9000" {
		t.Errorf("origin = %v", c.Origin)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
origin: http://file.example
listen: "127.0.0.1:1001"
default-ttl: 1m
l1-max-bytes: 1MiB
key-prefix: file
log-level: debug
`)
	type want struct {
		origin, listen, prefix string
		ttl                    time.Duration
		l1                     int64
		level                  slog.Level
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want want
	}{
		{
			name: "file over default",
			args: []string{"-config", file},
			want: want{"http://file.example", "127.0.0.1:1001", "file", time.Minute, 1 << 20, slog.LevelDebug},
		},
		{
			name: "env over file",
			args: []string{"-config", file},
			env: map[string]string{
				"CACHEPROXY_ORIGIN":       "http://env.example",
				"CACHEPROXY_LISTEN":       "127.0.0.1:2002",
				"CACHEPROXY_DEFAULT_TTL":  "2m",
				"CACHEPROXY_L1_MAX_BYTES": "2MiB",
				"CACHEPROXY_KEY_PREFIX":   "env",
			},
			want: want{"http://env.example", "127.0.0.1:2002", "env", 2 * time.Minute, 2 << 20, slog.LevelDebug},
		},
		{
			name: "flag over env and file",
			args: []string{"-config", file, "-origin", "http://flag.example", "-listen", "127.0.0.1:3003",
				"-default-ttl", "3m", "-l1-max-bytes", "3145728", "-key-prefix", "flag", "-log-level", "warn"},
			env: map[string]string{
				"CACHEPROXY_ORIGIN":      "http://env.example",
				"CACHEPROXY_LISTEN":      "127.0.0.1:2002",
				"CACHEPROXY_DEFAULT_TTL": "2m",
				"CACHEPROXY_LOG_LEVEL":   "error",
			},
			want: want{"http://flag.example", "127.0.0.1:3003", "flag", 3 * time.Minute, 3 << 20, slog.LevelWarn},
		},
		{
			name: "config file named by env",
			env:  map[string]string{"CACHEPROXY_CONFIG": file, "CACHEPROXY_LOG_LEVEL": "ERROR"},
			want: want{"http://file.example", "127.0.0.1:1001", "file", time.Minute, 1 << 20, slog.LevelError},
		},
		{
			name: "empty env counts as unset",
			args: []string{"-config", file},
			env:  map[string]string{"CACHEPROXY_LISTEN": "", "CACHEPROXY_DEFAULT_TTL": ""},
			want: want{"http://file.example", "127.0.0.1:1001", "file", time.Minute, 1 << 20, slog.LevelDebug},
		},
		{
			name: "flag set to the default still wins",
			args: []string{"-config", file, "-default-ttl", "5m", "-l1-max-bytes", "256MiB"},
			want: want{"http://file.example", "127.0.0.1:1001", "file", 5 * time.Minute, 256 << 20, slog.LevelDebug},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			got := want{c.Origin.String(), c.Listen, c.KeyPrefix, c.DefaultTTL, c.L1MaxBytes, c.LogLevel}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadConfigSizes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"256MiB", 256 << 20},
		{"1GB", 1_000_000_000},
		{"1GiB", 1 << 30},
		{"1048576", 1 << 20},
		{"1.5KiB", 1536},
		{"64 KiB", 64 << 10},
		{"10mb", 10_000_000},
		{"0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := loadConfig([]string{"-origin", "http://o", "-l1-max-bytes", tt.in}, env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if c.L1MaxBytes != tt.want {
				t.Errorf("l1-max-bytes %q = %d, want %d", tt.in, c.L1MaxBytes, tt.want)
			}
		})
	}
}

func TestLoadConfigRoutes(t *testing.T) {
	file := writeConfig(t, `
origin: http://o
default-ttl: 0
l1-max-bytes: 1048576
redis:
routes:
  - path: /rank
    ttl: 10s
    override: true
  - path: /players/*
    ttl: 1m
  - path: /admin/**
    bypass: true
  - path: /static/
`)
	c, err := loadConfig([]string{"-config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []proxy.Route{
		{Path: "/rank", TTL: 10 * time.Second, Override: true},
		{Path: "/players/*", TTL: time.Minute},
		{Path: "/admin/**", Bypass: true},
		{Path: "/static/"},
	}
	if !reflect.DeepEqual(c.Routes, want) {
		t.Errorf("routes:\n got %+v\nwant %+v", c.Routes, want)
	}
	if c.DefaultTTL != 0 || c.L1MaxBytes != 1<<20 || c.Redis != "" {
		t.Errorf("scalars: default-ttl %v, l1-max-bytes %d, redis %q", c.DefaultTTL, c.L1MaxBytes, c.Redis)
	}
}

func TestLoadConfigAdminListen(t *testing.T) {
	tests := []struct {
		listen, token string
		ok            bool
	}{
		{"127.0.0.1:9090", "", true},
		{"127.0.0.2:9090", "", true},
		{"localhost:9090", "", true},
		{"[::1]:9090", "", true},
		{"0.0.0.0:9090", "", false},
		{":9090", "", false},
		{"[::]:9090", "", false},
		{"10.1.2.3:9090", "", false},
		{"0.0.0.0:9090", "t0ken-of-16bytes", true},
		{":9090", "t0ken-of-16bytes", true},
		{"127.0.0.1:9090", "t0ken", true}, // loopback: any token
	}
	for _, tt := range tests {
		t.Run(tt.listen+" "+tt.token, func(t *testing.T) {
			e := map[string]string{"CACHEPROXY_ADMIN_TOKEN": tt.token}
			_, err := loadConfig([]string{"-origin", "http://o", "-admin-listen", tt.listen}, env(e))
			if tt.ok && err != nil {
				t.Errorf("error: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "-admin-token is required")) {
				t.Errorf("error = %v, want one asking for -admin-token", err)
			}
		})
	}
	// A short token on a listener other machines reach.
	for _, listen := range []string{"0.0.0.0:9090", ":9090", "10.1.2.3:9090"} {
		t.Run(listen+" short token", func(t *testing.T) {
			e := map[string]string{"CACHEPROXY_ADMIN_TOKEN": "t0ken-of-15byte"}
			_, err := loadConfig([]string{"-origin", "http://o", "-admin-listen", listen}, env(e))
			if err == nil || !strings.Contains(err.Error(), "invalid -admin-token (env CACHEPROXY_ADMIN_TOKEN)") ||
				!strings.Contains(err.Error(), "at least 16 bytes") || strings.Contains(err.Error(), "t0ken-of-15byte") {
				t.Errorf("error = %v, want one saying -admin-token is too short, without the token", err)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // YAML; its path is appended as -config
		want []string
		hide string // must not appear in the message
	}{
		{name: "missing origin", want: []string{"missing -origin", "CACHEPROXY_ORIGIN"}},
		{name: "empty origin flag", args: []string{"-origin", ""}, want: []string{"missing -origin"}},
		{name: "bad duration flag", args: []string{"-origin", "http://o", "-default-ttl", "5x"},
			want: []string{`invalid -default-ttl (flag): "5x": time: unknown unit`}},
		{name: "bad duration env", env: map[string]string{"CACHEPROXY_ORIGIN": "http://o", "CACHEPROXY_DEFAULT_TTL": "5x"},
			want: []string{`invalid -default-ttl (env CACHEPROXY_DEFAULT_TTL): "5x": time: unknown unit`}},
		{name: "bad duration file", file: "origin: http://o\ndefault-ttl: 5x\n",
			want: []string{`invalid -default-ttl (file `, `.yaml:2): "5x"`}},
		{name: "negative duration", args: []string{"-origin", "http://o", "-default-ttl", "-1s"},
			want: []string{"invalid -default-ttl (flag)", "must not be negative"}},
		{name: "zero l1-ttl", args: []string{"-origin", "http://o", "-l1-ttl", "0"},
			want: []string{"invalid -l1-ttl (flag)", "greater than 0"}},
		{name: "zero shutdown-timeout", env: map[string]string{"CACHEPROXY_SHUTDOWN_TIMEOUT": "0s"}, args: []string{"-origin", "http://o"},
			want: []string{"invalid -shutdown-timeout (env CACHEPROXY_SHUTDOWN_TIMEOUT)"}},
		{name: "bad size", args: []string{"-origin", "http://o", "-l1-max-bytes", "12XB"},
			want: []string{`invalid -l1-max-bytes (flag): "12XB"`}},
		{name: "negative size", env: map[string]string{"CACHEPROXY_MAX_OBJECT_BYTES": "-1"}, args: []string{"-origin", "http://o"},
			want: []string{"invalid -max-object-bytes (env CACHEPROXY_MAX_OBJECT_BYTES)", "must not be negative"}},
		{name: "zero max-object-bytes", file: "origin: http://o\nmax-object-bytes: 0\n",
			want: []string{"invalid -max-object-bytes (file", "greater than 0"}},
		{name: "bad origin scheme", args: []string{"-origin", "ftp://o"},
			want: []string{`invalid -origin (flag): "ftp://o"`, "http"}},
		{name: "origin without host", args: []string{"-origin", "http:///path"},
			want: []string{"invalid -origin (flag)", "host"}},
		{name: "unparsable origin", env: map[string]string{"CACHEPROXY_ORIGIN": "http://a b"},
			want: []string{"invalid -origin (env CACHEPROXY_ORIGIN)"}},
		{name: "bad redis scheme", args: []string{"-origin", "http://o", "-redis", "http://user:hunter2@h:6379"},
			want: []string{"invalid -redis (flag)", "redis://"}, hide: "hunter2"},
		{name: "bad redis db", env: map[string]string{"CACHEPROXY_REDIS": "redis://user:hunter2@h:6379/x"}, args: []string{"-origin", "http://o"},
			want: []string{"invalid -redis (env CACHEPROXY_REDIS)", "database"}, hide: "hunter2"},
		{name: "redis sentinel url forced standalone", args: []string{"-origin", "http://o", "-redis-mode", "standalone",
			"-redis", "redis://:hunter2@s:26379?master_name=m"},
			want: []string{"invalid -redis (flag)", "-redis-mode standalone (flag)", "master_name"}, hide: "hunter2"},
		{name: "redis sentinel mode without master", env: map[string]string{"CACHEPROXY_REDIS_MODE": "sentinel"},
			args: []string{"-origin", "http://o", "-redis", "redis://s:26379"},
			want: []string{"invalid -redis (flag)", "(env CACHEPROXY_REDIS_MODE)", "master_name"}},
		{name: "redis unknown option", args: []string{"-origin", "http://o", "-redis", "redis://u:hunter2@n:7000?addr=n2:7000&colour=blue"},
			want: []string{"invalid -redis (flag)", "unexpected option: colour"}, hide: "hunter2"},
		{name: "bad redis mode", args: []string{"-origin", "http://o", "-redis-mode", "ring"},
			want: []string{`invalid -redis-mode (flag): "ring"`, "cluster"}},
		{name: "redis mode without redis", args: []string{"-origin", "http://o", "-redis-mode", "cluster"},
			want: []string{"invalid -redis-mode (flag): needs -redis"}},
		{name: "redis ca without tls", args: []string{"-origin", "http://o", "-redis", "redis://h:1", "-redis-ca", "ca.pem"},
			want: []string{"invalid -redis-ca (flag): needs a rediss:// -redis URL"}},
		{name: "redis cert without key", args: []string{"-origin", "http://o", "-redis", "rediss://h:1", "-redis-cert", "c.pem"},
			want: []string{"invalid -redis-cert (flag): needs -redis-key too"}},
		{name: "redis ca missing file", args: []string{"-origin", "http://o", "-redis", "rediss://h:1", "-redis-ca", "/nonexistent/ca.pem"},
			want: []string{"invalid -redis-ca (flag)", "no such file"}},
		{name: "key prefix with a hash tag", args: []string{"-origin", "http://o", "-key-prefix", "a{b}"},
			want: []string{`invalid -key-prefix (flag): "a{b}"`, "hash tags"}},
		{name: "bad log level", args: []string{"-origin", "http://o", "-log-level", "verbose"},
			want: []string{`invalid -log-level (flag): "verbose"`}},
		{name: "bad log format", args: []string{"-origin", "http://o", "-log-format", "xml"},
			want: []string{`invalid -log-format (flag): "xml"`}},
		{name: "bad listen", args: []string{"-origin", "http://o", "-listen", "8080"},
			want: []string{`invalid -listen (flag): "8080"`}},
		{name: "same listen addresses", args: []string{"-origin", "http://o", "-listen", "127.0.0.1:9090"},
			want: []string{"invalid -listen (flag)", "also -admin-listen"}},
		{name: "empty key prefix", file: "origin: http://o\nkey-prefix: ''\n",
			want: []string{"invalid -key-prefix (file"}},
		{name: "admin token with space", args: []string{"-origin", "http://o", "-admin-token", "pass word"},
			want: []string{"invalid -admin-token (flag)"}, hide: "pass word"},
		{name: "non-loopback admin without token", args: []string{"-origin", "http://o"},
			env:  map[string]string{"CACHEPROXY_ADMIN_LISTEN": "0.0.0.0:9090"},
			want: []string{"-admin-token is required", "env CACHEPROXY_ADMIN_LISTEN"}},
		{name: "public host with scheme", args: []string{"-origin", "http://o", "-public-host", "https://api.example.com"},
			want: []string{`invalid -public-host (flag): "https://api.example.com"`, "without scheme"}},
		{name: "hosts with path", args: []string{"-origin", "http://o", "-hosts", "a.example,b.example/x"},
			want: []string{`invalid -hosts (flag)`}},
		{name: "hosts and public host", args: []string{"-origin", "http://o", "-hosts", "a.example", "-public-host", "b.example"},
			want: []string{"invalid -hosts (flag)", "exclude each other"}},
		{name: "bad strip header", env: map[string]string{"CACHEPROXY_STRIP_HEADERS": "X-Host,X Bad"}, args: []string{"-origin", "http://o"},
			want: []string{"invalid -strip-headers (env CACHEPROXY_STRIP_HEADERS)", "not a header name"}},
		{name: "bad client-no-cache", args: []string{"-origin", "http://o", "-client-no-cache", "sometimes"},
			want: []string{`invalid -client-no-cache (flag): "sometimes"`}},
		{name: "bad status-ttl", args: []string{"-origin", "http://o", "-status-ttl", "404=10s,500=1m"},
			want: []string{`invalid -status-ttl (flag)`, "status 500"}},
		{name: "status-ttl not a pair", args: []string{"-origin", "http://o", "-status-ttl", "404"},
			want: []string{`invalid -status-ttl (flag)`, "status=duration"}},
		{name: "bad stale-if-error", args: []string{"-origin", "http://o", "-stale-if-error", "-1s"},
			want: []string{`invalid -stale-if-error (flag)`}},
		{name: "route bad status-ttl", file: "origin: http://o\nroutes:\n  - {path: /a, status-ttl: {404: soon}}\n",
			want: []string{"invalid routes[0].status-ttl (file", "status 404"}},
		{name: "route bad stale-while-revalidate", file: "origin: http://o\nroutes:\n  - {path: /a, stale-while-revalidate: later}\n",
			want: []string{"invalid routes[0].stale-while-revalidate (file", `"later"`}},
		{name: "route bad client-no-cache", file: "origin: http://o\nroutes:\n  - {path: /a, client-no-cache: never}\n",
			want: []string{"invalid routes[0].client-no-cache (file", `"never"`}},
		{name: "route bad cookies", file: "origin: http://o\nroutes:\n  - {path: /a, cookies: maybe}\n",
			want: []string{"invalid routes[0].cookies (file", `"maybe"`}},
		{name: "non-loopback admin with short token", args: []string{"-origin", "http://o", "-admin-token", "hunter2", "-admin-listen", ":9090"},
			want: []string{"invalid -admin-token (flag)", "at least 16 bytes", `-admin-listen ":9090" (flag)`}, hide: "hunter2"},
		{name: "zero max-inflight-bytes", args: []string{"-origin", "http://o", "-max-inflight-bytes", "0"},
			want: []string{"invalid -max-inflight-bytes (flag)", "greater than 0"}},
		{name: "bad write-timeout", env: map[string]string{"CACHEPROXY_WRITE_TIMEOUT": "soon"}, args: []string{"-origin", "http://o"},
			want: []string{`invalid -write-timeout (env CACHEPROXY_WRITE_TIMEOUT): "soon"`}},
		{name: "zero body-timeout", file: "origin: http://o\nbody-timeout: 0s\n",
			want: []string{"invalid -body-timeout (file", "greater than 0"}},
		{name: "negative max-conns", args: []string{"-origin", "http://o", "-max-conns", "-5"},
			want: []string{`invalid -max-conns (flag): "-5"`, "positive number"}},
		{name: "bad max-origin-conns", env: map[string]string{"CACHEPROXY_MAX_ORIGIN_CONNS": "many"}, args: []string{"-origin", "http://o"},
			want: []string{`invalid -max-origin-conns (env CACHEPROXY_MAX_ORIGIN_CONNS): "many"`}},
		{name: "zero origin-queue-timeout", file: "origin: http://o\norigin-queue-timeout: 0s\n",
			want: []string{"invalid -origin-queue-timeout (file", "greater than 0"}},
		{name: "bad request-buffering", args: []string{"-origin", "http://o", "-request-buffering", "lots"},
			want: []string{`invalid -request-buffering (flag): "lots"`}},
		{name: "unknown yaml key", file: "origin: http://o\ncolour: blue\n",
			want: []string{`unknown key "colour"`, ".yaml:2"}},
		{name: "config key in yaml", file: "config: other.yaml\n", want: []string{`unknown key "config"`}},
		{name: "yaml list for scalar", file: "origin: [http://o]\n", want: []string{"invalid -origin (file", "single value"}},
		{name: "duplicate yaml key", file: "origin: http://o\norigin: http://p\n", want: []string{`"origin" given twice`}},
		{name: "yaml syntax", file: "origin: http://o\n  bad: [\n", want: []string{"invalid -config file"}},
		{name: "yaml not a mapping", file: "- a\n- b\n", want: []string{"want a mapping"}},
		{name: "missing config file", args: []string{"-config", "/nonexistent/cacheproxy.yaml"},
			want: []string{"invalid -config", "/nonexistent/cacheproxy.yaml"}},
		{name: "route bad ttl", file: "origin: http://o\nroutes:\n  - path: /a\n  - path: /b\n    ttl: 1x\n",
			want: []string{"invalid routes[1].ttl (file", `.yaml:5): "1x"`}},
		{name: "route negative ttl", file: "origin: http://o\nroutes:\n  - {path: /a, ttl: -1s}\n",
			want: []string{"invalid routes[0].ttl", "negative"}},
		{name: "route unknown key", file: "origin: http://o\nroutes:\n  - path: /a\n    cache: yes\n",
			want: []string{"invalid routes[0]", `unknown key "cache"`}},
		{name: "route credentials not a header name", file: "origin: http://o\nroutes:\n  - path: /a\n    credentials: [X-Api-Key, \"bad name\"]\n",
			want: []string{"invalid routes[0]", `"bad name" is not a header name`}},
		{name: "route credentials a mapping", file: "origin: http://o\nroutes:\n  - path: /a\n    credentials: {a: b}\n",
			want: []string{"invalid routes[0].credentials", "list of header names"}},
		{name: "route any-content-type not a bool", file: "origin: http://o\nroutes:\n  - {path: /a, any-content-type: maybe}\n",
			want: []string{"invalid routes[0].any-content-type", "true or false"}},
		{name: "bypass with cookies ignore", file: "origin: http://o\nroutes:\n  - {path: /a, bypass: true, cookies: ignore}\n",
			want: []string{"invalid routes[0]", "bypass excludes"}},
		{name: "route without path", file: "origin: http://o\nroutes:\n  - ttl: 1m\n",
			want: []string{"invalid routes[0]", "path is required"}},
		{name: "route relative path", file: "origin: http://o\nroutes:\n  - path: rank\n",
			want: []string{"invalid routes[0].path", `start with "/"`}},
		{name: "route bad glob", file: "origin: http://o\nroutes:\n  - path: /a/[b\n",
			want: []string{"invalid routes[0].path", "syntax error"}},
		{name: "route bad bool", file: "origin: http://o\nroutes:\n  - path: /a\n    bypass: sometimes\n",
			want: []string{"invalid routes[0].bypass", "true or false"}},
		{name: "route bypass and ttl", file: "origin: http://o\nroutes:\n  - {path: /a, bypass: true, ttl: 1m}\n",
			want: []string{"invalid routes[0]", "bypass excludes"}},
		{name: "route override without any ttl", file: "origin: http://o\ndefault-ttl: 0\nroutes:\n  - {path: /a, override: true}\n",
			want: []string{"invalid routes[0]", "override needs a ttl"}},
		{name: "routes not a list", file: "origin: http://o\nroutes: /a\n",
			want: []string{"invalid routes", "want a list"}},
		{name: "route not a mapping", file: "origin: http://o\nroutes:\n  - /a\n",
			want: []string{"invalid routes[0]", "want a mapping"}},
		{name: "unknown flag", args: []string{"-origin", "http://o", "-colour", "blue"},
			want: []string{"-colour"}},
		{name: "positional argument", args: []string{"-origin", "http://o", "extra"},
			want: []string{`unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeConfig(t, tt.file)}, args...)
			}
			_, err := loadConfig(args, env(tt.env))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.hide != "" && strings.Contains(err.Error(), tt.hide) {
				t.Errorf("error %q reveals %q", err, tt.hide)
			}
		})
	}
}

func TestLoadConfigHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		if _, err := loadConfig([]string{arg}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: error = %v, want flag.ErrHelp", arg, err)
		}
	}
}

// TestExampleConfig checks that the commented example in configs/ loads.
func TestExampleConfig(t *testing.T) {
	c, err := loadConfig([]string{"-config", "../../configs/cacheproxy.yaml"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Origin == nil || len(c.Routes) == 0 {
		t.Errorf("example config: origin %v, %d routes; want both set", c.Origin, len(c.Routes))
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"listen":           "CACHEPROXY_LISTEN",
		"l1-max-bytes":     "CACHEPROXY_L1_MAX_BYTES",
		"shutdown-timeout": "CACHEPROXY_SHUTDOWN_TIMEOUT",
		"purge-wait":       "CACHEPROXY_PURGE_WAIT",
	} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnLimits: the default connection limits split the open-file
// limit, less its reserve, between clients and the origin, so that
// together they stay under it; each is at least minAutoLimit.
func TestConnLimits(t *testing.T) {
	for _, c := range []struct {
		nofile       uint64
		procs        int
		clients, org int
	}{
		{1024, 2, 438, 438},
		{1024, 8, 408, 408},
		{1 << 20, 4, 524204, 524204},
		{1 << 40, 4, maxAutoLimit, maxAutoLimit},
		{100, 2, minAutoLimit, minAutoLimit},
		{0, 2, minAutoLimit, minAutoLimit},
	} {
		clients, org := connLimits(c.nofile, c.procs)
		if clients != c.clients || org != c.org {
			t.Errorf("connLimits(%d, %d) = %d, %d; want %d, %d", c.nofile, c.procs, clients, org, c.clients, c.org)
		}
		if reserve := uint64(fileReserve + redisConnsPerProc*c.procs); c.nofile > reserve+2*minAutoLimit && uint64(clients+org)+reserve > c.nofile {
			t.Errorf("connLimits(%d, %d): %d + %d + the reserve exceed the limit", c.nofile, c.procs, clients, org)
		}
	}
}
