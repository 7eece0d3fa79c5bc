package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"testing"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// TestEngineForwardsInterimResponses checks that an origin's 103 Early
// Hints reach the client through the Gin engine, which buffers statuses.
func TestEngineForwardsInterimResponses(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	h, err := proxy.New(proxy.Options{Origin: u})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newEngine(h))
	defer srv.Close()
	var codes []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		codes = append(codes, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL+"/x", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "final" || len(codes) != 1 || codes[0] != http.StatusEarlyHints {
		t.Errorf("got %d %q, interim %v", resp.StatusCode, body, codes)
	}
}
