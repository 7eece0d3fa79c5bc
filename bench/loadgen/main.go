// Command loadgen is the benchmarks' HTTP load generator. It sends GET (or
// any method) requests to URL templates whose {key} is replaced by a key
// drawn from a distribution, in one of two modes, and prints one JSON
// object with the counts and latency percentiles.
//
//   - closed loop (-c N): N requests in flight at all times, each sent when
//     the previous one ends. Measures throughput; like wrk.
//   - open loop (-rate R): requests are due at a fixed rate whether or not
//     the earlier ones have come back, and latency runs from the time each
//     was due. Measures latency at a given load without coordinated
//     omission hiding a stalled server.
//
// A trace can be sent in two runs (say a closed-loop warm-up, then an
// open-loop measurement): the second with -skip set to the first's
// -requests continues the same key sequence.
//
// With -simulate it sends nothing: it replays the same key trace (same
// -dist, -keys, -zipf-s, -seed, -requests) through an ideal LFU cache of
// each -capacity and an unbounded cache, and prints their hit ratios.
//
// Examples:
//
//	loadgen -c 64 -duration 10s -dist uniform -keys 100 -url 'http://127.0.0.1:8080/blob/{key}?size=1024'
//	loadgen -rate 5000 -c 512 -duration 30s -dist zipf -keys 1000000 -url 'http://127.0.0.1:8080/blob/{key}'
//	loadgen -simulate -dist zipf -keys 1000000 -requests 150000 -capacity 50000,20000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// output is the JSON printed for a load run.
type output struct {
	Mode          string            `json:"mode"` // "closed" or "open"
	Targets       []string          `json:"targets"`
	Method        string            `json:"method"`
	Dist          string            `json:"dist"`
	Keys          uint64            `json:"keys"`
	Seed          uint64            `json:"seed"`
	Connections   int               `json:"connections"`
	Rate          float64           `json:"rate,omitempty"`
	DurationS     float64           `json:"duration_s"` // first send to last response
	Count         uint64            `json:"count"`      // requests that ended, with a response or not
	Errors        uint64            `json:"errors"`     // failures plus responses other than 2xx/3xx (as wrk counts)
	Failures      uint64            `json:"failures"`   // no response: connect, timeout, reset
	Unsent        uint64            `json:"unsent,omitempty"`
	ErrorSamples  []string          `json:"error_samples,omitempty"`
	ThroughputRPS float64           `json:"throughput_rps"`
	Status        map[string]uint64 `json:"status"`
	XCache        map[string]uint64 `json:"x_cache"`
	LatencyMS     latencyMS         `json:"latency_ms"`
}

type latencyMS struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func mainErr() error {
	var (
		urls    []string
		headers []string
	)
	flag.Func("url", "URL template, {key} replaced by the key; repeat to rotate requests over several targets", func(s string) error {
		urls = append(urls, s)
		return nil
	})
	flag.Func("H", `request header "Name: value"; repeatable`, func(s string) error {
		headers = append(headers, s)
		return nil
	})
	method := flag.String("method", http.MethodGet, "request method")
	conns := flag.Int("c", 64, "closed loop: concurrent requests; open loop: the most in flight per target")
	rate := flag.Float64("rate", 0, "open loop at this many requests per second; 0 means closed loop")
	duration := flag.Duration("duration", 10*time.Second, "how long to send; always bounds the run")
	requests := flag.Uint64("requests", 0, "stop after this many requests (0: duration only)")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	dist := flag.String("dist", "uniform", "key distribution: seq, uniform (uniform-hot) or zipf")
	keys := flag.Uint64("keys", 100, "number of distinct keys, 0..keys-1")
	zipfS := flag.Float64("zipf-s", 1.01, "Zipf exponent s (> 1)")
	seed := flag.Uint64("seed", 1, "seed of the key sequence")
	skip := flag.Uint64("skip", 0, "discard the first keys of the sequence: continue the trace of an earlier run of -requests skip")
	sim := flag.Bool("simulate", false, "send nothing: print the hit ratios of ideal LFU and unbounded caches on the trace")
	capacities := flag.String("capacity", "", "-simulate: comma-separated LFU capacities, in objects")
	flag.Parse()

	gen, err := newKeyGen(*dist, *keys, *zipfS, *seed)
	if err != nil {
		return err
	}
	for range *skip {
		gen.Uint64()
	}
	if *sim {
		return simulateMain(gen, *requests, *capacities)
	}

	l := load{method: *method, header: http.Header{}, conns: *conns, rate: *rate,
		duration: *duration, requests: *requests, timeout: *timeout, gen: gen, open: *rate > 0}
	if len(urls) == 0 {
		return errors.New("-url is required")
	}
	for _, u := range urls {
		l.targets = append(l.targets, parseTemplate(u))
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("-H %q: want \"Name: value\"", h)
		}
		l.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if l.conns < 1 || l.duration <= 0 || l.timeout <= 0 || l.rate < 0 {
		return errors.New("-c, -duration and -timeout must be positive, -rate not negative")
	}

	// SIGINT/SIGTERM end the run early; what was measured is still printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, elapsed := run(ctx, l)

	out := output{Mode: "closed", Targets: urls, Method: l.method, Dist: *dist, Keys: *keys, Seed: *seed,
		Connections: l.conns, Rate: l.rate, DurationS: elapsed.Seconds(),
		Failures: t.failures, Unsent: t.unsent, ErrorSamples: t.samples,
		Status: map[string]uint64{}, XCache: t.xcache, LatencyMS: latencies(&t.lat)}
	if l.open {
		out.Mode = "open"
	}
	out.Count = t.failures
	out.Errors = t.failures
	for code, n := range t.status {
		out.Status[statusKey(code)] = n
		out.Count += n
		if code < 200 || code >= 400 {
			out.Errors += n
		}
	}
	if elapsed > 0 {
		out.ThroughputRPS = float64(out.Count) / elapsed.Seconds()
	}
	return writeJSON(out)
}

func latencies(h *hist) latencyMS {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return latencyMS{
		P50: ms(h.percentile(50)), P90: ms(h.percentile(90)), P99: ms(h.percentile(99)),
		P999: ms(h.percentile(99.9)), Max: ms(time.Duration(h.max)), Mean: ms(h.mean()),
	}
}

func simulateMain(gen keyGen, requests uint64, capacities string) error {
	if requests == 0 {
		return errors.New("-simulate needs -requests")
	}
	var caps []int
	for _, c := range strings.Split(capacities, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			return fmt.Errorf("-capacity: %q is not a count of objects", c)
		}
		caps = append(caps, n)
	}
	return writeJSON(simulate(gen, requests, caps))
}

func writeJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
