package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// openAccessLog opens dest for appending; stderr is os.Stderr.
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

// served is one answered proxy request, as the access log and
// cacheproxy tail show it.
type served struct {
	Time       time.Time `json:"time"`
	ID         string    `json:"id,omitempty"` // with -access-log: the X-Request-Id
	Remote     string    `json:"remote"`
	Host       string    `json:"host"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Proto      string    `json:"proto"`
	Status     int       `json:"status"`
	XCache     string    `json:"x_cache"` // the outcome's label (proxy.Trace.Outcome)
	Reason     string    `json:"reason"`  // the Cache-Status detail of a forwarded answer (proxy.Trace.Reason)
	Tier       string    `json:"tier"`    // where the body came from (proxy.OutcomeInfo.Tier)
	Bytes      int64     `json:"bytes"`
	DurationMS float64   `json:"duration_ms"`
	OriginMS   float64   `json:"origin_ms"` // the time its own fills waited for the origin
	UserAgent  string    `json:"user_agent"`
	Referer    string    `json:"referer"`
}

// observe wraps the proxy handler next (p) with what watches each
// request: the request duration and bytes served metrics (always), the
// access log (while al writes somewhere) and cacheproxy tail (while someone
// tails). With none of the last two, a request costs a counting writer
// and two clock reads.
func observe(p *proxy.Handler, al *accessLogger, tail *tailHub, next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		watched := tail.watched()
		var id string
		logged := al.enabled()
		if logged {
			id = requestID(r.Header.Get("X-Request-Id"))
			rw.Header().Set("X-Request-Id", id)
		}
		var trace *proxy.Trace
		if logged || watched {
			var ctx context.Context
			ctx, trace = proxy.WithTrace(r.Context())
			r = r.WithContext(ctx)
		}
		cw := &countingWriter{ResponseWriter: rw, status: http.StatusOK}
		next.ServeHTTP(cw, r)
		took := time.Since(start)
		// The metrics take the result from the X-Cache the proxy set (a
		// request without a Trace has nothing else to tell it).
		var xcache string
		if v := rw.Header()["X-Cache"]; len(v) > 0 { // set by the proxy, canonical
			xcache = v[0]
		}
		p.Observe(xcache, cw.bytes, took)
		if !logged && !watched {
			return
		}
		// The outcome and reason as the proxy decided them, not read back
		// from the headers it wrote.
		answer, _ := trace.Outcome()
		rec := served{
			Time: start, ID: id, Remote: r.RemoteAddr, Host: r.Host, Method: r.Method, Path: r.URL.RequestURI(),
			Proto: r.Proto, Status: cw.status, XCache: answer.Label, Reason: trace.Reason(),
			Tier: answer.Tier, Bytes: cw.bytes, DurationMS: float64(took.Microseconds()) / 1000,
			OriginMS:  float64(trace.OriginDuration().Microseconds()) / 1000,
			UserAgent: r.Header.Get("User-Agent"), Referer: r.Header.Get("Referer"),
		}
		if logged {
			al.log(rec)
		}
		if watched {
			tail.publish(rec)
		}
	})
}

// accessLogger writes -access-log in its -access-log-format: nowhere,
// stderr, or a file opened for appending. A reload may change where it
// writes (set), and SIGUSR1 reopens its file (reopen), for logrotate.
// Safe for concurrent use.
type accessLogger struct {
	format string // "json" or "combined"
	json   *slog.Logger
	on     atomic.Bool // whether it writes anywhere
	mu     sync.Mutex
	dest   string   // -access-log: "" (off), "stderr" or a file name
	w      *os.File // os.Stderr, the file, or nil when off
	buf    []byte   // the combined line being built, under mu
}

// newAccessLogger returns the access log writing to dest (see
// -access-log) in format.
func newAccessLogger(dest, format string) (*accessLogger, error) {
	a := &accessLogger{format: format}
	a.json = slog.New(slog.NewJSONHandler(a, nil))
	return a, a.set(dest)
}

// enabled reports whether the access log writes anywhere now.
func (a *accessLogger) enabled() bool { return a != nil && a.on.Load() }

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
	a.on.Store(f != nil)
	a.mu.Unlock()
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

// log writes one line for rec.
func (l *accessLogger) log(rec served) {
	if l.format == "combined" {
		l.mu.Lock()
		l.buf = appendCombined(l.buf[:0], rec)
		if l.w != nil {
			l.w.Write(l.buf)
		}
		l.mu.Unlock()
		return
	}
	l.json.LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("id", rec.ID),
		slog.String("remote", rec.Remote),
		slog.String("host", rec.Host),
		slog.String("method", rec.Method),
		slog.String("path", rec.Path),
		slog.Int("status", rec.Status),
		slog.String("x_cache", rec.XCache),
		slog.String("reason", rec.Reason),
		slog.String("tier", rec.Tier),
		slog.Int64("bytes", rec.Bytes),
		slog.Float64("duration_ms", rec.DurationMS),
		slog.Float64("origin_ms", rec.OriginMS),
		slog.String("user_agent", rec.UserAgent),
		slog.String("referer", rec.Referer),
	)
}

// appendCombined appends rec as a line of the combined log format
// (Apache's and nginx's "combined"):
//
//	127.0.0.1 - - [07/Dec/2026:06:10:00 +0000] "GET /rank HTTP/1.1" 200 512 "-" "curl/8.5.0"
//
// The client's address without its port; "-" for an empty field and a
// body of 0 bytes; a quote, a backslash and a byte that is not printable
// ASCII escaped as \xHH, as nginx does, so a client cannot forge a line.
func appendCombined(b []byte, rec served) []byte {
	host, _, err := net.SplitHostPort(rec.Remote)
	if err != nil {
		host = rec.Remote
	}
	b = appendEscaped(b, orDash(host))
	b = append(b, " - - ["...)
	b = rec.Time.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "`...)
	b = appendEscaped(b, rec.Method+" "+rec.Path+" "+rec.Proto)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, ' ')
	if rec.Bytes > 0 {
		b = strconv.AppendInt(b, rec.Bytes, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, ` "`...)
	b = appendEscaped(b, orDash(rec.Referer))
	b = append(b, `" "`...)
	b = appendEscaped(b, orDash(rec.UserAgent))
	return append(b, "\"\n"...)
}

// appendEscaped appends s with '"', '\\' and bytes outside printable
// ASCII written as \xHH.
func appendEscaped(b []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
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
