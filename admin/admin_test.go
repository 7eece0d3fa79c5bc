package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cacheproxy/cacheproxy/admin"
)

func newTestServer(t *testing.T, opts admin.Options) (*admin.Handler, *httptest.Server) {
	t.Helper()
	h, err := admin.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func get(t *testing.T, srv *httptest.Server, method, path, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func TestAuth(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	h, srv := newTestServer(t, admin.Options{
		Token: "s3cret",
		Stats: func() any { return map[string]int{"hits": 3} },
		Ready: func() (bool, any) { return ready.Load(), map[string]bool{"ready": ready.Load()} },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "cacheproxy_up 1\n")
		}),
	})
	h.Handle("POST /cache/purge", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusAccepted, map[string]string{"purged": r.URL.Query().Get("tag")})
	}))

	tests := []struct {
		method, path, auth string
		wantCode           int
		wantBody           string
	}{
		{"GET", "/healthz", "", 200, `"status": "ok"`},
		{"GET", "/healthz", "Bearer wrong", 200, `"status": "ok"`},
		{"GET", "/stats", "", 401, "bearer token"},
		{"GET", "/stats", "Bearer wrong", 401, "bearer token"},
		{"GET", "/stats", "Bearer s3cre", 401, "bearer token"},
		{"GET", "/stats", "Basic s3cret", 401, "bearer token"},
		{"GET", "/stats", "s3cret", 401, "bearer token"},
		{"GET", "/stats", "Bearer s3cret", 200, `"hits": 3`},
		{"GET", "/stats", "bearer s3cret", 200, `"hits": 3`},
		{"GET", "/readyz", "", 401, "bearer token"},
		{"GET", "/readyz", "Bearer s3cret", 200, `"ready": true`},
		{"GET", "/metrics", "", 401, "bearer token"},
		{"GET", "/metrics", "Bearer s3cret", 200, "cacheproxy_up 1"},
		{"GET", "/nothing", "", 401, "bearer token"},
		{"GET", "/nothing", "Bearer s3cret", 404, ""},
		{"GET", "/healthz/../stats", "", 401, "bearer token"},
		{"POST", "/cache/purge?tag=rank", "", 401, "bearer token"},
		{"POST", "/cache/purge?tag=rank", "Bearer s3cret", 202, `"purged": "rank"`},
		{"GET", "/cache/purge", "Bearer s3cret", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.auth, func(t *testing.T) {
			resp, body := get(t, srv, tt.method, tt.path, tt.auth)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tt.wantCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
			}
			if tt.wantCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}

	ready.Store(false)
	resp, body := get(t, srv, "GET", "/readyz", "Bearer s3cret")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"ready": false`) {
		t.Errorf("not ready: got %d %q, want 503 with detail", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestNoToken(t *testing.T) {
	_, srv := newTestServer(t, admin.Options{Stats: func() any { return []int{1, 2} }})
	for _, tt := range []struct {
		path     string
		wantCode int
	}{
		{"/healthz", 200},
		{"/readyz", 200}, // nil Ready: always ready
		{"/stats", 200},
		{"/metrics", 404}, // nil Metrics: not served
	} {
		if resp, body := get(t, srv, "GET", tt.path, ""); resp.StatusCode != tt.wantCode {
			t.Errorf("GET %s = %d %q, want %d", tt.path, resp.StatusCode, body, tt.wantCode)
		}
	}
	resp, body := get(t, srv, "GET", "/stats", "")
	var got []int
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 2 || resp.StatusCode != 200 {
		t.Errorf("stats = %d %q (%v)", resp.StatusCode, body, err)
	}
}

func TestNewRejectsBadToken(t *testing.T) {
	for _, tok := range []string{"a b", "a\nb", "tab\there"} {
		if _, err := admin.New(admin.Options{Token: tok}); err == nil {
			t.Errorf("New(Token: %q) succeeded, want error", tok)
		}
	}
}

func TestStatsEncodingError(t *testing.T) {
	_, srv := newTestServer(t, admin.Options{Stats: func() any { return make(chan int) }})
	if resp, body := get(t, srv, "GET", "/stats", ""); resp.StatusCode != 500 || !strings.Contains(body, "error") {
		t.Errorf("got %d %q, want 500 with an error", resp.StatusCode, body)
	}
}

func ExampleHandler_Handle() {
	h, err := admin.New(admin.Options{Token: "t0ken"})
	if err != nil {
		panic(err)
	}
	// A later route, behind the same token.
	h.Handle("GET /cache/{key}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, map[string]string{"key": r.PathValue("key")})
	}))

	for _, auth := range []string{"", "Bearer t0ken"} {
		req := httptest.NewRequest("GET", "/cache/rank", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.Join(strings.Fields(rec.Body.String()), " "))
	}
	// Output:
	// 401 { "error": "missing or wrong bearer token" }
	// 200 { "key": "rank" }
}

// TestNoTokenLoopbackHostOnly: without a token, only requests for a
// loopback Host are answered, so that a page whose DNS name was rebound
// to 127.0.0.1 cannot read or drive the API from a browser. With a
// token, the Host does not matter.
func TestNoTokenLoopbackHostOnly(t *testing.T) {
	open, err := admin.New(admin.Options{Stats: func() any { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host string
		want int
	}{
		{"localhost", 200},
		{"LocalHost:9090", 200},
		{"127.0.0.1:9090", 200},
		{"127.9.8.7", 200},
		{"[::1]:9090", 200},
		{"[::1]", 200},
		{"evil.example", 403},
		{"evil.example:9090", 403},
		{"127.0.0.1.evil.example:9090", 403},
		{"localhost.evil.example", 403},
		{"10.0.0.1:9090", 403},
		{"", 403},
	} {
		for _, path := range []string{"/stats", "/healthz"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Host = tt.host
			rec := httptest.NewRecorder()
			open.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("Host %q %s: %d, want %d", tt.host, path, rec.Code, tt.want)
			}
		}
	}

	withToken, err := admin.New(admin.Options{Token: "s3cret-t0ken-16b", Stats: func() any { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/stats", nil)
	req.Host = "cacheproxy.internal:9090"
	req.Header.Set("Authorization", "Bearer s3cret-t0ken-16b")
	rec := httptest.NewRecorder()
	withToken.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("with the token, Host %q: %d, want 200", req.Host, rec.Code)
	}
}
