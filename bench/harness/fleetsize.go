package main

// The fleet's cost by size: 1, 10, 50 and 100 cacheproxy instances on one
// Redis, idle and under light load (part of the scale scenario). What
// grows with N, and how: Redis's commands and CPU at idle, the pub/sub
// messages it delivers, an idle instance's CPU, purge latency, fleet
// coalescing of one cold key, and Redis commands per client request.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// fleetSizes are the fleet sizes measured; fleetSizesQuick with -quick.
var (
	fleetSizes      = []int{1, 10, 50, 100}
	fleetSizesQuick = []int{1, 10}
)

// fleetSizeStats is the measurement of one fleet size.
type fleetSizeStats struct {
	N int `json:"instances"`
	// At idle, over IdleSeconds.
	IdleSeconds      float64 `json:"idle_seconds"`
	RedisOpsPerSec   float64 `json:"redis_ops_per_sec"`   // commandstats calls, script calls included
	RedisCPU         float64 `json:"redis_cpu"`           // of one core
	DeliveriesPerSec float64 `json:"pubsub_deliveries_s"` // messages delivered to the instances
	InstanceCPU      float64 `json:"instance_cpu"`        // mean, of one core
	// Purges, one at a time, rotating over the instances.
	URLPurges             latencies `json:"url_purges"`
	TagPurges             latencies `json:"tag_purges"`
	DeliveriesPerPurge    float64   `json:"pubsub_deliveries_per_purge"`
	OriginForColdKey      int64     `json:"origin_requests_cold_key"`
	ColdKeyRequests       int       `json:"cold_key_requests"`
	CommandsPerColdReq    float64   `json:"redis_commands_per_cold_request"`
	CommandsPerWarmReq    float64   `json:"redis_commands_per_warm_request"`
	StartSeconds          float64   `json:"start_seconds"`
	PeakRSSPerInstanceMiB float64   `json:"peak_rss_per_instance_mib"`
}

// latencies are the answers to a series of requests.
type latencies struct {
	P50, P95, Max float64 // ms
	Status        map[int]int
}

func (h *harness) fleetSizes(ctx context.Context) error {
	sizes := fleetSizes
	if h.opt.quick {
		sizes = fleetSizesQuick
	}
	// The instances are not pinned: a hundred processes on one CPU would
	// measure the run queue.
	pinned := h.ps.serverCPUs
	h.ps.serverCPUs = ""
	defer func() { h.ps.serverCPUs = pinned }()
	for _, n := range sizes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st, err := h.fleetSize(ctx, n)
		h.ps.stopAll()
		name := fmt.Sprintf("fleet of %d", n)
		if err != nil {
			h.fail(name, err)
			continue
		}
		h.results = append(h.results, row{Scenario: h.scenario, System: name, Variant: "fleet size", FleetSize: st})
		h.progress(fmt.Sprintf("%-14s redis %s ops/s %.1f%% CPU, %s deliveries/s, instance %.2f%% CPU, url purge p95 %s ms %v, tag %v, %.1f deliveries/purge, origin %d",
			name, num(st.RedisOpsPerSec), 100*st.RedisCPU, num(st.DeliveriesPerSec), 100*st.InstanceCPU,
			ms(st.URLPurges.P95), st.URLPurges.Status, st.TagPurges.Status, st.DeliveriesPerPurge, st.OriginForColdKey))
	}
	return nil
}

func (h *harness) fleetSize(ctx context.Context, n int) (*fleetSizeStats, error) {
	st := &fleetSizeStats{N: n}
	origin, err := h.startOrigin(originLatency)
	if err != nil {
		return nil, err
	}
	rds, err := h.startRedis()
	if err != nil {
		return nil, err
	}
	rc := redis.NewClient(&redis.Options{Addr: rds.redisAddr})
	defer rc.Close()
	start := time.Now()
	fronts, stop, err := h.startSmallFleet(origin, rds, n)
	defer stop()
	if err != nil {
		return nil, err
	}
	if err := awaitFleet(ctx, fronts, 60*time.Second); err != nil {
		return nil, err
	}
	st.StartSeconds = time.Since(start).Seconds()
	var pids []int
	for _, f := range fronts {
		pids = append(pids, f.pids...)
	}
	counter, err := countDeliveries(ctx, rc)
	if err != nil {
		return nil, err
	}
	defer counter.close()

	// Idle.
	time.Sleep(2 * time.Second) // the fleet's own start settles
	idle := 10 * time.Second
	if h.opt.quick {
		idle = 3 * time.Second
	}
	ops0, rcpu0, icpu0, d0 := redisCalls(ctx, rc), treeUsage(rds.pids...).CPU, treeUsage(pids...).CPU, counter.snapshot(ctx)
	t0 := time.Now()
	time.Sleep(idle)
	ops1, rcpu1, icpu1, d1 := redisCalls(ctx, rc), treeUsage(rds.pids...).CPU, treeUsage(pids...).CPU, counter.snapshot(ctx)
	wall := time.Since(t0)
	st.IdleSeconds = wall.Seconds()
	st.RedisOpsPerSec = float64(ops1-ops0) / wall.Seconds()
	st.RedisCPU = float64(rcpu1-rcpu0) / float64(wall)
	st.InstanceCPU = float64(icpu1-icpu0) / float64(wall) / float64(n)
	st.DeliveriesPerSec = (d1.all - d0.all) / wall.Seconds()

	// Purges, one at a time.
	purges := 20
	if h.opt.quick {
		purges = 5
	}
	p0 := counter.snapshot(ctx)
	st.URLPurges = purgeSeries(fronts, purges, func(i int) string {
		return "/cache?url=" + strings.ReplaceAll(purgePath[len("/cache?url="):], "{key}", strconv.Itoa(i))
	})
	st.TagPurges = purgeSeries(fronts, purges, func(i int) string { return "/cache?tag=t" + strconv.Itoa(i) })
	p1 := counter.snapshot(ctx)
	st.DeliveriesPerPurge = (p1.notEcho - p0.notEcho) / float64(2*purges)

	// One cold key asked of every instance at once (at least 20 requests).
	st.ColdKeyRequests = max(n, 20)
	o0, err := originCount(origin)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for i := range st.ColdKeyRequests {
		wg.Go(func() { get(fronts[i%n].url + "/blob/cold?size=1024") })
	}
	wg.Wait()
	o1, err := originCount(origin)
	if err != nil {
		return nil, err
	}
	st.OriginForColdKey = o1 - o0

	// Redis commands per client request, idle commands subtracted: 400
	// keys asked once (cold: a miss everywhere), then again of another
	// instance (warm: an L2 hit there).
	idleRate := st.RedisOpsPerSec
	perReq := func(shift int) float64 {
		c0, t0 := redisCalls(ctx, rc), time.Now()
		const keys = 400
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < keys; i = next.Add(1) - 1 {
					get(fronts[(int(i)+shift)%n].url + fmt.Sprintf("/blob/w%d?size=1024", i))
				}
			})
		}
		wg.Wait()
		c1 := redisCalls(ctx, rc)
		return (float64(c1-c0) - idleRate*time.Since(t0).Seconds()) / keys
	}
	st.CommandsPerColdReq = perReq(0)
	st.CommandsPerWarmReq = perReq(1)
	st.PeakRSSPerInstanceMiB = float64(treeUsage(pids...).PeakRSS) / float64(n) / (1 << 20)
	return st, nil
}

// startSmallFleet starts n small instances (1 MiB of L1, GOMAXPROCS=1,
// no drain on shutdown), eight at a time. stop stops them all at once.
func (h *harness) startSmallFleet(origin, rds *server, n int) (fronts []*server, stop func(), err error) {
	fronts = make([]*server, n)
	started := make([]*proc, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			addr, _, err := h.listen()
			if err != nil {
				errs[i] = err
				return
			}
			adminAddr, _, err := h.listen()
			if err != nil {
				errs[i] = err
				return
			}
			name := fmt.Sprintf("cacheproxy-%d", i+1)
			argv := []string{"env", "GOMAXPROCS=1", filepath.Join(h.bin, "cacheproxy"), "-listen", addr, "-origin", origin.url,
				"-admin-listen", adminAddr, "-log-level", "warn", "-key-prefix", "bench", "-redis", rds.url,
				"-l1-max-bytes", "1MiB", "-drain", "0"}
			p, err := h.launch(name, argv, addr, adminAddr)
			if err != nil {
				errs[i] = err
				return
			}
			fronts[i] = &server{name: name, url: "http://" + addr, addr: addr, admin: "http://" + adminAddr, pids: []int{p.Pid()}}
			started[i] = p
		})
	}
	wg.Wait()
	stop = func() {
		var wg sync.WaitGroup
		for _, p := range started {
			if p != nil {
				wg.Go(func() { h.ps.stop(p) })
			}
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return nil, stop, err
		}
	}
	return fronts, stop, nil
}

// awaitFleet waits until every instance may use its L1 and the first
// sees them all as members.
func awaitFleet(ctx context.Context, fronts []*server, within time.Duration) error {
	deadline := time.Now().Add(within)
	type fleetView struct {
		Fleet *struct {
			Self struct {
				LocalUsable bool `json:"local_usable"`
			} `json:"self"`
			Members []struct{} `json:"members"`
		} `json:"fleet"`
	}
	pending := append([]*server(nil), fronts...)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var still []*server
		for _, f := range pending {
			var v fleetView
			if err := getJSON(f.admin+"/stats", &v); err != nil || v.Fleet == nil || !v.Fleet.Self.LocalUsable {
				still = append(still, f)
			}
		}
		pending = still
		var v fleetView
		if len(pending) == 0 && getJSON(fronts[0].admin+"/stats", &v) == nil && v.Fleet != nil && len(v.Fleet.Members) == len(fronts) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the fleet of %d did not form within %v (%d instances not usable)", len(fronts), within, len(pending))
}

// purgeSeries sends count purges (path(i) on the admin listeners in turn),
// one at a time.
func purgeSeries(fronts []*server, count int, path func(int) string) latencies {
	l := latencies{Status: map[int]int{}}
	var ds []float64
	for i := range count {
		req, _ := http.NewRequest(http.MethodDelete, fronts[i%len(fronts)].admin+path(i), nil)
		t0 := time.Now()
		resp, err := httpClient.Do(req)
		d := float64(time.Since(t0)) / float64(time.Millisecond)
		if err != nil {
			l.Status[0]++
			continue
		}
		resp.Body.Close()
		l.Status[resp.StatusCode]++
		ds = append(ds, d)
	}
	sort.Float64s(ds)
	if len(ds) > 0 {
		l.P50, l.P95, l.Max = ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*95/100)], ds[len(ds)-1]
	}
	return l
}

// redisCalls returns the calls of every command Redis ran (INFO
// commandstats: a script's own calls included).
func redisCalls(ctx context.Context, rc *redis.Client) int64 {
	info, err := rc.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0
	}
	var sum int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.ParseInt(calls, 10, 64)
		sum += n
	}
	return sum
}

// deliveryCounter counts the pub/sub messages Redis delivers to the
// instances: every message published under the prefix, seen by a
// pattern subscription, times the channel's subscribers (PUBSUB NUMSUB,
// which does not count the pattern).
type deliveryCounter struct {
	ps *redis.PubSub
	rc *redis.Client
	mu sync.Mutex
	by map[string]*channelCount
}

type channelCount struct{ all, echo int64 }

type deliveries struct{ all, notEcho float64 }

func countDeliveries(ctx context.Context, rc *redis.Client) (*deliveryCounter, error) {
	c := &deliveryCounter{rc: rc, by: map[string]*channelCount{}}
	c.ps = rc.PSubscribe(ctx, "bench:*")
	if _, err := c.ps.Receive(ctx); err != nil {
		return nil, err
	}
	go func() {
		for m := range c.ps.Channel() {
			c.mu.Lock()
			cc := c.by[m.Channel]
			if cc == nil {
				cc = &channelCount{}
				c.by[m.Channel] = cc
			}
			cc.all++
			if strings.HasPrefix(m.Payload, "beat|") {
				cc.echo++
			}
			c.mu.Unlock()
		}
	}()
	return c, nil
}

// snapshot returns the deliveries so far: all, and those of messages
// other than heartbeat echoes. Subscriber counts are read now.
func (c *deliveryCounter) snapshot(ctx context.Context) deliveries {
	time.Sleep(100 * time.Millisecond) // what was published is received
	c.mu.Lock()
	counts := map[string]channelCount{}
	var chans []string
	for ch, cc := range c.by {
		counts[ch] = *cc
		chans = append(chans, ch)
	}
	c.mu.Unlock()
	var d deliveries
	if len(chans) == 0 {
		return d
	}
	subs, err := c.rc.PubSubNumSub(ctx, chans...).Result()
	if err != nil {
		return d
	}
	for ch, cc := range counts {
		k := float64(subs[ch])
		d.all += float64(cc.all) * k
		d.notEcho += float64(cc.all-cc.echo) * k
	}
	return d
}

func (c *deliveryCounter) close() { c.ps.Close() }

func (h *harness) fleetSizeSection(b *strings.Builder) {
	var rs []*fleetSizeStats
	for _, r := range h.rows("scale") {
		if r.FleetSize != nil {
			rs = append(rs, r.FleetSize)
		}
	}
	if len(rs) == 0 {
		return
	}
	b.WriteString("### The fleet's cost by size\n\n")
	b.WriteString("N cacheproxy instances (`-l1-max-bytes 1MiB`, `GOMAXPROCS=1`, not pinned) on one Redis, the fixed origin " +
		"(" + originLatency.String() + "). Idle: Redis's command calls (`INFO commandstats`, a script's own calls included) and CPU, " +
		"the pub/sub messages Redis delivered to the instances (every message under the prefix, from a pattern subscription, " +
		"times its channel's subscribers), an instance's mean CPU. Then URL and tag purges one at a time, rotating over the instances " +
		"(the pub/sub deliveries per purge exclude heartbeat echoes); one cold key asked of every instance at once (at least 20 " +
		"requests); 400 keys asked once (cold) and again of another instance (warm), 8 at a time, Redis commands per request " +
		"with the idle rate subtracted.\n\n")
	var rows [][]string
	for _, s := range rs {
		rows = append(rows, []string{strconv.Itoa(s.N), num(s.RedisOpsPerSec), fmt.Sprintf("%.1f", s.RedisOpsPerSec/float64(s.N)),
			fmt.Sprintf("%.2f%%", 100*s.RedisCPU), num(s.DeliveriesPerSec), fmt.Sprintf("%.2f", s.DeliveriesPerSec/float64(s.N)),
			fmt.Sprintf("%.2f%%", 100*s.InstanceCPU),
			purgeText(s.URLPurges), purgeText(s.TagPurges), fmt.Sprintf("%.0f (%.2f N)", s.DeliveriesPerPurge, s.DeliveriesPerPurge/float64(s.N)),
			fmt.Sprintf("%d of %d", s.OriginForColdKey, s.ColdKeyRequests),
			fmt.Sprintf("%.2f / %.2f", s.CommandsPerColdReq, s.CommandsPerWarmReq),
			fmt.Sprintf("%.0f", s.PeakRSSPerInstanceMiB), fmt.Sprintf("%.1f", s.StartSeconds)})
	}
	table(b, []string{"N", "Redis cmd/s idle", "per instance", "Redis CPU idle", "pub/sub deliveries/s idle", "per instance",
		"instance CPU idle", "URL purge p50/p95/max ms (status)", "tag purge p50/p95/max ms (status)", "deliveries per purge",
		"origin requests, one cold key", "Redis cmd per request cold / warm", "peak RSS per instance MiB", "fleet formed in s"}, rows)
}

func purgeText(l latencies) string {
	var codes []string
	for c, k := range l.Status {
		codes = append(codes, fmt.Sprintf("%d×%d", k, c))
	}
	sort.Strings(codes)
	return fmt.Sprintf("%s / %s / %s (%s)", ms(l.P50), ms(l.P95), ms(l.Max), strings.Join(codes, ", "))
}
