package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The fault scenario's load, purge loop and origin counter. They speak
// HTTP only (the instances' listeners and admin API, the origin's
// /__bump and /__count) and record what they saw with times from one
// clock, offsets from t0.

// faultLoad sends GET /blob/{key}?size=1024 at a fixed rate (open loop),
// keys drawn uniformly from 0..keys-1, rotating over targets, and records
// every request.
type faultLoad struct {
	t0      time.Time
	rate    float64
	keys    int
	targets []string // base URLs of the instances
	conns   int      // the most requests in flight per target
	timeout time.Duration
}

// run sends the load until stop is closed, waits for the requests in
// flight and returns the records in order of due time.
func (l faultLoad) run(stop <-chan struct{}) []reqRecord {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        l.conns * len(l.targets),
		MaxIdleConnsPerHost: l.conns,
		MaxConnsPerHost:     l.conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: l.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer tr.CloseIdleConnections()

	type job struct {
		i   int
		key int
		due time.Duration
	}
	jobs := make(chan job, 1<<16)
	var (
		mu   sync.Mutex
		recs []reqRecord
		wg   sync.WaitGroup
	)
	workers := l.conns * len(l.targets)
	for range workers {
		wg.Go(func() {
			var mine []reqRecord
			for j := range jobs {
				mine = append(mine, l.send(client, j.i%len(l.targets), j.key, j.due))
			}
			mu.Lock()
			recs = append(recs, mine...)
			mu.Unlock()
		})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; ; i++ {
		due := time.Duration(float64(i) * float64(time.Second) / l.rate)
		if d := time.Until(l.t0.Add(due)); d > 0 {
			select {
			case <-time.After(d):
			case <-stop:
			}
		}
		select {
		case <-stop:
			close(jobs)
			wg.Wait()
			sortRecords(recs)
			return recs
		default:
		}
		jobs <- job{i: i, key: rng.IntN(l.keys), due: due}
	}
}

// send makes one request and records it.
func (l faultLoad) send(client *http.Client, target, key int, due time.Duration) reqRecord {
	r := reqRecord{due: due, key: key, target: target, ver: -1}
	r.start = time.Since(l.t0)
	resp, err := client.Get(fmt.Sprintf("%s/blob/%d?size=1024", l.targets[target], key))
	if err != nil {
		r.end, r.err = time.Since(l.t0), shortErr(err)
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.end = time.Since(l.t0)
	if err != nil {
		r.err = shortErr(err)
		return r
	}
	r.status, r.ver, r.xcache = resp.StatusCode, parseVersion(body), resp.Header.Get("X-Cache")
	return r
}

// sortRecords puts records in order of due time. Workers finish out of
// order; the analysis does not care, but the timeline reads better.
func sortRecords(recs []reqRecord) {
	sort.Slice(recs, func(i, j int) bool { return recs[i].due < recs[j].due })
}

// shortErr keeps the end of an error, where net/http puts the cause.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 120 {
		s = s[i+2:]
	}
	return s
}

// purgeLoop purges one key a second, rotating over the instances' admin
// listeners: it bumps the key's version at the origin, then sends
// DELETE /cache?url=/blob/{key}?size=1024 and records the answer. Keys
// are taken in a fixed order that visits each of them once before any
// is purged again.
type purgeLoop struct {
	t0     time.Time
	every  time.Duration
	keys   int
	origin string   // base URL, for /__bump
	admins []string // admin base URLs

	mu      sync.Mutex
	maxVer  int64 // the highest version a bump answered
	lastVer map[int]int64
}

// run purges until stop is closed and returns the purges in order.
func (p *purgeLoop) run(stop <-chan struct{}) []purgeRecord {
	bumpClient := &http.Client{Timeout: time.Second}
	purgeClient := &http.Client{Timeout: 10 * time.Second}
	p.lastVer = map[int]int64{}
	var out []purgeRecord
	for n := 0; ; n++ {
		// A purge that took longer than a period (Redis frozen) is
		// followed by the next on the schedule, not by a burst that
		// catches up.
		n = max(n, int(time.Since(p.t0)/p.every))
		select {
		case <-stop:
			return out
		case <-time.After(time.Until(p.t0.Add(time.Duration(n) * p.every))):
		}
		// A stride coprime with keys visits every key once per cycle.
		key := (n*73 + 11) % p.keys
		rec := purgeRecord{key: key, target: n % len(p.admins)}
		p.mu.Lock()
		rec.ver = p.lastVer[key]
		p.mu.Unlock()
		if v, err := p.bump(bumpClient, key); err == nil {
			rec.ver, rec.bumped = v, true
			p.mu.Lock()
			p.lastVer[key] = v
			p.maxVer = max(p.maxVer, v)
			p.mu.Unlock()
		}
		u := p.admins[rec.target] + "/cache?url=" + url.QueryEscape(fmt.Sprintf("/blob/%d?size=1024", key))
		req, _ := http.NewRequest(http.MethodDelete, u, nil)
		rec.sent = time.Since(p.t0)
		resp, err := purgeClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rec.status = resp.StatusCode
		}
		rec.answered = time.Since(p.t0)
		out = append(out, rec)
	}
}

// bump increments key's version at the origin and returns it.
func (p *purgeLoop) bump(c *http.Client, key int) (int64, error) {
	resp, err := c.Post(fmt.Sprintf("%s/__bump?id=%d", p.origin, key), "text/plain", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bump: %s", resp.Status)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// maxVersion is the highest version the origin gave out: a restarted
// origin starts from it, so that no body it serves looks older than a
// purge asked for.
func (p *purgeLoop) maxVersion() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxVer
}

// originCounter samples the origin's /__count, summed over restarts.
// Safe for concurrent use.
type originCounter struct {
	t0     time.Time
	url    string // origin base URL
	every  time.Duration
	client *http.Client

	mu      sync.Mutex
	epoch   int   // incremented at each restart: a reading begun before is dropped
	offset  int64 // counts of the origins that were killed
	lastRaw int64
	samples []countSample
}

// run samples until ctx ends.
func (c *originCounter) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.sample()
		select {
		case <-ctx.Done():
		case <-time.After(c.every):
		}
	}
}

// sample reads the counter once; a failed read (origin down or stopped)
// is skipped.
func (c *originCounter) sample() {
	c.mu.Lock()
	epoch := c.epoch
	c.mu.Unlock()
	at := time.Since(c.t0)
	resp, err := c.client.Get(c.url + "/__count")
	if err != nil {
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	raw, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	c.lastRaw = raw
	// at is when the reading was sent; the count is at least what it
	// was then, and the samples stay in order.
	if n := len(c.samples); n > 0 && at < c.samples[n-1].at {
		at = c.samples[n-1].at
	}
	c.samples = append(c.samples, countSample{at, raw + c.offset})
}

// killed records that the origin was killed, its counter last read as
// raw: the next origin counts from zero on top of it.
func (c *originCounter) killed(raw int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += max(raw, c.lastRaw)
	c.lastRaw = 0
	c.epoch++
}

// result returns the samples taken.
func (c *originCounter) result() []countSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]countSample(nil), c.samples...)
}
