package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// loadOut is the part of loadgen's JSON the harness reads.
type loadOut struct {
	DurationS     float64           `json:"duration_s"`
	Count         uint64            `json:"count"`
	Errors        uint64            `json:"errors"`
	Failures      uint64            `json:"failures"`
	Unsent        uint64            `json:"unsent"`
	ErrorSamples  []string          `json:"error_samples"`
	ThroughputRPS float64           `json:"throughput_rps"`
	Status        map[string]uint64 `json:"status"`
	XCache        map[string]uint64 `json:"x_cache"`
	LatencyMS     struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p999"`
		Max  float64 `json:"max"`
	} `json:"latency_ms"`
}

// runTool runs a load tool in the foreground, pinned to the load CPU,
// killed if it outlives its duration by a minute, and returns its stdout.
func (h *harness) runTool(ctx context.Context, budget time.Duration, argv ...string) ([]byte, error) {
	tool := filepath.Base(argv[0])
	if h.loadCPU != "" {
		argv = append([]string{"taskset", "-c", h.loadCPU}, argv...)
	}
	h.record(argv)
	ctx, cancel := context.WithTimeout(ctx, budget+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String() + "\n" + out.String())
		if len(msg) > 400 {
			msg = msg[:400] + "…"
		}
		return out.Bytes(), fmt.Errorf("%s: %w: %s", tool, err, msg)
	}
	return out.Bytes(), nil
}

// loadgen runs bench/loadgen with args and decodes its output.
func (h *harness) loadgen(ctx context.Context, budget time.Duration, args ...string) (loadOut, error) {
	var o loadOut
	b, err := h.runTool(ctx, budget, append([]string{filepath.Join(h.bin, "loadgen")}, args...)...)
	if err != nil {
		return o, err
	}
	err = json.Unmarshal(b, &o)
	return o, err
}

// wrkLua rotates wrk over keys URLs and prints its summary as JSON, with
// p99.9, which wrk's own report lacks. Arguments after --: number of keys,
// path before the key, and what follows the key.
const wrkLua = `local reqs = {}
local i = 0
function init(args)
  for k = 0, tonumber(args[1]) - 1 do
    reqs[#reqs + 1] = wrk.format("GET", args[2] .. k .. args[3])
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function done(s, lat, _)
  local e = s.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    s.requests, s.duration, e.connect, e.read, e.write, e.status, e.timeout,
    lat:percentile(50), lat:percentile(99), lat:percentile(99.9), lat.max))
end
`

type wrkOut struct {
	Requests   uint64  `json:"requests"`
	DurationUS float64 `json:"duration_us"`
	Connect    uint64  `json:"connect"`
	Read       uint64  `json:"read"`
	Write      uint64  `json:"write"`
	Status     uint64  `json:"status"`
	Timeout    uint64  `json:"timeout"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
	P999US     float64 `json:"p999_us"`
	MaxUS      float64 `json:"max_us"`
}

// wrk runs wrk -t1 with conns connections for d against base+path, path
// being before + key + after for keys 0..keys-1 in turn.
func (h *harness) wrk(ctx context.Context, base, before, after string, keys, conns int, d time.Duration) (wrkOut, error) {
	var o wrkOut
	script := filepath.Join(h.tmp, "rotate.lua")
	if err := os.WriteFile(script, []byte(wrkLua), 0o644); err != nil {
		return o, err
	}
	// wrk takes whole seconds only.
	secs := max(int(d.Round(time.Second)/time.Second), 1)
	b, err := h.runTool(ctx, d, "wrk", "-t1", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", secs),
		"--timeout", "5s", "-s", script, base, "--", strconv.Itoa(keys), before, after)
	if err != nil {
		return o, err
	}
	_, js, ok := bytes.Cut(b, []byte("WRKJSON "))
	if !ok {
		return o, fmt.Errorf("wrk printed no summary: %s", b)
	}
	err = json.Unmarshal(bytes.TrimSpace(js), &o)
	return o, err
}

// proxyStats is the part of cacheproxy's GET /stats the harness reads.
type proxyStats struct {
	Requests       map[string]int64 `json:"requests"`
	OriginRequests int64            `json:"origin_requests"`
	Proxy          *proxyStats      `json:"proxy"`
	L1             *struct {
		Entries  int64 `json:"entries"`
		Bytes    int64 `json:"bytes"`
		MaxBytes int64 `json:"max_bytes"`
	} `json:"l1"`
}

// stats fetches a cacheproxy's /stats. The counters are read from
// "proxy" when present, else from the top level.
func stats(s *server) (proxyStats, error) {
	var st proxyStats
	if err := getJSON(s.admin+"/stats", &st); err != nil {
		return st, err
	}
	if st.Proxy != nil {
		st.Requests, st.OriginRequests = st.Proxy.Requests, st.Proxy.OriginRequests
	}
	return st, nil
}

// measureAround runs load (which returns how many requests it sent) and
// fills r with what the servers did meanwhile: CPU per request and peak
// RSS of the counted processes, the other load on the machine, the
// requests that reached origin, and cacheproxy's X-Cache counts summed
// over cps.
func (h *harness) measureAround(r *row, origin *server, counted []int, cps []*server, load func() (uint64, error)) error {
	counters := func() (int64, map[string]int64, error) {
		o, err := originCount(origin)
		if err != nil {
			return 0, nil, err
		}
		s, err := sumStats(cps)
		return o, s, err
	}
	o0, s0, err := counters()
	if err != nil {
		return err
	}
	snap0 := h.ps.snapshot(counted)
	requests, err := load()
	if err != nil {
		return err
	}
	snap1 := h.ps.snapshot(counted)
	o1, s1, err := counters()
	if err != nil {
		return err
	}
	r.CPUPerReq, r.PeakRSS = usageDelta(snap0.servers, snap1.servers, requests)
	r.OtherLoad = otherLoad(snap0, snap1)
	r.OriginReqs = o1 - o0
	if len(cps) > 0 {
		r.Tiers = delta(s0, s1)
	}
	return nil
}

// sumStats adds up the request counters of several instances.
func sumStats(ss []*server) (map[string]int64, error) {
	sum := map[string]int64{}
	for _, s := range ss {
		st, err := stats(s)
		if err != nil {
			return nil, err
		}
		for k, v := range st.Requests {
			sum[k] += v
		}
	}
	return sum, nil
}

// delta returns after - before, key by key, without zeros.
func delta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for k, v := range after {
		if n := v - before[k]; n != 0 {
			d[k] = n
		}
	}
	return d
}

// originCount returns how many /blob/ requests the fixed origin served.
func originCount(origin *server) (int64, error) {
	b, err := get(origin.url + "/__count")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// varnishObjects returns the objects and bytes Varnish's malloc storage
// holds.
func varnishObjects(s *server) (objects, bytes int64) {
	out, err := exec.Command("varnishstat", "-n", s.varnishDir, "-1", "-f", "MAIN.n_object", "-f", "SMA.s0.g_bytes").Output()
	if err != nil {
		return -1, -1
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "MAIN.n_object":
			objects = n
		case "SMA.s0.g_bytes":
			bytes = n
		}
	}
	return objects, bytes
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func get(url string) ([]byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

func getJSON(url string, v any) error {
	b, err := get(url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
