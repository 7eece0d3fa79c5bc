package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/origintest"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// newEchoOrigin answers with what it received: "v<version> " then the
// request (origintest.WriteRequest). Paths under /etag/ carry only an ETag
// (heuristic freshness); every other response has max-age=300.
func newEchoOrigin(t *testing.T) *origintest.Origin {
	return origintest.New(t, origintest.Options{Body: func(w http.ResponseWriter, r *http.Request, version int64) {
		if strings.HasPrefix(r.URL.Path, "/etag/") {
			w.Header().Del("Cache-Control")
			w.Header().Set("Etag", `"e"`)
		}
		fmt.Fprintf(w, "v%d ", version)
		origintest.WriteRequest(w, r)
	}})
}

// rawGet sends a GET with exactly the request target given (Go's client
// would re-escape it) and the given header lines; Host defaults to the
// proxy's address.
func rawGet(t *testing.T, base, target string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req, host := "GET "+target+" HTTP/1.1\r\nConnection: close\r\n", addr
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			host = hdr[i+1]
			continue
		}
		req += hdr[i] + ": " + hdr[i+1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"Host: "+host+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// securityDeployments starts the three shapes the attacks are tried on:
// one instance with L1 only, one with L2 only, and a fleet of two.
func securityDeployments(t *testing.T, origin string) map[string][]*server {
	redis := redistest.Start(t)
	redis2 := redistest.Start(t)
	tokenEnv := []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}
	l2 := startServer(t, append(tokenEnv, "CACHEPROXY_REDIS="+redis2.URL()), "-origin", origin, "-l1-max-bytes", "0")
	await.Until(t, 15*time.Second, "L2 instance ready", func() bool {
		code, _, _ := fetch(t, "GET", l2.adminURL+"/readyz", fleetToken)
		return code == 200
	})
	ageEpoch(t, redis2.Client(), "cacheproxy")
	return map[string][]*server{
		"l1":    {startServer(t, tokenEnv, "-origin", origin)},
		"l2":    {l2},
		"fleet": startFleet(t, redis, origin, 2),
	}
}

func TestSecurityEndToEnd(t *testing.T) {
	o := newEchoOrigin(t)
	deployments := securityDeployments(t, o.URL)
	for name, fleet := range deployments {
		first, last := fleet[0], fleet[len(fleet)-1]
		t.Run(name+"/encoded path is another resource", func(t *testing.T) {
			rawGet(t, first.proxyURL, "/"+name+"/app.js%3Fx=1")
			_, _, body := rawGet(t, last.proxyURL, "/"+name+"/app.js?x=1")
			if !strings.Contains(body, "GET /"+name+"/app.js?x=1\n") {
				t.Errorf("victim got %q", body)
			}
			rawGet(t, first.proxyURL, "/"+name+"/a%2Fb")
			if _, _, body := rawGet(t, last.proxyURL, "/"+name+"/a/b"); !strings.Contains(body, "GET /"+name+"/a/b\n") {
				t.Errorf("victim got %q", body)
			}
		})
		t.Run(name+"/host and forwarding headers", func(t *testing.T) {
			p := "/" + name + "/page"
			rawGet(t, first.proxyURL, p, "Host", "evil.example", "X-Forwarded-Host", "evil.example",
				"X-Original-URL", "/evil", "X-Forwarded-Scheme", "evil", "Forwarded", "host=evil.example",
				"X-Http-Method-Override", "EVIL",
				// Read by common frameworks; in the spellings an origin
				// reads alike (any case, '_' for '-' under WSGI/CGI).
				"x-scheme", "evil", "X-Script-Name", "/evil", "X-Forwarded-Protocol", "evil",
				"x-real-ip", "evil", "X_Real_IP", "evil", "Client-IP", "evil",
				"true-client-ip", "evil", "X-Original-URI", "/evil")
			rawGet(t, first.proxyURL, "http://evil.example"+p+"2")
			for _, target := range []string{p, p + "2"} {
				_, h, body := rawGet(t, last.proxyURL, target)
				if strings.Contains(strings.ToLower(body), "evil") {
					t.Errorf("%s: clean client got (%s) %q", target, h.Get("X-Cache"), body)
				}
			}
		})
		t.Run(name+"/cookie response not shared on heuristic freshness", func(t *testing.T) {
			p := "/etag/" + name
			rawGet(t, first.proxyURL, p, "Cookie", "session=alice")
			if _, _, body := rawGet(t, last.proxyURL, p); strings.Contains(body, "alice") {
				t.Errorf("cookieless client got %q", body)
			}
		})
		t.Run(name+"/purge of encoded paths", func(t *testing.T) {
			for _, tc := range []struct {
				path, spelled string
				asTyped       bool // sent unescaped, as curl users type it
			}{
				{"/" + name + "/a%20b", "/" + name + "/a%20b", false},
				{"/" + name + "/caf%C3%A9", "/" + name + "/caf\u00e9", false},
				{"/" + name + "/x%2Fy", "/" + name + "/x%2fy", false},
				{"/" + name + "/t%2Fu?b=1&a=%7e", "/" + name + "/t%2fu?a=~&b=1", true},
			} {
				for _, s := range fleet {
					await.Until(t, 15*time.Second, "a hit of "+tc.path, func() bool {
						_, h, _ := rawGet(t, s.proxyURL, tc.path)
						return strings.HasPrefix(h.Get("X-Cache"), "HIT")
					})
				}
				v := o.Version.Add(1)
				q := "url=" + url.QueryEscape(tc.spelled)
				if tc.asTyped {
					q = "url=" + tc.spelled
				}
				code, res := purge(t, first, q)
				if code != http.StatusOK || len(res.Confirmed) != len(fleet) {
					t.Fatalf("purge %q = %d %+v", tc.spelled, code, res)
				}
				for _, s := range fleet {
					if _, h, body := rawGet(t, s.proxyURL, tc.path); !strings.HasPrefix(body, fmt.Sprintf("v%d ", v)) {
						t.Errorf("%s after purge as %q: %s %q", tc.path, tc.spelled, h.Get("X-Cache"), body)
					}
				}
			}
		})
		t.Run(name+"/admin url is a path, not an authority", func(t *testing.T) {
			for _, p := range []string{"/" + name + "/p", "//host/" + name + "/p"} {
				for _, s := range fleet {
					await.Until(t, 15*time.Second, "a hit of "+p, func() bool {
						_, h, _ := rawGet(t, s.proxyURL, p)
						return strings.HasPrefix(h.Get("X-Cache"), "HIT")
					})
				}
			}
			v := o.Version.Add(1)
			if code, res := purge(t, first, "url="+url.QueryEscape("//host/"+name+"/p")); code != http.StatusOK {
				t.Fatalf("purge = %d %+v", code, res)
			}
			for _, s := range fleet {
				if _, h, body := rawGet(t, s.proxyURL, "/"+name+"/p"); strings.HasPrefix(body, fmt.Sprintf("v%d ", v)) {
					t.Errorf("/%s/p was purged by url=//host/%s/p: %s %q", name, name, h.Get("X-Cache"), body)
				}
				if _, h, body := rawGet(t, s.proxyURL, "//host/"+name+"/p"); !strings.HasPrefix(body, fmt.Sprintf("v%d ", v)) {
					t.Errorf("//host/%s/p not purged: %s %q", name, h.Get("X-Cache"), body)
				}
			}
		})
	}
}

func TestHostsFlag(t *testing.T) {
	o := newEchoOrigin(t)
	s := startServer(t, nil, "-origin", o.URL, "-hosts", "a.example,b.example")
	code, h, body := rawGet(t, s.proxyURL, "/p", "Host", "a.example")
	if code != 200 || !strings.Contains(body, "Host: a.example\n") || h.Get("X-Cache") != "MISS" {
		t.Fatalf("a.example: %d %s %q", code, h.Get("X-Cache"), body)
	}
	if _, h, _ := rawGet(t, s.proxyURL, "/p", "Host", "b.example"); h.Get("X-Cache") != "MISS" {
		t.Errorf("b.example shares a.example's entry: %s", h.Get("X-Cache"))
	}
	before := o.Total()
	if code, _, _ := rawGet(t, s.proxyURL, "/p", "Host", "evil.example"); code != http.StatusMisdirectedRequest {
		t.Errorf("evil.example: %d, want 421", code)
	}
	if o.Total() != before {
		t.Error("a request for an unserved host reached the origin")
	}
}

func TestPurgeTooLong(t *testing.T) {
	o := newEchoOrigin(t)
	s := startServer(t, []string{"CACHEPROXY_ADMIN_TOKEN=" + fleetToken}, "-origin", o.URL)
	long := "/" + strings.Repeat("a", 9000)
	for _, q := range []string{"url=" + long, "prefix=" + long, "tag=" + long[1:]} {
		if code, _ := purge(t, s, q); code != http.StatusBadRequest {
			t.Errorf("purge of %d bytes (%s) = %d, want 400", len(long), q[:4], code)
		}
	}
}
