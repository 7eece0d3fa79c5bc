package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Scale-out: 1, 2 and 3 cacheproxy instances sharing one Redis behind
// nginx as a round-robin load balancer, against 3 independent nginx or
// Varnish caches behind the same balancer. Closed loop with a fixed
// request count, so every system sees the same trace and the hit ratios
// compare.
const scaleConns = 64

func (h *harness) scale(ctx context.Context) error {
	if err := h.fleetSizes(ctx); err != nil {
		return err
	}
	// A bound; the count normally ends the run first.
	requests, dur := 60_000, max(6*h.phase(), time.Minute)
	if h.opt.quick {
		requests, dur = 10_000, max(6*h.phase(), 20*time.Second)
	}
	type backends func(h *harness, o *server) (fronts []*server, counted []int, cps []*server, err error)
	ourN := func(n int) backends {
		return func(h *harness, o *server) ([]*server, []int, []*server, error) {
			r, err := h.startRedis()
			if err != nil {
				return nil, nil, nil, err
			}
			counted := r.pids
			var fronts []*server
			for i := range n {
				s, err := h.startCacheproxy(fmt.Sprintf("cacheproxy-%d", i+1), o, r, "-l1-max-bytes", "64MiB")
				if err != nil {
					return nil, nil, nil, err
				}
				fronts = append(fronts, s)
				counted = append(counted, s.pids...)
			}
			return fronts, counted, fronts, nil
		}
	}
	three := func(start func(*server) (*server, error)) backends {
		return func(h *harness, o *server) ([]*server, []int, []*server, error) {
			var fronts []*server
			var counted []int
			for range 3 {
				s, err := start(o)
				if err != nil {
					return nil, nil, nil, err
				}
				fronts = append(fronts, s)
				counted = append(counted, s.pids...)
			}
			return fronts, counted, nil, nil
		}
	}
	systems := []struct {
		name  string
		start backends
	}{
		{"cacheproxy ×1 (+Redis)", ourN(1)},
		{"cacheproxy ×2 (one Redis)", ourN(2)},
		{"cacheproxy ×3 (one Redis)", ourN(3)},
		{"nginx ×3 (independent)", three(func(o *server) (*server, error) { return h.startNginxCache(o, zipfBudget) })},
		{"varnish ×3 (independent)", three(func(o *server) (*server, error) { return h.startVarnish(o, "64M") })},
	}
	for _, sys := range systems {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := func() error {
			origin, err := h.startOrigin(originLatency)
			if err != nil {
				return err
			}
			fronts, counted, cps, err := sys.start(h, origin)
			if err != nil {
				return err
			}
			lb, err := h.startNginxLB(fronts)
			if err != nil {
				return err
			}
			r, err := h.measureLoad(ctx, origin, counted, cps, dur, zipfArgs([]string{lb.url},
				"-c", fmt.Sprint(scaleConns), "-requests", fmt.Sprint(requests), "-duration", dur.String())...)
			if err != nil {
				return err
			}
			r.System, r.Variant = sys.name, fmt.Sprintf("%s requests, %d conns", num(float64(requests)), scaleConns)
			if r.Requests < uint64(requests) {
				r.Note = fmt.Sprintf("stopped by the %s bound before the request count", dur)
			}
			h.add(r)
			return nil
		}()
		h.ps.stopAll()
		if err != nil {
			h.fail(sys.name, err)
		}
	}
	return nil
}

func (h *harness) scaleSection(b *strings.Builder) {
	fmt.Fprintf(b, "The zipf workload (origin latency %s) through nginx as a round-robin load balancer over the backends; closed loop, %d connections, "+
		"the same request count for every system, from cold caches. Each cache has 64 MiB; the cacheproxy instances share one Redis. "+
		"CPU and RSS are the backends' (and Redis's), not the balancer's. "+
		"On this machine all instances share the server CPUs, so adding instances adds cache capacity and connections, not CPU.\n\n",
		originLatency, scaleConns)
	var rows [][]string
	base := 0.0
	for _, r := range h.rows("scale") {
		if r.FleetSize != nil {
			continue
		}
		if strings.HasPrefix(r.System, "cacheproxy ×1") {
			base = r.RPS
		}
		rows = append(rows, []string{r.System, num(r.RPS), ratio(r.RPS, base), pct(r.HitRatio), tiers(r.Tiers), num(r.OriginRPS),
			ms(r.P50), ms(r.P99), ms(r.P999), num(float64(r.Errors)), us(r.CPUPerReq), mib(r.PeakRSS), load(r), r.Note})
	}
	defer h.fleetSizeSection(b)
	table(b, []string{"system", "req/s", "vs ×1", "hit ratio", "X-Cache", "origin req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "CPU µs/req", "peak RSS (sum)", "other load (CPUs)", "notes"}, rows)
}
