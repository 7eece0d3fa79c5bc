package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Stampede: 1,000 requests at once for one cold key, the origin taking
// 200 ms, so that they all arrive while the first fill is in flight. A
// cache that collapses concurrent misses sends the origin one request.
const (
	stampedeRequests = 1000
	stampedeLatency  = 200 * time.Millisecond
	stampedeTrials   = 3
)

const (
	sysOne          = "cacheproxy ×1 (+Redis)"
	sysThree        = "cacheproxy ×3 (one Redis)"
	sysOneCluster   = "cacheproxy ×1 (+Redis Cluster of 3)"
	sysThreeCluster = "cacheproxy ×3 (one Redis Cluster of 3)"
)

// stampedeNames are the cacheproxy systems of the stampede scenario on a
// kind of Redis: one instance and three.
func stampedeNames(kind string) (one, three string) {
	if kind == redisCluster {
		return sysOneCluster, sysThreeCluster
	}
	return sysOne, sysThree
}

func (h *harness) stampede(ctx context.Context) error {
	withRedis := func(kind string, n int) func(h *harness, o *server) ([]*server, []int, []*server, error) {
		return func(h *harness, o *server) ([]*server, []int, []*server, error) {
			r, err := h.startRedisKind(kind)
			if err != nil {
				return nil, nil, nil, err
			}
			counted := r.pids
			var fronts []*server
			for i := range n {
				s, err := h.startCacheproxy(fmt.Sprintf("cacheproxy-%d", i+1), o, r)
				if err != nil {
					return nil, nil, nil, err
				}
				fronts = append(fronts, s)
				counted = append(counted, s.pids...)
			}
			return fronts, counted, fronts, nil
		}
	}
	one := func(start func(*server) (*server, error)) func(h *harness, o *server) ([]*server, []int, []*server, error) {
		return func(h *harness, o *server) ([]*server, []int, []*server, error) {
			s, err := start(o)
			if err != nil {
				return nil, nil, nil, err
			}
			return []*server{s}, s.pids, nil, nil
		}
	}
	type stampedeSystem struct {
		name  string
		start func(h *harness, o *server) (fronts []*server, counted []int, cps []*server, err error)
	}
	var systems []stampedeSystem
	for _, kind := range redisKinds(h.opt.redis) {
		one, three := stampedeNames(kind)
		systems = append(systems, stampedeSystem{one, withRedis(kind, 1)}, stampedeSystem{three, withRedis(kind, 3)})
	}
	systems = append(systems, []stampedeSystem{
		{"nginx (proxy_cache_lock on)", one(func(o *server) (*server, error) { return h.startNginxCache(o, zipfBudget) })},
		{sysVarn, one(func(o *server) (*server, error) { return h.startVarnish(o, "64M") })},
	}...)
	for _, sys := range systems {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := func() error {
			origin, err := h.startOrigin(stampedeLatency)
			if err != nil {
				return err
			}
			fronts, counted, cps, err := sys.start(h, origin)
			if err != nil {
				return err
			}
			agg := row{System: sys.name, Variant: fmt.Sprintf("%d concurrent", stampedeRequests), HitRatio: -1, Objects: -1, ObjectBytes: -1}
			for t := range stampedeTrials {
				// A new cold key per trial; requests rotate over the
				// instances.
				args := []string{"-c", fmt.Sprint(stampedeRequests), "-requests", fmt.Sprint(stampedeRequests),
					"-duration", "30s", "-timeout", "20s", "-dist", "seq", "-keys", "1"}
				for _, f := range fronts {
					args = append(args, "-url", fmt.Sprintf("%s/blob/stampede-%d?size=1024", f.url, t))
				}
				r, err := h.measureLoad(ctx, origin, counted, cps, 30*time.Second, args...)
				if err != nil {
					return err
				}
				agg.Trials = append(agg.Trials, r.OriginReqs)
				agg.Requests += r.Requests
				agg.Errors += r.Errors
				agg.P50, agg.P99, agg.MaxMS = max(agg.P50, r.P50), max(agg.P99, r.P99), max(agg.MaxMS, r.MaxMS)
				agg.PeakRSS = r.PeakRSS
				if agg.Tiers == nil {
					agg.Tiers = map[string]int64{}
				}
				for k, v := range r.Tiers {
					agg.Tiers[k] += v
				}
				if r.Note != "" {
					agg.Note = r.Note
				}
			}
			for _, n := range agg.Trials {
				agg.OriginReqs = max(agg.OriginReqs, n)
			}
			h.add(agg)
			return nil
		}()
		h.ps.stopAll()
		if err != nil {
			h.fail(sys.name, err)
		}
	}
	return nil
}

func (h *harness) stampedeSection(b *strings.Builder) {
	fmt.Fprintf(b, "%d requests sent at once (one connection each) for one cold key, origin latency %s; %d trials, each with a new key. "+
		"With 3 instances the requests rotate over them. cacheproxy runs with its defaults and a private "+h.redisText()+". "+
		"Latencies are the worst over the trials; X-Cache counts are summed over them.\n\n", stampedeRequests, stampedeLatency, stampedeTrials)
	var rows [][]string
	for _, r := range h.rows("stampede") {
		var trials []string
		for _, n := range r.Trials {
			trials = append(trials, fmt.Sprint(n))
		}
		rows = append(rows, []string{r.System, strings.Join(trials, ", "), ms(r.P50), ms(r.P99), ms(r.MaxMS),
			num(float64(r.Errors)), tiers(r.Tiers), r.Note})
	}
	table(b, []string{"system", "origin requests per trial", "p50 ms", "p99 ms", "max ms", "errors", "X-Cache", "notes"}, rows)
}

func (h *harness) stampedeTargets() []target {
	var ts []target
	for _, name := range []string{sysOne, sysThree, sysOneCluster, sysThreeCluster} {
		r := h.find("stampede", name, "")
		if r == nil {
			continue
		}
		ok := len(r.Trials) > 0
		var parts []string
		for _, n := range r.Trials {
			ok = ok && n == 1
			parts = append(parts, fmt.Sprint(n))
		}
		ts = append(ts, target{goal: "stampede: exactly 1 origin request, " + name, known: true, met: ok,
			measured: strings.Join(parts, ", ") + " origin requests"})
	}
	return ts
}
