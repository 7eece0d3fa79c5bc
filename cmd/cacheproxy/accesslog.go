package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// openAccessLog returns where -access-log writes: stderr, or the file
// named, opened for appending (and a func that closes it).
func openAccessLog(dest string) (io.Writer, func() error, error) {
	if dest == "stderr" {
		return os.Stderr, func() error { return nil }, nil
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("access log: %w", err)
	}
	return f, f.Close, nil
}

// accessLog wraps the proxy handler: one JSON line per request with its
// method, path, status, X-Cache outcome and the Cache-Status detail (the
// reason), the tier that answered, the bytes sent, the duration, the time
// spent waiting for the origin, and a request id (the client's
// X-Request-Id when it sent a sane one, else a new one, returned in the
// response's X-Request-Id).
func accessLog(w io.Writer, next http.Handler) http.Handler {
	log := slog.New(slog.NewJSONHandler(w, nil))
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r.Header.Get("X-Request-Id"))
		rw.Header().Set("X-Request-Id", id)
		ctx, trace := proxy.WithTrace(r.Context())
		cw := &countingWriter{ResponseWriter: rw, status: http.StatusOK}
		next.ServeHTTP(cw, r.WithContext(ctx))
		xcache := rw.Header().Get("X-Cache")
		log.LogAttrs(ctx, slog.LevelInfo, "access",
			slog.String("id", id),
			slog.String("remote", r.RemoteAddr),
			slog.String("method", r.Method),
			slog.String("path", r.URL.RequestURI()),
			slog.Int("status", cw.status),
			slog.String("x_cache", xcache),
			slog.String("reason", detailOf(rw.Header().Get("Cache-Status"))),
			slog.String("tier", tierOf(xcache)),
			slog.Int64("bytes", cw.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Float64("origin_ms", float64(trace.OriginDuration().Microseconds())/1000),
		)
	})
}

// requestID returns the client's request id if it is a sane one (up to 64
// letters, digits, '-', '_' or '.'), else a new random one.
func requestID(v string) string {
	if v != "" && len(v) <= 64 && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) < 0 {
		return v
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// detailOf returns the reason a response was not stored or not answered
// from the cache: the detail of a forwarded Cache-Status ("" for a hit).
func detailOf(cs string) string {
	if !strings.Contains(cs, "; fwd=") {
		return ""
	}
	_, d, ok := strings.Cut(cs, "detail=")
	if !ok {
		return ""
	}
	d, _, _ = strings.Cut(d, ";")
	return strings.TrimSpace(d)
}

// tierOf names the tier that answered, from X-Cache (the outcome
// table's Tier); "" for a response the proxy did not label.
func tierOf(xcache string) string {
	o, _ := proxy.OutcomeOf(xcache)
	return o.Tier
}

// countingWriter records the status and body bytes of a response. It
// passes Unwrap on, so http.ResponseController reaches the connection.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *countingWriter) WriteHeader(code int) {
	if code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
