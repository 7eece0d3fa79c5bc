package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Faults: a steady load on 3 cacheproxy instances sharing one Redis, with
// one URL purge a second, through a fault of Redis or of the origin. Each
// fault gets a fresh stack, warmed up, then a before phase, the fault and
// an after phase. What it measures comes from HTTP only (the instances'
// listeners and admin API, the origin's /__count and /__bump) and the
// faults are process signals and a FLUSHALL: nothing depends on the
// proxy's internals.
const (
	faultKeys       = 200             // hot keys, all cached after the warm-up (max-age=300)
	faultHold       = 5 * time.Second // how long a process stays down or stopped; the during phase lasts at least this
	faultPurgeEvery = time.Second
	// faultL1TTL is the instances' -l1-ttl: the default. It is also how
	// long an instance cut off from Redis may go on using its L1 (the
	// fleet's guarantee: a purge's 202 names the time by which it stops),
	// so a shorter one would send an outage to the origin once it passed.
	faultL1TTL = "30s"
)

// faultKind is one fault: inject starts it and returns when it is over
// (the process is back, or the command returned).
type faultKind struct {
	name, title string
	redis       bool // a Redis fault: the origin rate must stay within 1.5× before
	// hot: an origin fault on faultHotKeys keys that go stale every
	// second and allow stale-if-error, without purges: the origin rate
	// (its own count, and the instances' attempts, refused connections
	// included) must stay within 2× before, every request served.
	hot bool
	// cluster: a master of a Redis Cluster with replicas killed, the
	// instances without L1 (faultcluster.go); its goals are L2 hits.
	cluster bool
	inject  func(h *harness, ctx context.Context, st *faultStack) error
}

// The failing-origin faults (hot): faultHotKeys keys, fresh for a second,
// which the origin lets be served stale for five minutes if it fails.
const (
	faultHotKeys      = 5
	faultHotCache     = "max-age=1, stale-if-error=300"
	faultOriginFailed = 10 * time.Second
)

var faultKinds = []faultKind{
	{"redis-kill", "Redis killed (SIGKILL), restarted empty 5 s later", true, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.killRedis(h, ctx, faultHold) }},
	{"redis-restart", "Redis restarted empty (SIGKILL, restarted at once)", true, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.killRedis(h, ctx, 0) }},
	{"redis-freeze", "Redis frozen (SIGSTOP for 5 s, then SIGCONT)", true, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return freeze(ctx, st.redis) }},
	{"redis-flush", "Redis flushed (FLUSHALL)", true, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.flushRedis(ctx) }},
	{"redis-kill-purges", "Redis killed, restarted empty 5 s later; a tag or prefix purge a second meanwhile", true, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.killRedisPurging(h, ctx) }},
	{"origin-kill", "origin killed (SIGKILL), restarted 5 s later", false, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.killOrigin(h, ctx) }},
	{"origin-hang", "origin hung (SIGSTOP for 5 s, then SIGCONT)", false, false, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return freeze(ctx, st.origin) }},
	{"origin-500-hot", "origin answering 500 for 10 s, 5 hot keys (max-age=1, stale-if-error=300)", false, true, false,
		func(h *harness, ctx context.Context, st *faultStack) error {
			return st.failOrigin(ctx, faultOriginFailed)
		}},
	{"origin-refused-hot", "origin killed (connections refused) for 5 s, 5 hot keys (max-age=1, stale-if-error=300)", false, true, false,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.killOrigin(h, ctx) }},
	{"cluster-master-kill", "Redis Cluster master killed (SIGKILL; 3 masters + 3 replicas, L1 off), its replica promoted", false, false, true,
		func(h *harness, ctx context.Context, st *faultStack) error { return st.killMaster(h, ctx) }},
}

// faultStack is what one fault run started.
type faultStack struct {
	originAddr string
	origin     *proc
	redisAddr  string
	redisPort  int
	redis      *proc
	fronts     []*server
	counter    *originCounter
	purges     *purgeLoop
	keys       int           // hot keys loaded
	cluster    *clusterStack // the cluster fault's Cluster; nil for the others
}

func (st *faultStack) originURL() string { return "http://" + st.originAddr }

// faultPhases returns the lengths of the before and after phases.
func (h *harness) faultPhases() (before, after time.Duration) {
	if h.opt.quick {
		return 4 * time.Second, 6 * time.Second
	}
	return 10 * time.Second, 15 * time.Second
}

// faultRate is the load's request rate: the purge scenario's.
func (h *harness) faultRate() float64 { return h.purgeLoadRate() }

func (h *harness) faults(ctx context.Context) error {
	if h.loadCPU != "" {
		// The load runs in this process: pin it where loadgen would run.
		restore := pinSelf(h.loadCPU)
		defer restore()
	}
	for _, f := range faultKinds {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if h.opt.faults != "" && !slices.Contains(strings.Split(h.opt.faults, ","), f.name) {
			continue
		}
		err := h.faultRun(ctx, f)
		h.ps.stopAll()
		var np errNoPurge
		if errors.As(err, &np) {
			h.note(h.scenario, fmt.Sprintf("**Not available:** the admin listener answered %v to `DELETE %s`; the faults were not run.",
				np.status, strings.ReplaceAll(purgePath, "{key}", "0")))
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.fail(f.name, err)
		}
	}
	return nil
}

// startFaultStack starts the origin (with versions), Redis and three
// instances, and warms every key into every instance.
func (h *harness) startFaultStack(f faultKind) (*faultStack, error) {
	st := &faultStack{keys: faultKeys}
	var err error
	if st.originAddr, _, err = h.listen(); err != nil {
		return nil, err
	}
	originArgs := []string{"-versions"}
	if f.hot {
		st.keys = faultHotKeys
		originArgs = append(originArgs, "-cache-control", faultHotCache)
	}
	if st.origin, err = h.launchOrigin(st.originAddr, 0, originArgs...); err != nil {
		return nil, err
	}
	if st.redisAddr, st.redisPort, err = h.listen(); err != nil {
		return nil, err
	}
	if st.redis, err = h.launchRedis(st.redisAddr, st.redisPort); err != nil {
		return nil, err
	}
	origin := &server{url: st.originURL(), addr: st.originAddr}
	rds := &server{url: fmt.Sprintf("redis://%s/0", st.redisAddr)}
	for i := range 3 {
		s, err := h.startCacheproxy(fmt.Sprintf("cacheproxy-%d", i+1), origin, rds, "-l1-max-bytes", "64MiB", "-l1-ttl", faultL1TTL,
			"-drain", "0") // stopped at once between faults
		if err != nil {
			return nil, err
		}
		st.fronts = append(st.fronts, s)
	}
	if err := probePurge(st.fronts[0]); err != nil {
		return nil, err
	}
	if err := st.ageEpoch(); err != nil {
		return nil, err
	}
	for k := range st.keys {
		for _, f := range st.fronts {
			b, err := get(fmt.Sprintf("%s/blob/%d?size=1024", f.url, k))
			if err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
			if parseVersion(b) < 0 {
				return nil, fmt.Errorf("warm-up: /blob/%d carries no version: %.20q", k, b)
			}
		}
	}
	return st, nil
}

// faultRun measures one fault and adds its row.
func (h *harness) faultRun(ctx context.Context, f faultKind) error {
	start := h.startFaultStack
	if f.cluster {
		start = h.startClusterFaultStack
	}
	st, err := start(f)
	if err != nil {
		return err
	}
	var admins, urls []string
	for _, s := range st.fronts {
		urls, admins = append(urls, s.url), append(admins, s.admin)
	}
	snap0 := h.ps.snapshot(nil)
	t0 := time.Now()
	load := faultLoad{t0: t0, rate: h.faultRate(), keys: st.keys, targets: urls, conns: 256, timeout: 10 * time.Second}
	st.counter = &originCounter{t0: t0, url: st.originURL(), every: 200 * time.Millisecond, client: &http.Client{Timeout: 500 * time.Millisecond}}
	st.purges = &purgeLoop{t0: t0, every: faultPurgeEvery, keys: faultKeys, origin: st.originURL(), admins: admins}

	stop := make(chan struct{})
	cctx, ccancel := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		reqs   []reqRecord
		purges []purgeRecord
	)
	wg.Go(func() { reqs = load.run(stop) })
	if !f.hot && !f.cluster {
		wg.Go(func() { purges = st.purges.run(stop) })
	}
	wg.Go(func() { st.counter.run(cctx) })

	before, after := h.faultPhases()
	var w faultWindows
	var attempts int64 // origin requests the instances sent during the fault
	err = sleepCtx(ctx, before)
	if err == nil {
		w.faultStart = time.Since(t0)
		h.progress(fmt.Sprintf("%-14s injecting", f.name))
		attempts0 := originAttempts(st.fronts)
		err = f.inject(h, ctx, st)
		w.faultEnd = time.Since(t0)
		attempts = originAttempts(st.fronts) - attempts0
		w.duringEnd = max(w.faultEnd, w.faultStart+faultHold)
	}
	if err == nil {
		err = sleepCtx(ctx, time.Until(t0.Add(w.duringEnd+after)))
	}
	w.end = time.Since(t0)
	st.counter.sample()
	close(stop)
	ccancel()
	wg.Wait()
	if err != nil {
		return err
	}
	other := otherLoad(snap0, h.ps.snapshot(nil))

	fs := analyzeFault(reqs, purges, st.counter.result(), w)
	fs.Fault, fs.Title, fs.RedisFault, fs.HotOriginFault = f.name, f.title, f.redis, f.hot
	if st.cluster != nil {
		cs := analyzeCluster(reqs, st.cluster.victimKeys, w.start, st.cluster.at(st.cluster.killed, t0), st.cluster.at(st.cluster.promoted, t0), w.end)
		cs.VictimKeys, cs.SurvivorKeys = len(st.cluster.victimKeys), st.keys-len(st.cluster.victimKeys)
		fs.Cluster = &cs
	}
	if d := (w.faultEnd - w.faultStart).Seconds(); f.hot && d > 0 {
		fs.AttemptRPS = float64(attempts) / d
	}
	system := sysPurge
	if f.cluster {
		system = sysFaultCluster
	}
	r := row{System: system, Variant: f.name, Tool: "harness (in-process open loop)", Requests: uint64(len(reqs)),
		Errors: uint64(fs.Failed), Seconds: w.end.Seconds(), P50: fs.During.P50, P99: fs.During.P99, MaxMS: fs.During.Max,
		OtherLoad: other, Objects: -1, ObjectBytes: -1, HitRatio: -1, Fault: &fs}
	if w.end > 0 {
		r.RPS = float64(len(reqs)) / w.end.Seconds()
	}
	total := fs.Before.OriginReqs + fs.During.OriginReqs + fs.After.OriginReqs
	r.OriginReqs = int64(total)
	r.OriginRPS = total / w.end.Seconds()
	if len(reqs) > 0 {
		r.HitRatio = max(0, 1-total/float64(len(reqs)))
	}
	r.Note = fmt.Sprintf("stale reads %d; origin req/s %.1f / %.1f / %.1f", fs.Stale, fs.Before.OriginRPS, fs.During.OriginRPS, fs.After.OriginRPS)
	if f.hot {
		r.Note += fmt.Sprintf("; the instances' origin attempts during the fault %.1f/s (refused connections included)", fs.AttemptRPS)
	}
	h.add(r)
	return nil
}

// killRedis kills Redis with SIGKILL and starts an empty one on the same
// port after down.
func (st *faultStack) killRedis(h *harness, ctx context.Context, down time.Duration) error {
	syscall.Kill(st.redis.Pid(), syscall.SIGKILL)
	h.ps.stop(st.redis) // reaps it
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	p, err := h.launchRedis(st.redisAddr, st.redisPort)
	if err != nil {
		return err
	}
	st.redis = p
	return nil
}

// killRedisPurging is killRedis for faultHold, with a purge a second
// meanwhile, sent to the instances in turn, alternately of a tag and of
// a prefix that names one key (the URL purges of the purge loop go on
// too). Each answers 503 (the fleet cannot be told): what an instance
// drops then is what the origin sees.
func (st *faultStack) killRedisPurging(h *harness, ctx context.Context) error {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			q := "tag=" + url.QueryEscape(fmt.Sprintf("blob:%d", n))
			if n%2 == 1 {
				q = "prefix=" + url.QueryEscape(fmt.Sprintf("/blob/%d?", (n*37)%faultKeys))
			}
			req, _ := http.NewRequest(http.MethodDelete, st.fronts[n%len(st.fronts)].admin+"/cache?"+q, nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	err := st.killRedis(h, ctx, faultHold)
	close(stop)
	<-done
	return err
}

// ageEpoch makes the fleet's purge log look an hour old, as for a fleet
// that has run on this Redis that long: in a younger epoch Redis cannot
// know every instance that may serve (it may have restarted empty), and
// purges answer 202 until the epoch is older than the fleet's window
// (docs/consistency.md, point 6), which would cover the whole run. The
// faults then start from the steady state. The key and its form
// ("<epoch> <ms>") are tiers/shared's epochStartKey; the probe purge has
// started the epoch.
func (st *faultStack) ageEpoch() error {
	c := redis.NewClient(&redis.Options{Addr: st.redisAddr, DialTimeout: 2 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const meta = benchKeyPrefix + ":{" + benchKeyPrefix + "}:"
	epoch, err := c.Get(ctx, meta+"purge:epoch").Result()
	if err != nil {
		return fmt.Errorf("reading the purge epoch: %w", err)
	}
	began := time.Now().Add(-time.Hour).UnixMilli()
	return c.Set(ctx, meta+"purge:epoch-start", fmt.Sprintf("%s %d", epoch, began), 0).Err()
}

// flushRedis sends FLUSHALL.
func (st *faultStack) flushRedis(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: st.redisAddr, DialTimeout: 2 * time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.FlushAll(ctx).Err()
}

// killOrigin kills the origin with SIGKILL and starts it again on the same
// port faultHold later, its versions continuing above the highest given
// out, its counter added to the earlier one's.
func (st *faultStack) killOrigin(h *harness, ctx context.Context) error {
	raw, _ := originCount(&server{url: st.originURL()})
	syscall.Kill(st.origin.Pid(), syscall.SIGKILL)
	h.ps.stop(st.origin)
	st.counter.killed(raw)
	if err := sleepCtx(ctx, faultHold); err != nil {
		return err
	}
	p, err := h.launchOrigin(st.originAddr, 0, "-versions", "-version-base", strconv.FormatInt(st.purges.maxVersion(), 10))
	if err != nil {
		return err
	}
	st.origin = p
	return nil
}

// failOrigin makes the origin answer 500 on every blob for d.
func (st *faultStack) failOrigin(ctx context.Context, d time.Duration) error {
	resp, err := http.Post(fmt.Sprintf("%s/__fail?for=%s", st.originURL(), d), "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("origin /__fail: %s", resp.Status)
	}
	return sleepCtx(ctx, d)
}

// originAttempts returns the origin requests the instances have sent, as
// their /stats count them (refused connections included); -1 if one
// cannot tell.
func originAttempts(fronts []*server) int64 {
	var n int64
	for _, f := range fronts {
		st, err := stats(f)
		if err != nil {
			return -1
		}
		n += st.OriginRequests
	}
	return n
}

// freeze stops p with SIGSTOP for faultHold, then continues it.
func freeze(ctx context.Context, p *proc) error {
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		return err
	}
	defer syscall.Kill(p.Pid(), syscall.SIGCONT)
	return sleepCtx(ctx, faultHold)
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// pinSelf pins every thread of this process to cpus (threads started
// later inherit it) and returns a function that restores the affinity it
// had. Failures leave the process as it was.
func pinSelf(cpus string) (restore func()) {
	pid := strconv.Itoa(os.Getpid())
	out, err := exec.Command("taskset", "-p", pid).Output()
	if err != nil {
		return func() {}
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return func() {}
	}
	mask := f[len(f)-1]
	if exec.Command("taskset", "-a", "-p", "-c", cpus, pid).Run() != nil {
		return func() {}
	}
	return func() { exec.Command("taskset", "-a", "-p", mask, pid).Run() }
}
