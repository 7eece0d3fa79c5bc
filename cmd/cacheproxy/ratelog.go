package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// rateLimited is a slog.Handler that lets through, per message, the first
// warning or error of every interval and counts the rest: an outage
// (origin down, Redis gone) that fails every request logs its cause once,
// then one line per interval saying how many more there were, instead of
// a line per request. Records below WARN pass unchanged.
type rateLimited struct {
	next     slog.Handler
	interval time.Duration
	state    *rateState
}

type rateState struct {
	mu   sync.Mutex
	seen map[string]*rateEntry
}

type rateEntry struct {
	until      time.Time // records before this are counted, not logged
	suppressed int
	last       slog.Record
	timer      *time.Timer
}

func newRateLimited(next slog.Handler, interval time.Duration) *rateLimited {
	return &rateLimited{next: next, interval: interval, state: &rateState{seen: map[string]*rateEntry{}}}
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimited{next: h.next.WithAttrs(as), interval: h.interval, state: h.state}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), interval: h.interval, state: h.state}
}

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	s := h.state
	s.mu.Lock()
	e := s.seen[r.Message]
	if e != nil && r.Time.Before(e.until) {
		e.suppressed++
		e.last = r.Clone()
		if e.timer == nil {
			msg := r.Message
			e.timer = time.AfterFunc(time.Until(e.until), func() { h.summarise(msg) })
		}
		s.mu.Unlock()
		return nil
	}
	if e == nil {
		if len(s.seen) > 1024 { // distinct messages are few; bound them anyway
			clear(s.seen)
		}
		e = &rateEntry{}
		s.seen[r.Message] = e
	}
	e.until = r.Time.Add(h.interval)
	s.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// summarise logs how many records of msg were held back in the interval
// that just ended, with the attributes of the last of them.
func (h *rateLimited) summarise(msg string) {
	s := h.state
	s.mu.Lock()
	e := s.seen[msg]
	if e == nil || e.suppressed == 0 {
		s.mu.Unlock()
		return
	}
	r := slog.NewRecord(time.Now(), e.last.Level, msg, 0)
	e.last.Attrs(func(a slog.Attr) bool { r.AddAttrs(a); return true })
	r.AddAttrs(slog.Int("repeated", e.suppressed), slog.String("in", h.interval.String()))
	e.suppressed, e.timer = 0, nil
	e.until = time.Now().Add(h.interval)
	s.mu.Unlock()
	h.next.Handle(context.Background(), r)
}

// redisLogger routes go-redis's own log lines (dial failures, pool
// messages) into the process's structured log, at WARN, where they are
// rate-limited like the rest.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Warn("redis client", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
}
