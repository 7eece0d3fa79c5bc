package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Hot-key runs: 100 keys, every one a hit after warm-up, wrk -t1 in a
// closed loop. This is a throughput and CPU cost comparison: the caches
// all hold the same 100 objects, so what differs is the cost of a hit.
var (
	hotSizes = []int{1 << 10, 16 << 10}
	hotConns = []int{64, 256}
)

const hotKeys = 100

// A closed-loop run during which unrelated work used more than noisyLoad
// CPUs is measured again, at most maxRetries times in a whole run, and
// waiting for quiet takes at most quietBudget, so that a busy machine
// cannot stretch a run without bound. A quick run allows less of both.
const noisyLoad = 0.25

func (h *harness) maxRetries() int {
	if h.opt.quick {
		return 3
	}
	return 12
}

func (h *harness) quietBudget() time.Duration {
	if h.opt.quick {
		return 15 * time.Second
	}
	return 2 * time.Minute
}

// system brings up one system under test in front of origin. It returns
// the server clients talk to, the processes whose cost counts, and the
// cacheproxy instances among them (for /stats).
type system struct {
	name  string
	start func(h *harness, origin *server) (front *server, counted []int, ours []*server, err error)
}

func single(s *server, err error) (*server, []int, []*server, error) {
	if err != nil {
		return nil, nil, nil, err
	}
	return s, s.pids, nil, nil
}

func ours(s *server, err error) (*server, []int, []*server, error) {
	if err != nil {
		return nil, nil, nil, err
	}
	return s, s.pids, []*server{s}, nil
}

func (h *harness) hot(ctx context.Context) error {
	// -l1-ttl 5m: with no shared tier behind it, L1 keeps an entry as
	// long as the peers do (the origin's max-age=300); the default 30s
	// would expire the 100 keys in the middle of the runs.
	systems := []system{
		{sysOrigin, func(h *harness, o *server) (*server, []int, []*server, error) { return o, o.pids, nil, nil }},
		{sysL1, func(h *harness, o *server) (*server, []int, []*server, error) {
			return ours(h.startCacheproxy("cacheproxy", o, nil, "-l1-max-bytes", "256MiB", "-l1-ttl", "5m"))
		}},
		{sysNginx, func(h *harness, o *server) (*server, []int, []*server, error) {
			return single(h.startNginxCache(o, 256<<20))
		}},
		{sysVarn, func(h *harness, o *server) (*server, []int, []*server, error) {
			return single(h.startVarnish(o, "256M"))
		}},
		{sysPlain, func(h *harness, o *server) (*server, []int, []*server, error) {
			return single(h.startPlain(o))
		}},
	}
	return h.hotSystems(ctx, systems)
}

// shared is the hot load against cacheproxy without L1: every hit is a
// Redis GET. Redis's CPU counts as the server's. With -redis both, one
// redis-server and a Cluster of three are up at once, each behind its own
// cacheproxy and origin, and the rounds take them in turn.
func (h *harness) shared(ctx context.Context) error {
	var systems []system
	for _, kind := range redisKinds(h.opt.redis) {
		systems = append(systems, system{sharedName(kind), func(h *harness, o *server) (*server, []int, []*server, error) {
			r, err := h.startRedisKind(kind)
			if err != nil {
				return nil, nil, nil, err
			}
			s, err := h.startCacheproxy("cacheproxy", o, r, "-l1-max-bytes", "0")
			if err != nil {
				return nil, nil, nil, err
			}
			return s, append(s.pids, r.pids...), []*server{s}, nil
		}})
	}
	return h.hotSystems(ctx, systems)
}

// sharedName is the shared scenario's system on a kind of Redis.
func sharedName(kind string) string {
	if kind == redisCluster {
		return sysSharedCluster
	}
	return sysShared
}

// running is a system under test, up, with its own origin.
type running struct {
	sys           system
	origin, front *server
	counted       []int
	ours          []*server
	dead          bool // failed: measured no further
}

// hotSystems runs the hot load against every system. All of them are up
// at once, each with its own origin, and each load is measured in rounds
// that take the systems in turn, so that a slow drift of the machine's
// speed (it may be shared) weighs on every system alike; each figure
// reported is the median over the rounds.
func (h *harness) hotSystems(ctx context.Context, systems []system) error {
	defer h.ps.stopAll()
	var up []*running
	for _, sys := range systems {
		origin, err := h.startOrigin(0)
		if err != nil {
			h.fail(sys.name, err)
			continue
		}
		front, counted, cps, err := sys.start(h, origin)
		if err != nil {
			h.fail(sys.name, err)
			continue
		}
		up = append(up, &running{sys: sys, origin: origin, front: front, counted: counted, ours: cps})
	}
	for _, size := range hotSizes {
		after := fmt.Sprintf("?size=%d", size)
		for _, u := range up {
			if u.dead {
				continue
			}
			if err := h.warmHot(ctx, u, after); err != nil {
				u.dead = true
				h.fail(u.sys.name, err)
			}
		}
		for _, conns := range hotConns {
			runs := make([][]row, len(up))
			for round := range h.opt.rounds {
				for i, u := range up {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if u.dead {
						continue
					}
					// A short run first brings connections, goroutines
					// and worker threads up, outside the measurement; a
					// quick run skips it.
					if round == 0 && !h.opt.quick {
						if _, err := h.wrk(ctx, u.front.url, "/blob/", after, hotKeys, conns, time.Second); err != nil {
							u.dead = true
							h.fail(u.sys.name, err)
							continue
						}
					}
					r, err := h.measureHot(ctx, u, size, after, conns)
					if err != nil {
						u.dead = true
						h.fail(u.sys.name, err)
						continue
					}
					if h.opt.rounds > 1 {
						h.progress(fmt.Sprintf("%-26s %-18s round %d/%d: %.0f req/s", r.System, r.Variant, round+1, h.opt.rounds, r.RPS))
					}
					runs[i] = append(runs[i], r)
				}
			}
			for i := range up {
				if len(runs[i]) > 0 {
					h.add(medianRow(runs[i]))
				}
			}
		}
	}
	return nil
}

// warmHot fills u's cache with the hot keys of one size: two passes, the
// second finding any that an asynchronous or admission-filtered store
// dropped.
func (h *harness) warmHot(ctx context.Context, u *running, after string) error {
	for range 2 {
		if _, err := h.loadgen(ctx, 20*time.Second, "-dist", "seq", "-keys", fmt.Sprint(hotKeys),
			"-requests", fmt.Sprint(hotKeys), "-c", "4", "-duration", "20s", "-url", u.front.url+"/blob/{key}"+after); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// measureHot measures one run of the hot load against u. This machine
// may be shared: it waits a little for unrelated work to calm down, and
// measures a run that competed with it once more, keeping the quieter of
// the two.
func (h *harness) measureHot(ctx context.Context, u *running, size int, after string, conns int) (row, error) {
	name := u.sys.name
	h.quiet()
	r, err := h.measureWrk(ctx, u.front, u.origin, u.counted, u.ours, "/blob/", after, conns)
	if err != nil {
		return r, err
	}
	if r.OtherLoad > noisyLoad && h.retries < h.maxRetries() {
		h.retries++
		h.progress(fmt.Sprintf("%-26s %-18s other load %.2f CPUs: measuring again", name, sizeName(size), r.OtherLoad))
		h.quiet()
		again, err := h.measureWrk(ctx, u.front, u.origin, u.counted, u.ours, "/blob/", after, conns)
		if err != nil {
			return r, err
		}
		if again.OtherLoad < r.OtherLoad {
			r = again
		}
		r.Retried = true
	}
	r.System, r.Size, r.Conns = name, size, conns
	r.Variant = fmt.Sprintf("%s, %d conns", sizeName(size), conns)
	if u.front == u.origin {
		r.OriginReqs = -1
	}
	return r, nil
}

// medianRow combines the rounds of one load against one system: each
// rate, latency and cost is the median over the rounds (the rounds are
// few and noisy, so not the mean); counts are summed, peaks and noise
// are the worst seen. RPSRuns keeps every round's throughput.
func medianRow(runs []row) row {
	r := runs[0]
	r.Tiers = maps.Clone(r.Tiers)
	med := func(get func(row) float64) float64 {
		vs := make([]float64, len(runs))
		for i, x := range runs {
			vs[i] = get(x)
		}
		slices.Sort(vs)
		if n := len(vs); n%2 == 0 {
			return (vs[n/2-1] + vs[n/2]) / 2
		}
		return vs[len(vs)/2]
	}
	r.RPS = med(func(x row) float64 { return x.RPS })
	r.P50 = med(func(x row) float64 { return x.P50 })
	r.P99 = med(func(x row) float64 { return x.P99 })
	r.P999 = med(func(x row) float64 { return x.P999 })
	r.CPUPerReq = med(func(x row) float64 { return x.CPUPerReq })
	r.RPSRuns = nil
	for i, x := range runs {
		r.RPSRuns = append(r.RPSRuns, x.RPS)
		if i == 0 {
			continue
		}
		r.Requests += x.Requests
		r.Errors += x.Errors
		r.Seconds += x.Seconds
		if r.OriginReqs >= 0 {
			r.OriginReqs += x.OriginReqs
		}
		for k, v := range x.Tiers {
			if r.Tiers == nil {
				r.Tiers = map[string]int64{}
			}
			r.Tiers[k] += v
		}
		r.PeakRSS = max(r.PeakRSS, x.PeakRSS)
		r.OtherLoad = max(r.OtherLoad, x.OtherLoad)
		r.Retried = r.Retried || x.Retried
	}
	return r
}

// quiet waits for unrelated work to calm down: up to 10 s at a time and
// quietBudget in a whole run.
func (h *harness) quiet() {
	if left := h.quietBudget() - h.waited; left > 0 {
		h.waited += h.ps.waitQuiet(noisyLoad, min(left, 10*time.Second))
	}
}

// measureWrk runs one measured wrk load and reads the servers' usage, the
// origin's counter and cacheproxy's tiers around it.
func (h *harness) measureWrk(ctx context.Context, front, origin *server, counted []int, cps []*server, before, after string, conns int) (row, error) {
	r := row{Tool: "wrk", HitRatio: -1, Objects: -1, ObjectBytes: -1}
	var w wrkOut
	err := h.measureAround(&r, origin, counted, cps, func() (uint64, error) {
		var err error
		w, err = h.wrk(ctx, front.url, before, after, hotKeys, conns, h.opt.duration)
		return w.Requests, err
	})
	if err != nil {
		return r, err
	}
	r.Requests = w.Requests
	r.Seconds = w.DurationUS / 1e6
	if r.Seconds > 0 {
		r.RPS = float64(w.Requests) / r.Seconds
	}
	r.P50, r.P99, r.P999 = w.P50US/1e3, w.P99US/1e3, w.P999US/1e3
	r.Errors = w.Connect + w.Read + w.Write + w.Status + w.Timeout
	return r, nil
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}
