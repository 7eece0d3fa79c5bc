package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// accessLogger is where -access-log writes: nowhere, stderr, or a file
// opened for appending. A reload may change it (set), and SIGUSR1 reopens
// its file (reopen), for logrotate. Safe for concurrent use.
type accessLogger struct {
	mu   sync.Mutex
	dest string   // -access-log: "" (off), "stderr" or a file name
	w    *os.File // os.Stderr, the file, or nil when off
	log  atomic.Pointer[slog.Logger]
}

// newAccessLogger returns the access log writing to dest (see
// -access-log).
func newAccessLogger(dest string) (*accessLogger, error) {
	a := &accessLogger{}
	return a, a.set(dest)
}

// open opens dest for appending; stderr is os.Stderr.
func openAccessLog(dest string) (*os.File, error) {
	if dest == "stderr" {
		return os.Stderr, nil
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// set makes the access log write to dest from the next request on; if
// dest cannot be opened it returns the error and keeps writing where it
// did.
func (a *accessLogger) set(dest string) error {
	a.mu.Lock()
	same := dest == a.dest
	a.mu.Unlock()
	if same {
		return nil
	}
	return a.swap(dest)
}

// reopen opens the file of the access log again, by its name: after
// logrotate renamed it, the next lines go to a new file of that name.
func (a *accessLogger) reopen() error {
	a.mu.Lock()
	dest := a.dest
	a.mu.Unlock()
	if dest == "" || dest == "stderr" {
		return nil
	}
	return a.swap(dest)
}

// swap opens dest and writes there from now on, closing what it wrote
// to before.
func (a *accessLogger) swap(dest string) error {
	var f *os.File
	if dest != "" {
		var err error
		if f, err = openAccessLog(dest); err != nil {
			return err
		}
	}
	a.mu.Lock()
	old := a.w
	a.dest, a.w = dest, f
	a.mu.Unlock()
	if f == nil {
		a.log.Store(nil)
	} else if a.log.Load() == nil {
		a.log.Store(slog.New(slog.NewJSONHandler(a, nil)))
	}
	if old != nil && old != os.Stderr {
		return old.Close()
	}
	return nil
}

// Write writes one line where the access log goes now.
func (a *accessLogger) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.w == nil {
		return len(p), nil // turned off while the line was made
	}
	return a.w.Write(p)
}

// close closes the access log's file.
func (a *accessLogger) close() error { return a.swap("") }

// accessLog wraps the proxy handler: one JSON line per request with its
// method, path, status, X-Cache outcome and the Cache-Status detail (the
// reason), the tier that answered, the bytes sent, the duration, the time
// spent waiting for the origin, and a request id (the client's
// X-Request-Id when it sent a sane one, else a new one, returned in the
// response's X-Request-Id).
// Nothing is logged, and the request is not traced, while a is off.
func accessLog(a *accessLogger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		log := a.log.Load()
		if log == nil {
			next.ServeHTTP(rw, r)
			return
		}
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

// tierOf names the tier that answered, from X-Cache.
func tierOf(xcache string) string {
	switch xcache {
	case "HIT-L1":
		return "l1"
	case "HIT-L2":
		return "l2"
	case "STALE":
		return "cache"
	case "":
		return ""
	}
	return "origin"
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
