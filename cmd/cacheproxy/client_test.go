package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testToken is the token of every fake admin API.
const testToken = "s3cret"

// adminCall is the one request a fake admin API expects, and its answer.
type adminCall struct {
	method string
	path   string
	query  url.Values
	// header lists headers the request must carry with these values;
	// "" means the header must be absent.
	header map[string]string
	status int
	body   string
}

// fakeAdmin starts an admin API that expects every request to be call. Like
// the real one, it answers 401 without "Authorization: Bearer s3cret". A
// zero call expects no request at all.
func fakeAdmin(t *testing.T, call adminCall) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if call.method == "" {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			http.Error(w, "unexpected", http.StatusTeapot)
			return
		}
		if r.Method != call.method || r.URL.Path != call.path {
			t.Errorf("request %s %s, want %s %s", r.Method, r.URL.Path, call.method, call.path)
		}
		if got := r.URL.Query(); !reflect.DeepEqual(got, call.query) {
			t.Errorf("query %q decodes to %v, want %v", r.URL.RawQuery, got, call.query)
		}
		for name, want := range call.header {
			if got := r.Header.Get(name); got != want {
				t.Errorf("header %s = %q, want %q", name, got, want)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"missing or wrong bearer token"}`))
			return
		}
		w.WriteHeader(call.status)
		w.Write([]byte(call.body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// clientEnv is an environment pointing the client at srv with the right
// token, changed by kv pairs ("NAME=value"; "NAME=" unsets).
func clientEnv(srv *httptest.Server, kv ...string) func(string) string {
	m := map[string]string{"CACHEPROXY_ADMIN": srv.URL, "CACHEPROXY_ADMIN_TOKEN": testToken}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return env(m)
}

// runClient runs the program with args and returns its exit status and
// output.
func runClient(t *testing.T, args []string, getenv func(string) string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, getenv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// clientCase is one run of a client command against a fake admin API.
type clientCase struct {
	name       string
	args       []string
	env        []string // changes to clientEnv
	call       adminCall
	wantCode   int
	wantStdout string
	wantStderr []string // substrings; none means stderr must be empty
}

func (tt clientCase) run(t *testing.T) {
	t.Helper()
	srv := fakeAdmin(t, tt.call)
	code, stdout, stderr := runClient(t, tt.args, clientEnv(srv, tt.env...))
	if code != tt.wantCode {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
	}
	if stdout != tt.wantStdout {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.wantStdout)
	}
	if len(tt.wantStderr) == 0 && stderr != "" {
		t.Errorf("stderr = %q, want nothing", stderr)
	}
	for _, want := range tt.wantStderr {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr = %q, want it to contain %q", stderr, want)
		}
	}
	if strings.Contains(stdout+stderr, testToken) {
		t.Errorf("output shows the token")
	}
}

func TestPurgeCommand(t *testing.T) {
	purgeCall := func(key, value string, status int, body string) adminCall {
		return adminCall{method: "DELETE", path: "/cache", query: url.Values{key: {value}},
			header: map[string]string{"Accept": "application/json"}, status: status, body: body}
	}
	const fleetOK = `{"purge":{"kind":"url","value":"/rank","seq":12},"confirmed":["a","b","c"],"missing":[],"fleet":true}`
	tests := []clientCase{
		{name: "url with a query", args: []string{"purge", "-url", "/rank?b=2&a=1 x"},
			call: purgeCall("url", "/rank?b=2&a=1 x", 200,
				`{"purge":{"kind":"url","value":"/rank?a=1&b=2%20x","seq":12},"confirmed":["a","b","c"],"missing":[],"fleet":true}`),
			wantStdout: "purged url /rank?a=1&b=2%20x (seq 12): confirmed by 3 instances: a, b, c\n"},
		{name: "prefix", args: []string{"purge", "-prefix", "/players/"},
			call: purgeCall("prefix", "/players/", 200,
				`{"purge":{"kind":"prefix","value":"/players/","seq":13},"confirmed":["a"],"missing":[],"fleet":true,"extra":1}`),
			wantStdout: "purged prefix /players/ (seq 13): confirmed by 1 instance: a\n"},
		{name: "tag", args: []string{"purge", "-tag", "player:42"},
			call: purgeCall("tag", "player:42", 200,
				`{"purge":{"kind":"tag","value":"player:42","seq":14},"confirmed":["a","b"],"missing":[],"fleet":true}`),
			wantStdout: "purged tag player:42 (seq 14): confirmed by 2 instances: a, b\n"},
		{name: "all", args: []string{"purge", "-all"},
			call: purgeCall("all", "true", 200,
				`{"purge":{"kind":"all","value":"","seq":15},"confirmed":["a","b"],"missing":[],"fleet":true}`),
			wantStdout: "purged all (seq 15): confirmed by 2 instances: a, b\n"},
		{name: "without a fleet", args: []string{"purge", "-tag", "rank"},
			call: purgeCall("tag", "rank", 200,
				`{"purge":{"kind":"tag","value":"rank","seq":0},"confirmed":["host-1-77"],"missing":[],"fleet":false}`),
			wantStdout: "purged tag rank on host-1-77 only: no fleet (no Redis)\n"},
		{name: "json", args: []string{"purge", "-json", "-url", "/rank"},
			call: purgeCall("url", "/rank", 200, fleetOK),
			wantStdout: `{
  "purge": {
    "kind": "url",
    "value": "/rank",
    "seq": 12
  },
  "confirmed": [
    "a",
    "b",
    "c"
  ],
  "missing": [],
  "fleet": true
}
`},
		{name: "not confirmed", args: []string{"purge", "-url", "/rank"},
			call: purgeCall("url", "/rank", 202,
				`{"purge":{"kind":"url","value":"/rank","seq":12},"confirmed":["a","b"],"missing":["c","d"],"fleet":true}`),
			wantCode:   1,
			wantStdout: "purged url /rank (seq 12): confirmed by 2 of 4 instances: a, b\n",
			wantStderr: []string{"cacheproxy purge: ", "2 instances did not confirm", ": c, d"}},
		{name: "not confirmed, json", args: []string{"purge", "-url", "/rank", "-json"},
			call: purgeCall("url", "/rank", 202,
				`{"purge":{"kind":"url","value":"/rank","seq":12},"confirmed":[],"missing":["c"],"fleet":true}`),
			wantCode:   1,
			wantStdout: "{\n  \"purge\": {\n    \"kind\": \"url\",\n    \"value\": \"/rank\",\n    \"seq\": 12\n  },\n  \"confirmed\": [],\n  \"missing\": [\n    \"c\"\n  ],\n  \"fleet\": true\n}\n",
			wantStderr: []string{"1 instance did not confirm", ": c ("}},
		{name: "membership unknown", args: []string{"purge", "-url", "/rank"},
			call: purgeCall("url", "/rank", 202,
				`{"purge":{"kind":"url","value":"/rank","seq":12},"confirmed":["a","b"],"missing":[],"unknown_until":"2026-11-25T16:01:02Z","fleet":true}`),
			wantCode:   1,
			wantStdout: "purged url /rank (seq 12): confirmed by 2 instances: a, b\n",
			wantStderr: []string{"cacheproxy purge: ", "lost its record of the instances", "until 2026-11-25T16:01:02Z"}},
		{name: "token flag wins over env", args: []string{"purge", "-token", testToken, "-url", "/rank"}, env: []string{"CACHEPROXY_ADMIN_TOKEN=wrong"},
			call: purgeCall("url", "/rank", 200, fleetOK), wantStdout: "purged url /rank (seq 12): confirmed by 3 instances: a, b, c\n"},
		{name: "no token", args: []string{"purge", "-url", "/rank"}, env: []string{"CACHEPROXY_ADMIN_TOKEN="},
			call: purgeCall("url", "/rank", 200, fleetOK), wantCode: 1,
			wantStderr: []string{"cacheproxy purge: unauthorized: set CACHEPROXY_ADMIN_TOKEN"}},
		{name: "wrong token", args: []string{"purge", "-url", "/rank"}, env: []string{"CACHEPROXY_ADMIN_TOKEN=wrong"},
			call: purgeCall("url", "/rank", 200, fleetOK), wantCode: 1,
			wantStderr: []string{"unauthorized: ", "refused the token", "set CACHEPROXY_ADMIN_TOKEN"}},
		{name: "redis down", args: []string{"purge", "-prefix", "/p/"},
			call: purgeCall("prefix", "/p/", 503,
				`{"error":"redis unreachable, the fleet could not be told (this instance's L1 was purged): dial tcp: connection refused","local_l1_purged":true}`),
			wantCode:   1,
			wantStderr: []string{"cacheproxy purge: redis unreachable, the fleet could not be told (this instance's L1 was purged): dial tcp: connection refused\n"}},
		{name: "refused selector", args: []string{"purge", "-prefix", "players"},
			call:     purgeCall("prefix", "players", 400, `{"error":"prefix \"players\" must start with /"}`),
			wantCode: 1, wantStderr: []string{`refused by the admin API: prefix "players" must start with /`}},
		{name: "endpoint missing", args: []string{"purge", "-all"},
			call:     purgeCall("all", "true", 405, "Method Not Allowed\n"),
			wantCode: 1, wantStderr: []string{"unexpected answer from the admin API at http://127.0.0.1:", "405 Method Not Allowed: Method Not Allowed"}},
		{name: "bad answer", args: []string{"purge", "-all"},
			call:     purgeCall("all", "true", 200, `<html>`),
			wantCode: 1, wantStderr: []string{"bad answer from the admin API"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestInspectCommand(t *testing.T) {
	const body = `{"key":"cacheproxy:1:G:/rank","url":"/rank","tiers":["l1","l2"],"status":200,
		"stored_at":"2026-11-25T16:00:00Z","age_seconds":1.5,"remaining_seconds":298.5,"size":1234,
		"tags":["rank","top"],"vary":["Accept-Encoding"],"seq":3,"new_field":{"x":1},
		"headers":{"Content-Type":["application/json"],"Cache-Control":["max-age=300"],"X-Multi":["1","2"]}}`
	const text = `url        /rank
key        cacheproxy:1:G:/rank
tiers      l1, l2
status     200 OK
stored     2026-11-25T16:00:00Z
age        1.5s
remaining  4m58.5s
size       1.2 KiB (1234 bytes)
tags       rank, top
vary       Accept-Encoding

headers:
  Cache-Control: max-age=300
  Content-Type: application/json
  X-Multi: 1
  X-Multi: 2
`
	// With no -H, the request carries no header that could select a
	// Vary variant.
	bare := map[string]string{"Accept-Encoding": "", "User-Agent": "", "Accept": ""}
	inspectCall := func(u string, status int, body string) adminCall {
		return adminCall{method: "GET", path: "/cache", query: url.Values{"url": {u}}, header: bare, status: status, body: body}
	}
	tests := []clientCase{
		{name: "argument", args: []string{"inspect", "/rank"}, call: inspectCall("/rank", 200, body), wantStdout: text},
		{name: "url flag", args: []string{"inspect", "-url", "/rank"}, call: inspectCall("/rank", 200, body), wantStdout: text},
		{name: "query encoded", args: []string{"inspect", "/players/7?view=full&lang=fr#x"},
			call: inspectCall("/players/7?view=full&lang=fr#x", 200, body), wantStdout: text},
		{name: "flags after the argument", args: []string{"inspect", "/rank", "-json"},
			call: inspectCall("/rank", 200, `{"url":"/rank","size":1}`), wantStdout: "{\n  \"url\": \"/rank\",\n  \"size\": 1\n}\n"},
		{name: "variant headers", args: []string{"inspect", "-H", "Accept-Encoding: gzip", "-H", "Accept-Language:fr", "/rank"},
			call: adminCall{method: "GET", path: "/cache", query: url.Values{"url": {"/rank"}},
				header: map[string]string{"Accept-Encoding": "gzip", "Accept-Language": "fr", "User-Agent": ""}, status: 200, body: body},
			wantStdout: text},
		{name: "stale, sparse", args: []string{"inspect", "/old"},
			call: inspectCall("/old", 200, `{"url":"/old","tiers":["l2"],"status":404,"age_seconds":400,"remaining_seconds":-100.04,"size":0}`),
			wantStdout: "url        /old\nkey        \ntiers      l2\nstatus     404 Not Found\nage        6m40s\n" +
				"remaining  0s (stale for 1m40s)\nsize       0 B (0 bytes)\ntags       none\nvary       none\n\nheaders:\n"},
		{name: "not cached", args: []string{"inspect", "/rank"}, call: inspectCall("/rank", 404, `{"error":"not cached"}`),
			wantCode: 1, wantStderr: []string{"cacheproxy inspect: not cached: /rank\n"}},
		{name: "not cached, json", args: []string{"inspect", "-json", "/rank"}, call: inspectCall("/rank", 404, `{"error":"not cached"}`),
			wantCode: 1, wantStdout: "{\n  \"error\": \"not cached\"\n}\n", wantStderr: []string{"not cached: /rank"}},
		{name: "no such endpoint", args: []string{"inspect", "/rank"}, call: inspectCall("/rank", 404, "404 page not found\n"),
			wantCode: 1, wantStderr: []string{"unexpected answer", "404 Not Found: 404 page not found"}},
		{name: "unauthorized", args: []string{"inspect", "/rank"}, env: []string{"CACHEPROXY_ADMIN_TOKEN="},
			call: inspectCall("/rank", 200, body), wantCode: 1, wantStderr: []string{"unauthorized: set CACHEPROXY_ADMIN_TOKEN"}},
		{name: "unavailable", args: []string{"inspect", "/rank"}, call: inspectCall("/rank", 503, `{"error":"redis down"}`),
			wantCode: 1, wantStderr: []string{"cacheproxy inspect: redis down\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// statsBody is a full GET /stats answer, with a field the client does not
// know.
const statsBody = `{
  "proxy": {"requests": {"HIT-L1": 900, "HIT-L2": 50, "MISS": 50, "BYPASS": 7, "STALE": 2, "REVALIDATED": 1, "NEW": 3},
            "origin_requests": 60, "origin_errors": 1, "collapsed": 12, "fleet_collapsed": 3, "stored": 50,
            "shared_errors": 0, "origin_up": true, "origin_last_error": "", "future": true},
  "l1": {"entries": 120, "bytes": 1258291, "max_bytes": 268435456},
  "redis": {"healthy": true, "errors": 2},
  "fleet": {
    "self": {"id": "host-1-ab12cd", "local_usable": true, "purges": {"url": 3, "prefix": 1, "tag": 0, "all": 0},
             "invalidations_received": 10, "subscription_resyncs": 1, "l1_flushes": 0, "bans_applied_seq": 12, "bans_held": 4},
    "members": [
      {"id": "host-2-ef34", "last_seen": "2026-11-25T16:00:00Z",
       "info": {"id": "host-2-ef34", "listen": "10.0.0.2:8080", "admin": "10.0.0.2:9090", "started": "2026-11-25T15:00:00Z",
                "requests": {"HIT-L1": 10, "MISS": 30}, "origin_requests": 30, "hit_ratio": 0.25}},
      {"id": "host-1-ab12cd", "last_seen": "2026-11-25T16:00:01Z",
       "info": {"id": "host-1-ab12cd", "listen": "10.0.0.1:8080", "admin": "10.0.0.1:9090",
                "requests": {"HIT-L1": 900, "HIT-L2": 50, "MISS": 50, "BYPASS": 7}, "hit_ratio": 0.95}},
      {"id": "host-3-0000", "last_seen": "2026-11-25T15:59:58Z"}
    ]
  }
}`

func TestStatsOutput(t *testing.T) {
	now := time.Date(2026, 11, 25, 16, 0, 3, 400e6, time.UTC)
	tests := []struct {
		name string
		body string
		want string
	}{
		{name: "fleet", body: statsBody, want: `instance   host-1-ab12cd
requests   1013: HIT-L1 900, HIT-L2 50, STALE 2, REVALIDATED 1, MISS 50, PASS 0, BYPASS 7, ERROR 0, NEW 3
hit ratio  95.0% of cacheable, 94.1% of all requests
origin     up: 60 requests, 1 errors
collapsed  12 in this instance, 3 by the fleet's fill lease
stored     50 entries written, 0 shared tier errors
l1         120 entries, 1.2 MiB of 256 MiB
redis      healthy, 2 errors
purges     url 3, prefix 1, tag 0, all 0
fleet      L1 usable; 10 invalidations received, 1 subscription resyncs, 0 L1 flushes; bans applied to seq 12, 4 held

ID                    LISTEN         ADMIN          LAST SEEN  REQUESTS  HIT RATIO
host-1-ab12cd (self)  10.0.0.1:8080  10.0.0.1:9090  2s ago     1007      95.0%
host-2-ef34           10.0.0.2:8080  10.0.0.2:9090  3s ago     40        25.0%
host-3-0000           -              -              5s ago     -         -
`},
		{name: "L1 only, origin down", body: `{"proxy":{"requests":{"MISS":2},"origin_requests":2,"origin_errors":2,
			"origin_up":false,"origin_last_error":"dial tcp: connection refused"},"l1":{"entries":0,"bytes":0,"max_bytes":1024}}`,
			want: `requests   2: HIT-L1 0, HIT-L2 0, STALE 0, REVALIDATED 0, MISS 2, PASS 0, BYPASS 0, ERROR 0
hit ratio  0.0% of cacheable, 0.0% of all requests
origin     down: 2 requests, 2 errors, last: dial tcp: connection refused
collapsed  0 in this instance, 0 by the fleet's fill lease
stored     0 entries written, 0 shared tier errors
l1         0 entries, 0 B of 1.0 KiB
redis      none
`},
		{name: "empty, fleet unknown", body: `{"proxy":{},"redis":{"healthy":false,"errors":9,
			"problems":[{"purpose":"subscribe","kind":"NOPERM","err":"NOPERM no channel permission","since":"2026-11-25T16:00:00Z"}]},
			"fleet":{"self":{"id":"h","local_usable":false},"members":[],"error":"fleet unknown: i/o timeout"}}`,
			want: `instance   h
requests   0: HIT-L1 0, HIT-L2 0, STALE 0, REVALIDATED 0, MISS 0, PASS 0, BYPASS 0, ERROR 0
hit ratio  - of cacheable, - of all requests
origin     down: 0 requests, 0 errors
collapsed  0 in this instance, 0 by the fleet's fill lease
stored     0 entries written, 0 shared tier errors
l1         off
redis      unhealthy, 9 errors
problem    subscribe calls answered NOPERM since 2026-11-25T16:00:00Z: NOPERM no channel permission
purges     url 0, prefix 0, tag 0, all 0
fleet      L1 bypassed (may have missed purges); 0 invalidations received, 0 subscription resyncs, 0 L1 flushes; bans applied to seq 0, 0 held
members    fleet unknown: i/o timeout
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a statsAnswer
			if err := json.Unmarshal([]byte(tt.body), &a); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			printStats(&out, a, now)
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
}

func TestStatsCommand(t *testing.T) {
	statsCall := func(status int, body string) adminCall {
		return adminCall{method: "GET", path: "/stats", query: url.Values{}, status: status, body: body}
	}
	const small = `{"proxy":{"requests":{"HIT-L1":3,"MISS":1}}}`
	tests := []clientCase{
		{name: "text", args: []string{"stats"}, call: statsCall(200, small),
			wantStdout: "requests   4: HIT-L1 3, HIT-L2 0, STALE 0, REVALIDATED 0, MISS 1, PASS 0, BYPASS 0, ERROR 0\n" +
				"hit ratio  75.0% of cacheable, 75.0% of all requests\n" +
				"origin     down: 0 requests, 0 errors\n" +
				"collapsed  0 in this instance, 0 by the fleet's fill lease\n" +
				"stored     0 entries written, 0 shared tier errors\n" +
				"l1         off\nredis      none\n"},
		{name: "json", args: []string{"stats", "-json"}, call: statsCall(200, small),
			wantStdout: "{\n  \"proxy\": {\n    \"requests\": {\n      \"HIT-L1\": 3,\n      \"MISS\": 1\n    }\n  }\n}\n"},
		{name: "admin flag wins over env", args: []string{"stats", "-admin", "http://127.0.0.1:1"}, call: adminCall{},
			wantCode: 1, wantStderr: []string{"cannot reach the admin API at http://127.0.0.1:1: connection refused"}},
		{name: "unauthorized", args: []string{"stats"}, env: []string{"CACHEPROXY_ADMIN_TOKEN="}, call: statsCall(200, small),
			wantCode: 1, wantStderr: []string{"cacheproxy stats: unauthorized: set CACHEPROXY_ADMIN_TOKEN"}},
		{name: "unavailable", args: []string{"stats"}, call: statsCall(503, `{"error":"draining"}`),
			wantCode: 1, wantStderr: []string{"cacheproxy stats: draining\n"}},
		{name: "unavailable, not from cacheproxy", args: []string{"stats"}, call: statsCall(503, "upstream down\n"),
			wantCode: 1, wantStderr: []string{"unexpected answer from the admin API at http://127.0.0.1:", ": 503 Service Unavailable: upstream down\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}

	t.Run("full", func(t *testing.T) {
		srv := fakeAdmin(t, statsCall(200, statsBody))
		code, stdout, stderr := runClient(t, []string{"stats"}, clientEnv(srv))
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{"instance   host-1-ab12cd\n", "hit ratio  95.0%", "\nID  ", "host-3-0000           -  "} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout does not contain %q:\n%s", want, stdout)
			}
		}
	})
}

func TestClientUnreachable(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.URL
	closed.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(slow.Close)

	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "purge", args: []string{"purge", "-all"}, want: "cacheproxy purge: cannot reach the admin API at " + addr + ": connection refused"},
		{name: "inspect", args: []string{"inspect", "/rank"}, want: "cacheproxy inspect: cannot reach the admin API at " + addr + ": connection refused"},
		{name: "stats", args: []string{"stats"}, want: "cacheproxy stats: cannot reach the admin API at " + addr + ": connection refused"},
		{name: "host:port", args: []string{"stats", "-admin", strings.TrimPrefix(addr, "http://")},
			want: "cannot reach the admin API at " + addr + ": connection refused"},
		{name: "timeout", args: []string{"stats", "-admin", slow.URL, "-timeout", "50ms"},
			want: "cacheproxy stats: no answer from the admin API at " + slow.URL + " within 50ms (-timeout)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runClient(t, tt.args, env(map[string]string{"CACHEPROXY_ADMIN": addr}))
			if code != 1 || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestClientUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "purge without selector", args: []string{"purge"}, want: "give exactly one of -url, -prefix, -tag or -all"},
		{name: "purge with empty url", args: []string{"purge", "-url", ""}, want: "give exactly one of"},
		{name: "purge with all=false", args: []string{"purge", "-all=false"}, want: "give exactly one of"},
		{name: "purge with two selectors", args: []string{"purge", "-url", "/a", "-tag", "t"}, want: "give exactly one of"},
		{name: "purge with all and prefix", args: []string{"purge", "-all", "-prefix", "/"}, want: "give exactly one of"},
		{name: "purge unknown flag", args: []string{"purge", "-ur", "/a"}, want: "flag provided but not defined: -ur"},
		{name: "purge extra argument", args: []string{"purge", "-all", "now"}, want: `unexpected argument "now"`},
		{name: "purge bad timeout", args: []string{"purge", "-all", "-timeout", "0s"}, want: "-timeout must be greater than 0"},
		{name: "purge bad admin", args: []string{"purge", "-all", "-admin", "ftp://h:1"}, want: `invalid -admin "ftp://h:1"`},
		{name: "purge token with space", args: []string{"purge", "-all", "-token", "a b"}, want: "the admin token must not contain spaces"},
		{name: "inspect without url", args: []string{"inspect"}, want: "missing the URL to inspect"},
		{name: "inspect twice", args: []string{"inspect", "-url", "/a", "/b"}, want: "give the URL once"},
		{name: "inspect two urls", args: []string{"inspect", "/a", "/b"}, want: `unexpected argument "/b"`},
		{name: "inspect bad header", args: []string{"inspect", "-H", "gzip", "/a"}, want: `invalid value "gzip" for flag -H: want "Name: value"`},
		{name: "inspect flag without value", args: []string{"inspect", "/a", "-url"}, want: "flag needs an argument: -url"},
		{name: "stats extra argument", args: []string{"stats", "now"}, want: `unexpected argument "now"`},
		{name: "stats after --", args: []string{"stats", "--", "-json"}, want: `unexpected argument "-json"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeAdmin(t, adminCall{}) // no request expected
			code, stdout, stderr := runClient(t, tt.args, clientEnv(srv))
			cmd := "cacheproxy " + tt.args[0] + ": "
			if code != 2 || stdout != "" || !strings.Contains(stderr, cmd+tt.want) || !strings.Contains(stderr, "\nUsage:\n  cacheproxy "+tt.args[0]) {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 2 and %q then the usage", code, stdout, stderr, cmd+tt.want)
			}
		})
	}

	for _, cmd := range []string{"purge", "inspect", "stats"} {
		t.Run(cmd+" help", func(t *testing.T) {
			srv := fakeAdmin(t, adminCall{})
			code, stdout, stderr := runClient(t, []string{cmd, "-help"}, clientEnv(srv))
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage:\n  cacheproxy "+cmd) ||
				!strings.Contains(stdout, "-admin string") || !strings.Contains(stdout, "(default \""+srv.URL+"\")") ||
				!strings.Contains(stdout, "env CACHEPROXY_ADMIN_TOKEN") {
				t.Errorf("exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
			}
		})
	}
}
