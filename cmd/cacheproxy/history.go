package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
)

// The counters' recent history, for the dashboard: a tab that opens draws
// the last minutes at once instead of starting with empty charts. The
// server samples its counters every historyInterval into a ring of
// historySamples (5 minutes), whatever the traffic: fixed memory, one
// snapshot of the counters per interval.

const (
	historyInterval = 2 * time.Second
	historySamples  = 151 // 150 intervals
)

// sample is the proxy's counters at one time.
type sample struct {
	// T is the time of the sample, in milliseconds since the Unix epoch
	// (the dashboard's clock unit).
	T              int64            `json:"t"`
	Requests       map[string]int64 `json:"requests"`
	OriginRequests int64            `json:"origin_requests"`
}

// historyAnswer is the JSON of GET /history.
type historyAnswer struct {
	IntervalSeconds float64  `json:"interval_seconds"`
	Samples         []sample `json:"samples"` // oldest first
}

// history is the ring of samples. The zero value is ready; safe for
// concurrent use.
type history struct {
	mu   sync.Mutex
	ring [historySamples]sample
	next int // where the next sample goes
	n    int // samples held
}

func (h *history) add(s sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = s
	h.next = (h.next + 1) % len(h.ring)
	h.n = min(h.n+1, len(h.ring))
}

// since returns the samples newer than t (ms), oldest first.
func (h *history) since(t int64) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []sample{}
	for i := range h.n {
		s := h.ring[(h.next-h.n+i+len(h.ring))%len(h.ring)]
		if s.T > t {
			out = append(out, s)
		}
	}
	return out
}

// sampleNow adds a sample of p's counters.
func (h *history) sampleNow(p *proxy.Handler) {
	st := p.Stats()
	h.add(sample{T: time.Now().UnixMilli(), Requests: st.Requests, OriginRequests: st.OriginRequests})
}

// run samples p every historyInterval until ctx ends.
func (h *history) run(ctx context.Context, p *proxy.Handler) {
	tick := time.NewTicker(historyInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.sampleNow(p)
		}
	}
}

// serveHistory is GET /history[?since=ms]: the samples held, or those
// after since.
func (s *stack) serveHistory(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil {
			admin.WriteJSON(w, http.StatusBadRequest, proxy.ErrorAnswer{Error: "since: want milliseconds since the Unix epoch"})
			return
		}
	}
	admin.WriteJSON(w, http.StatusOK, historyAnswer{IntervalSeconds: historyInterval.Seconds(), Samples: s.history.since(since)})
}
