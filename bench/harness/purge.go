package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Purge storm: the zipf load spread over 3 instances sharing a Redis while
// purges of single URLs (keys drawn from the same distribution, so mostly
// hot ones) arrive 100 times a second, rotating over the instances' admin
// listeners. Compared with the same load without purges.
const purgeRate = 100

const sysPurge = "cacheproxy ×3 (one Redis)"

// purgePath is the admin request purging /blob/{key}?size=1024.
var purgePath = "/cache?url=" + strings.ReplaceAll(url.QueryEscape("/blob/KEY?size=1024"), "KEY", "{key}")

func (h *harness) purge(ctx context.Context) error {
	for _, storm := range []bool{false, true} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := h.purgeRun(ctx, storm)
		h.ps.stopAll()
		if _, ok := err.(errNoPurge); ok {
			h.note(h.scenario, fmt.Sprintf("**Not available:** the admin listener answered %v to `DELETE %s`; the purge storm was not run.",
				err.(errNoPurge).status, strings.ReplaceAll(purgePath, "{key}", "0")))
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// purgeLoadRate is the rate of the purge scenario's zipf load: half the
// zipf scenario's, as three instances, Redis, the origin and the purges
// share the server CPUs.
func (h *harness) purgeLoadRate() float64 { return h.opt.zipfRate / 2 }

// errNoPurge reports that the purge API is not there.
type errNoPurge struct{ status string }

func (e errNoPurge) Error() string { return "purge API not available: " + e.status }

func (h *harness) purgeRun(ctx context.Context, storm bool) error {
	origin, err := h.startOrigin(originLatency)
	if err != nil {
		return err
	}
	rds, err := h.startRedis()
	if err != nil {
		return err
	}
	var fronts []*server
	counted := rds.pids
	for i := range 3 {
		s, err := h.startCacheproxy(fmt.Sprintf("cacheproxy-%d", i+1), origin, rds, "-l1-max-bytes", "64MiB")
		if err != nil {
			return err
		}
		fronts = append(fronts, s)
		counted = append(counted, s.pids...)
	}
	if err := probePurge(fronts[0]); err != nil {
		return err
	}

	dur := 2 * h.phase()
	var urls []string
	for _, f := range fronts {
		urls = append(urls, f.url)
	}
	var (
		wg       sync.WaitGroup
		purges   loadOut
		purgeErr error
	)
	if storm {
		args := []string{"-method", "DELETE", "-rate", fmt.Sprint(purgeRate), "-c", "16", "-duration", dur.String(),
			"-dist", "zipf", "-keys", fmt.Sprint(zipfKeys), "-zipf-s", zipfS, "-seed", "2"}
		for _, f := range fronts {
			args = append(args, "-url", f.admin+purgePath)
		}
		wg.Go(func() { purges, purgeErr = h.loadgen(ctx, dur, args...) })
	}
	r, err := h.measureLoad(ctx, origin, counted, fronts, dur,
		zipfArgs(urls, "-rate", fmt.Sprint(h.purgeLoadRate()), "-c", "512", "-duration", dur.String())...)
	wg.Wait()
	if err != nil {
		return err
	}
	r.System, r.Variant = sysPurge, "no purges"
	if storm {
		if purgeErr != nil {
			return fmt.Errorf("purges: %w", purgeErr)
		}
		r.Variant = fmt.Sprintf("%d purges/s", purgeRate)
		var codes []string
		for k, v := range purges.Status {
			codes = append(codes, fmt.Sprintf("%s×%s", num(float64(v)), k))
		}
		sort.Strings(codes)
		r.Note = fmt.Sprintf("%s purges sent: %s; purge p99 %s ms", num(float64(purges.Count)), strings.Join(codes, ", "), ms(purges.LatencyMS.P99))
		if purges.Failures > 0 {
			r.Note += fmt.Sprintf("; %d purges failed: %s", purges.Failures, strings.Join(purges.ErrorSamples, "; "))
		}
	}
	h.add(r)
	return nil
}

// probePurge caches /blob/0 through s, then purges it: any 2xx means the
// purge API is there; 404, 405 or 501 mean it is not.
func probePurge(s *server) error {
	if _, err := get(s.url + "/blob/0?size=1024"); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodDelete, s.admin+strings.ReplaceAll(purgePath, "{key}", "0"), nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusMethodNotAllowed, resp.StatusCode == http.StatusNotImplemented:
		return errNoPurge{resp.Status}
	}
	return fmt.Errorf("purge probe: %s", resp.Status)
}

func (h *harness) purgeSection(b *strings.Builder) {
	fmt.Fprintf(b, "The zipf load (%s req/s open loop, rotating over 3 cacheproxy instances that share one Redis, `-l1-max-bytes 64MiB` each) "+
		"with and without %d purges a second (`DELETE %s` on the instances' admin listeners in turn, keys drawn from the same Zipf distribution). "+
		"Each run starts from cold caches.\n\n", num(h.purgeLoadRate()), purgeRate, purgePath)
	var rows [][]string
	for _, r := range h.rows("purge") {
		rows = append(rows, []string{r.Variant, num(r.RPS), pct(r.HitRatio), tiers(r.Tiers), num(r.OriginRPS),
			ms(r.P50), ms(r.P99), ms(r.P999), num(float64(r.Errors)), us(r.CPUPerReq), load(r), r.Note})
	}
	if len(rows) > 0 {
		table(b, []string{"run", "req/s", "hit ratio", "X-Cache", "origin req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "CPU µs/req", "other load (CPUs)", "notes"}, rows)
	}
}
