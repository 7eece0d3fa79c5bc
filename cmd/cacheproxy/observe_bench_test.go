package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers/local"
)

// nopWriter is a ResponseWriter that keeps nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(int)             {}
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkObserveL1Hit is a 1 KiB L1 hit through the proxy handler
// alone, and through observe as serve wires it without an access log,
// with nobody tailing (what every request pays for the duration and
// bytes metrics), and with one tail open.
func BenchmarkObserveL1Hit(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	l1, err := local.New(local.Options{MaxBytes: 64 << 20, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l1.Close()
	body := bytes.Repeat([]byte("x"), 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(body)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	h, err := proxy.New(proxy.Options{Origin: u, Local: l1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	var hub tailHub
	for _, c := range []struct {
		name string
		h    http.Handler
		tail bool
	}{{"direct", h, false}, {"observed", observe(h, nil, &hub, h), false}, {"tailed", observe(h, nil, &hub, h), true}} {
		b.Run(c.name, func(b *testing.B) {
			if c.tail {
				sub, _ := hub.subscribe(tailFilter{prefix: "/nothing"})
				defer hub.unsubscribe(sub)
			}
			req := httptest.NewRequest(http.MethodGet, "/players/42", nil)
			w := &nopWriter{h: http.Header{}}
			c.h.ServeHTTP(w, req) // fill
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
