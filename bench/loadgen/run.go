package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load is one load run's configuration, validated by main.
type load struct {
	targets  []urlTemplate // requests rotate over them
	method   string
	header   http.Header
	open     bool    // open loop at rate; else closed loop
	conns    int     // closed: concurrent requests; open: the most in flight
	rate     float64 // open loop: requests per second
	duration time.Duration
	requests uint64 // 0: bounded by duration only
	timeout  time.Duration
	gen      keyGen
}

// tally is one worker's counts; each worker owns one, so recording needs no
// locks, and they are summed when the run ends.
type tally struct {
	lat      hist
	status   map[int]uint64
	xcache   map[string]uint64
	failures uint64 // no response at all
	unsent   uint64 // open loop: scheduled but never sent (hard deadline)
	samples  []string
}

func newTally() *tally {
	return &tally{status: map[int]uint64{}, xcache: map[string]uint64{}}
}

func (t *tally) merge(o *tally) {
	t.lat.merge(&o.lat)
	for k, v := range o.status {
		t.status[k] += v
	}
	for k, v := range o.xcache {
		t.xcache[k] += v
	}
	t.failures += o.failures
	t.unsent += o.unsent
	for _, s := range o.samples {
		if len(t.samples) < 5 {
			t.samples = append(t.samples, s)
		}
	}
}

// runner holds what the workers share.
type runner struct {
	l      load
	client *http.Client
	// hard ends every request still in flight: the run's duration plus
	// one request timeout, so the run always ends.
	hard context.Context

	mu  sync.Mutex // guards gen in closed loop, where workers draw keys
	seq atomic.Uint64
}

func newClient(l load) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        l.conns * len(l.targets),
		MaxIdleConnsPerHost: l.conns,
		// At most conns connections per target, as wrk -c would: in the
		// open loop, requests beyond that wait, and the wait counts in
		// their latency.
		MaxConnsPerHost:    l.conns,
		IdleConnTimeout:    90 * time.Second,
		DisableCompression: true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       l.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// run sends the load and returns the summed tally and the elapsed time,
// from the first send to the last response.
func run(ctx context.Context, l load) (*tally, time.Duration) {
	hard, cancel := context.WithTimeout(ctx, l.duration+l.timeout+time.Second)
	defer cancel()
	r := &runner{l: l, client: newClient(l), hard: hard}
	defer r.client.CloseIdleConnections()

	tallies := make([]*tally, l.conns)
	for i := range tallies {
		tallies[i] = newTally()
	}
	var wg sync.WaitGroup
	start := time.Now()
	if l.open {
		jobs := make(chan job, 1<<16)
		for _, t := range tallies {
			wg.Go(func() { r.openWorker(jobs, t) })
		}
		r.dispatch(ctx, start, jobs)
	} else {
		stopAt := start.Add(l.duration)
		for _, t := range tallies {
			wg.Go(func() { r.closedWorker(ctx, stopAt, t) })
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	sum := newTally()
	for _, t := range tallies {
		sum.merge(t)
	}
	return sum, elapsed
}

// job is one open-loop request: its key, target and the time it was due.
type job struct {
	key    uint64
	target int
	due    time.Time
}

// dispatch schedules request i at start + i/rate, whatever happened to the
// earlier ones. Latency is measured from that due time, not from the moment
// a worker got to send it, so a stalled server is charged for the requests
// it delayed (no coordinated omission).
func (r *runner) dispatch(ctx context.Context, start time.Time, jobs chan<- job) {
	defer close(jobs)
	for i := uint64(0); r.l.requests == 0 || i < r.l.requests; i++ {
		off := time.Duration(float64(i) * float64(time.Second) / r.l.rate)
		if off >= r.l.duration {
			return
		}
		due := start.Add(off)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		select {
		case jobs <- job{key: r.l.gen.Uint64(), target: int(i % uint64(len(r.l.targets))), due: due}:
		case <-ctx.Done():
			return
		}
	}
}

func (r *runner) openWorker(jobs <-chan job, t *tally) {
	for j := range jobs {
		if r.hard.Err() != nil {
			t.unsent++
			continue
		}
		r.send(j.key, j.target, j.due, t)
	}
}

func (r *runner) closedWorker(ctx context.Context, stopAt time.Time, t *tally) {
	for ctx.Err() == nil && time.Now().Before(stopAt) {
		n := r.seq.Add(1)
		if r.l.requests > 0 && n > r.l.requests {
			return
		}
		r.mu.Lock()
		key := r.l.gen.Uint64()
		r.mu.Unlock()
		r.send(key, int((n-1)%uint64(len(r.l.targets))), time.Now(), t)
	}
}

// send makes one request and records its outcome in t; latency runs from
// due to the end of the response body.
func (r *runner) send(key uint64, target int, due time.Time, t *tally) {
	req, err := http.NewRequestWithContext(r.hard, r.l.method, r.l.targets[target].expand(key), nil)
	if err != nil {
		r.fail(t, err)
		return
	}
	for k, v := range r.l.header {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.fail(t, err)
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		r.fail(t, err)
		return
	}
	t.lat.record(time.Since(due))
	t.status[resp.StatusCode]++
	if xc := resp.Header.Get("X-Cache"); xc != "" {
		t.xcache[xc]++
	}
}

func (r *runner) fail(t *tally, err error) {
	t.failures++
	if len(t.samples) < 5 {
		t.samples = append(t.samples, err.Error())
	}
}

// statusKey renders a status code as a JSON object key.
func statusKey(code int) string { return strconv.Itoa(code) }
