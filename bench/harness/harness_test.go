package main

import (
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestRecordNormalises(t *testing.T) {
	h := &harness{bin: "/tmp/run/bin", tmp: "/tmp/cb-1", shm: "/dev/shm/cb-2"}
	h.record([]string{"taskset", "-c", "0", "/tmp/run/bin/cacheproxy", "-listen", "127.0.0.1:41234", "-origin", "http://127.0.0.1:5555"})
	h.record([]string{"taskset", "-c", "0", "/tmp/run/bin/cacheproxy", "-listen", "127.0.0.1:40000", "-origin", "http://127.0.0.1:6666"})
	h.record([]string{"redis-server", "--port", "43339", "--save", ""})
	h.record([]string{"nginx", "-p", "/tmp/cb-1/nginx-398", "-c", "/tmp/cb-1/nginx-398/nginx.conf"})
	h.record([]string{"loadgen", "-url", "http://127.0.0.1:1/blob/{key}?size=1024"})
	want := []string{
		"taskset -c 0 $BIN/cacheproxy -listen 127.0.0.1:$PORT -origin http://127.0.0.1:$PORT",
		"redis-server --port $PORT --save ''",
		"nginx -p $TMP/nginx-XXXX -c $TMP/nginx-XXXX/nginx.conf",
		"loadgen -url 'http://127.0.0.1:$PORT/blob/{key}?size=1024'",
	}
	if strings.Join(h.commands, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(h.commands, "\n"), strings.Join(want, "\n"))
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{num(0), "0"}, {num(999), "999"}, {num(1000), "1,000"}, {num(1234567.4), "1,234,567"}, {num(-1500), "-1,500"},
		{ms(0.1234), "0.12"}, {ms(12.34), "12.3"}, {ms(1234.5), "1234"}, {ms(0), "—"},
		{pct(0.6927), "69.3%"}, {pct(-1), "—"}, {ratio(3, 2), "1.50×"}, {ratio(1, 0), "—"},
		{mib(64 << 20), "64.0 MiB"}, {axisLabel(12500), "12.5k"}, {axisLabel(40000), "40k"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, c := range []struct{ in, want float64 }{{0, 1}, {7, 10}, {41000, 50000}, {150, 200}, {1000, 1000}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestProcReading(t *testing.T) {
	pid := os.Getpid()
	if st, err := startTime(pid); err != nil || st == 0 {
		t.Errorf("startTime = %d, %v", st, err)
	}
	u := treeUsage(pid)
	if u.PeakRSS <= 0 {
		t.Errorf("peak RSS %d", u.PeakRSS)
	}
	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	if d := descendants(pid); !slices.Contains(d, child.Process.Pid) {
		t.Errorf("descendants(%d) = %v, without the child %d", pid, d, child.Process.Pid)
	}
	a := (&procs{}).snapshot(nil)
	if !a.clkValid || a.busy <= 0 {
		t.Errorf("machine CPU time not read: %+v", a)
	}
}

func TestHotChartIsSVG(t *testing.T) {
	rs := []row{
		{System: "a", Variant: "1 KiB, 64 conns", RPS: 30000, P99: 5},
		{System: "b <&>", Variant: "1 KiB, 64 conns", RPS: 20000, P99: 9},
		{System: "a", Variant: "16 KiB, 64 conns", RPS: 10000, P99: 12},
	}
	svg := hotChart(rs)
	d := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// background + 2 panels × 2 variants × 2 systems + 2 legend swatches
	if rects != 1+8+2 {
		t.Errorf("%d rects, want 11:\n%s", rects, svg)
	}
}

// nginx is held to a budget by a keys zone sized for the 4 KiB pages the
// budget holds, at 8,000 keys a megabyte rounded up; max_size alone
// overshoots.
func TestNginxCacheBlocksSizeTheKeysZone(t *testing.T) {
	for budget, want := range map[int64]string{
		64 << 20:  "keys_zone=bench:3m max_size=64m ",
		256 << 20: "keys_zone=bench:9m max_size=256m ",
		1 << 20:   "keys_zone=bench:1m max_size=1m ",
	} {
		httpBlock, _ := nginxCacheBlocks("/c", budget, "127.0.0.1:1")
		if !strings.Contains(httpBlock, want) {
			t.Errorf("budget %d: %q lacks %q", budget, httpBlock, want)
		}
	}
}

// The rounds of a load are combined by median, not mean or best: one
// slow round (the machine was busy) moves nothing, and every round's
// throughput is kept.
func TestMedianRow(t *testing.T) {
	runs := []row{
		{RPS: 100, P99: 2, CPUPerReq: 10, Requests: 600, Errors: 1, OriginReqs: 0, PeakRSS: 5, OtherLoad: 0.1, Tiers: map[string]int64{"HIT-L1": 600}},
		{RPS: 40, P99: 9, CPUPerReq: 30, Requests: 240, OriginReqs: 2, PeakRSS: 7, OtherLoad: 0.9, Retried: true, Tiers: map[string]int64{"HIT-L1": 238, "MISS": 2}},
		{RPS: 90, P99: 3, CPUPerReq: 11, Requests: 540, OriginReqs: 0, PeakRSS: 6, OtherLoad: 0.2, Tiers: map[string]int64{"HIT-L1": 540}},
	}
	r := medianRow(runs)
	if r.RPS != 90 || r.P99 != 3 || r.CPUPerReq != 11 {
		t.Errorf("RPS, P99, CPU = %v, %v, %v; want the medians 90, 3, 11", r.RPS, r.P99, r.CPUPerReq)
	}
	if r.Requests != 1380 || r.Errors != 1 || r.OriginReqs != 2 || r.Tiers["HIT-L1"] != 1378 || r.Tiers["MISS"] != 2 {
		t.Errorf("counts not summed: %+v", r)
	}
	if r.PeakRSS != 7 || r.OtherLoad != 0.9 || !r.Retried {
		t.Errorf("peaks: RSS %d, other load %v, retried %v; want the worst round's", r.PeakRSS, r.OtherLoad, r.Retried)
	}
	if want := []float64{100, 40, 90}; !slices.Equal(r.RPSRuns, want) {
		t.Errorf("RPSRuns = %v, want %v", r.RPSRuns, want)
	}
	if even := medianRow(runs[:2]); even.RPS != 70 {
		t.Errorf("median of two rounds = %v, want their mean 70", even.RPS)
	}
	// The origin alone has no origin count (-1); summing must keep it so.
	o := medianRow([]row{{RPS: 1, OriginReqs: -1}, {RPS: 2, OriginReqs: -1}})
	if o.OriginReqs != -1 {
		t.Errorf("origin alone: OriginReqs = %d, want -1", o.OriginReqs)
	}
}

func TestClusterURLAndKinds(t *testing.T) {
	if got, want := clusterURL([]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}),
		"redis://127.0.0.1:1?addr=127.0.0.1:2&addr=127.0.0.1:3"; got != want {
		t.Errorf("clusterURL = %q, want %q", got, want)
	}
	for mode, want := range map[string][]string{
		redisSingle:  {redisSingle},
		redisCluster: {redisCluster},
		redisBoth:    {redisSingle, redisCluster},
	} {
		if got := redisKinds(mode); !slices.Equal(got, want) {
			t.Errorf("redisKinds(%q) = %v, want %v", mode, got, want)
		}
	}
	if sharedName(redisCluster) == sharedName(redisSingle) {
		t.Error("shared systems on one Redis and on a Cluster have the same name")
	}
	h := &harness{bin: "/b", tmp: "/tmp/cb-1", shm: "/dev/shm/cb-2"}
	h.record([]string{"redis-server", "--port", "40001", "--cluster-config-file", "/tmp/cb-1/redis-node-123456/nodes.conf"})
	if want := "redis-server --port $PORT --cluster-config-file $TMP/redis-node-XXXX/nodes.conf"; h.commands[0] != want {
		t.Errorf("recorded %q, want %q", h.commands[0], want)
	}
}

// TestTiersShowsEveryValue: the X-Cache counts of a row show every value
// counted, the most frequent first, those the harness never heard of
// included (PASS and ERROR were once left out by a list of known values).
func TestTiersShowsEveryValue(t *testing.T) {
	got := tiers(map[string]int64{"HIT-L1": 5000, "PASS": 7000, "ERROR": 1, "SOMETHING-NEW": 1})
	if want := "PASS 7,000, HIT-L1 5,000, ERROR 1, SOMETHING-NEW 1"; got != want {
		t.Errorf("tiers = %q, want %q", got, want)
	}
	if got := tiers(nil); got != "" {
		t.Errorf("tiers(nil) = %q, want nothing", got)
	}
}
