package main

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cacheproxy/cacheproxy/admin"
)

// purgeLog remembers the last purges asked of this instance's admin API,
// for GET /purges and the dashboard. Safe for concurrent use; the zero
// value is ready.
type purgeLog struct {
	mu   sync.Mutex
	last []purgeRecord // oldest first, at most purgeLogSize
}

const purgeLogSize = 50

// purgeRecord is one purge as the admin API answered it.
type purgeRecord struct {
	At     time.Time `json:"at"`
	Remote string    `json:"remote"` // who asked: the admin client's address
	Query  string    `json:"query"`  // what: url=, prefix=, tag= or all=
	Status int       `json:"status"` // 200 applied everywhere, 202, 400, 503
}

func (l *purgeLog) add(rec purgeRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == purgeLogSize {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, rec)
}

// recent returns the purges remembered, newest first.
func (l *purgeLog) recent() []purgeRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]purgeRecord, len(l.last))
	for i, r := range l.last {
		out[len(out)-1-i] = r
	}
	return out
}

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// logPurges wraps the purge route: every purge is logged at INFO with who
// asked and what, whatever its outcome, and remembered for GET /purges.
func (s *stack) logPurges(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(sw, r)
		rec := purgeRecord{At: start, Remote: r.RemoteAddr, Query: r.URL.RawQuery, Status: sw.status}
		s.purges.add(rec)
		logger.Info("purge", "remote", rec.Remote, "query", rec.Query, "status", rec.Status,
			"duration", time.Since(start).String())
	})
}

// serveRecentPurges is GET /purges: the last purges asked of this
// instance, newest first.
func (s *stack) serveRecentPurges(w http.ResponseWriter, r *http.Request) {
	admin.WriteJSON(w, http.StatusOK, map[string]any{"purges": s.purges.recent()})
}
