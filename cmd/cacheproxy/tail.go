package main

// GET /tail: the requests this instance answers, live, as newline-delimited
// JSON (one served object a line), for cacheproxy tail. It is bounded so
// that it cannot slow the proxy: while nobody tails, a request pays one
// atomic load; while someone does, one non-blocking send per tail whose
// filter it matches. A tail that does not keep up loses lines (counted, and
// reported in the stream as {"dropped": n}) rather than holding a request.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
)

const (
	// maxTails bounds the tails open at once on one instance.
	maxTails = 8
	// tailBuffer is how many lines a tail may fall behind before it
	// drops them.
	tailBuffer = 1024
	// tailTick is how often a tail reports dropped lines and, when
	// idle, writes nothing but checks the client is still there.
	tailTick = time.Second
)

// tailHub broadcasts served requests to the open tails. The zero value is
// ready; safe for concurrent use.
type tailHub struct {
	mu   sync.Mutex                 // serializes subscribe and unsubscribe
	subs atomic.Pointer[[]*tailSub] // an immutable slice, replaced whole
}

// tailSub is one open tail.
type tailSub struct {
	filter  tailFilter
	ch      chan served
	dropped atomic.Int64
}

// watched reports whether any tail is open.
func (h *tailHub) watched() bool {
	p := h.subs.Load()
	return p != nil && len(*p) > 0
}

// publish offers rec to every tail whose filter it matches, never
// waiting: a tail whose buffer is full loses it.
func (h *tailHub) publish(rec served) {
	p := h.subs.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		if !s.filter.match(rec) {
			continue
		}
		select {
		case s.ch <- rec:
		default:
			s.dropped.Add(1)
		}
	}
}

// subscribe opens a tail; ok is false when maxTails are open.
func (h *tailHub) subscribe(f tailFilter) (s *tailSub, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cur []*tailSub
	if p := h.subs.Load(); p != nil {
		cur = *p
	}
	if len(cur) >= maxTails {
		return nil, false
	}
	s = &tailSub{filter: f, ch: make(chan served, tailBuffer)}
	next := append(slices.Clone(cur), s)
	h.subs.Store(&next)
	return s, true
}

func (h *tailHub) unsubscribe(s *tailSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(*h.subs.Load()), func(x *tailSub) bool { return x == s })
	h.subs.Store(&next)
}

// tailFilter selects the requests a tail shows; the zero value shows all.
type tailFilter struct {
	prefix   string   // the path (with query) starts with it
	outcomes []string // X-Cache is one of these
	methods  []string
	host     string
	statuses []statusRange // the status is in one of these
}

type statusRange struct{ lo, hi int }

// parseTailFilter reads a tail's filter from its query: prefix=/api/,
// outcome=MISS,PASS (X-Cache results, as in proxy.Outcomes), status=5xx,404
// (codes or classes), method=GET, host=api.example.com.
func parseTailFilter(q url.Values) (tailFilter, error) {
	var f tailFilter
	for name := range q {
		switch name {
		case "prefix", "outcome", "status", "method", "host":
		default:
			return f, fmt.Errorf("unknown filter %q: want prefix, outcome, status, method or host", name)
		}
	}
	f.prefix, f.host = q.Get("prefix"), q.Get("host")
	if f.prefix != "" && !strings.HasPrefix(f.prefix, "/") {
		return f, fmt.Errorf("prefix %q must start with /", f.prefix)
	}
	for _, o := range list(q.Get("outcome")) {
		o = strings.ToUpper(o)
		if _, ok := proxy.OutcomeOf(o); !ok {
			var known []string
			for _, info := range proxy.Outcomes() {
				known = append(known, info.Label)
			}
			return f, fmt.Errorf("unknown outcome %q: want one of %s", o, strings.Join(known, ", "))
		}
		f.outcomes = append(f.outcomes, o)
	}
	for _, m := range list(q.Get("method")) {
		f.methods = append(f.methods, strings.ToUpper(m))
	}
	for _, v := range list(q.Get("status")) {
		r, err := parseStatusRange(v)
		if err != nil {
			return f, err
		}
		f.statuses = append(f.statuses, r)
	}
	return f, nil
}

// list splits a comma-separated filter value, dropping empty items.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseStatusRange reads "404" or a class, "5xx".
func parseStatusRange(v string) (statusRange, error) {
	if len(v) == 3 && strings.EqualFold(v[1:], "xx") && v[0] >= '1' && v[0] <= '5' {
		lo := int(v[0]-'0') * 100
		return statusRange{lo, lo + 99}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 || n > 599 {
		return statusRange{}, fmt.Errorf("status %q: want a code (404) or a class (5xx)", v)
	}
	return statusRange{n, n}, nil
}

func (f tailFilter) match(rec served) bool {
	if f.prefix != "" && !strings.HasPrefix(rec.Path, f.prefix) {
		return false
	}
	if f.host != "" && !strings.EqualFold(f.host, rec.Host) {
		return false
	}
	if len(f.outcomes) > 0 && !slices.Contains(f.outcomes, rec.XCache) {
		return false
	}
	if len(f.methods) > 0 && !slices.Contains(f.methods, rec.Method) {
		return false
	}
	if len(f.statuses) > 0 && !slices.ContainsFunc(f.statuses, func(r statusRange) bool { return r.lo <= rec.Status && rec.Status <= r.hi }) {
		return false
	}
	return true
}

// tailDropped is the line a tail writes after it lost lines.
type tailDropped struct {
	Dropped int64 `json:"dropped"`
}

// serveTail is GET /tail: the stream of the requests that match the
// query's filter, until the client goes away.
func (s *stack) serveTail(w http.ResponseWriter, r *http.Request) {
	f, err := parseTailFilter(r.URL.Query())
	if err != nil {
		admin.WriteJSON(w, http.StatusBadRequest, proxy.ErrorAnswer{Error: err.Error()})
		return
	}
	sub, ok := s.tail.subscribe(f)
	if !ok {
		admin.WriteJSON(w, http.StatusServiceUnavailable, proxy.ErrorAnswer{Error: fmt.Sprintf("%d tails are open on this instance already", maxTails)})
		return
	}
	defer s.tail.unsubscribe(sub)
	rc := http.NewResponseController(w)
	// The admin listener's read and write timeouts bound ordinary
	// answers; a tail lasts as long as its client wants it, each write
	// bounded on its own below.
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	write := func(v any) error {
		rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return enc.Encode(v)
	}
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(tailTick)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case rec := <-sub.ch:
			err = write(rec)
			for n := len(sub.ch); n > 0 && err == nil; n-- { // what else is there, then one flush
				err = write(<-sub.ch)
			}
		case <-tick.C:
			if n := sub.dropped.Swap(0); n > 0 {
				err = write(tailDropped{n})
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return // the client is gone or stalled
		}
	}
}
