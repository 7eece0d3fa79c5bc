package main

// The commands that watch an instance: cacheproxy stats -watch (in
// runStats), cacheproxy purges and cacheproxy tail.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

const purgesSynopsis = `Usage:
  cacheproxy purges [flags]

Lists the last purges asked of an instance's admin API (GET /purges), newest
first: when, the status answered, what was purged, and who asked.

Exit status: 0 on success, 1 on error, 2 for a bad command line.

Flags:
`

const tailSynopsis = `Usage:
  cacheproxy tail [-prefix /path] [-outcome MISS,PASS] [-status 5xx] [-method GET] [-host name] [-n N] [flags]

Shows the requests one instance answers, live, one line each (GET /tail):
time, status, X-Cache outcome, method, host and path, bytes, duration, and
why the cache did not answer. Filters combine; a comma-separated filter
matches any of its values. A tail that cannot keep up loses lines (and says
how many) rather than slow the proxy. Ctrl-C ends it.

Exit status: 0 when it ends (Ctrl-C, -n lines shown, or the server closed
the stream), 1 on error, 2 for a bad command line.

Flags:
`

// runPurges is cacheproxy purges.
func runPurges(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("purges", purgesSynopsis, getenv, stdout, stderr)
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	status, body, err := c.call(ctx, http.MethodGet, "/purges", nil, nil)
	if err != nil {
		return c.unreachable(err)
	}
	if status != http.StatusOK {
		return c.failStatus(status, body)
	}
	var a struct {
		Purges []purgeRecord `json:"purges"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
	}
	if !c.json {
		printPurges(stdout, a.Purges)
	}
	return 0
}

// printPurges writes the purges as a table, the query unescaped.
func printPurges(w io.Writer, ps []purgeRecord) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "no purges since the instance started")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tSTATUS\tPURGE\tFROM")
	for _, p := range ps {
		q, err := url.QueryUnescape(p.Query)
		if err != nil {
			q = p.Query
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.At.Local().Format(time.DateTime), p.Status, q, orDash(p.Remote))
	}
	tw.Flush()
}

// watchStats is cacheproxy stats -watch: the stats every interval until
// ctx ends, each after the screen is cleared when w is a terminal, with
// the rates since the previous one.
func watchStats(ctx context.Context, c *clientCmd, interval time.Duration) int {
	var prev *statsAnswer
	var prevAt time.Time
	clear := isTerminal(c.stdout)
	for {
		status, body, err := c.call(ctx, http.MethodGet, "/stats", nil, nil)
		switch {
		case ctx.Err() != nil:
			return 0
		case err != nil:
			return c.unreachable(err)
		case status != http.StatusOK:
			return c.failStatus(status, body)
		}
		var a statsAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
		}
		now := time.Now()
		if !c.json {
			if clear {
				fmt.Fprint(c.stdout, "\033[H\033[2J")
			}
			fmt.Fprintf(c.stdout, "%s  every %v  (Ctrl-C ends)\n\n", now.Format(time.TimeOnly), interval)
			printStats(c.stdout, a, now)
			if prev != nil {
				printRates(c.stdout, *prev, a, now.Sub(prevAt))
			}
			fmt.Fprintln(c.stdout)
		}
		prev, prevAt = &a, now
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(interval):
		}
	}
}

// printRates writes the rates between two stats taken dt apart: requests
// per second by outcome, origin requests per second, and the hit ratio of
// the interval.
func printRates(w io.Writer, a, b statsAnswer, dt time.Duration) {
	secs := dt.Seconds()
	if secs <= 0 {
		return
	}
	delta := map[string]int64{}
	var total int64
	for k, n := range b.Proxy.Requests {
		if d := n - a.Proxy.Requests[k]; d >= 0 {
			delta[k] = d
			total += d
		}
	}
	var parts []string
	for _, k := range requestKinds() {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, float64(delta[k])/secs))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nrate\t%.1f req/s: %s\n", float64(total)/secs, strings.Join(parts, ", "))
	fmt.Fprintf(tw, "origin rate\t%.1f req/s\n", float64(b.Proxy.OriginRequests-a.Proxy.OriginRequests)/secs)
	fmt.Fprintf(tw, "interval hit ratio\t%s of cacheable\n", hitRatio(delta))
	tw.Flush()
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runTail is cacheproxy tail.
func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("tail", tailSynopsis, getenv, stdout, stderr)
	q := url.Values{}
	for _, f := range []struct{ name, usage string }{
		{"prefix", "show only requests whose path (and query) starts with this, e.g. /api/"},
		{"outcome", "show only these X-Cache outcomes, e.g. MISS,PASS,ERROR"},
		{"status", "show only these statuses: codes or classes, e.g. 5xx,404"},
		{"method", "show only these methods, e.g. GET,POST"},
		{"host", "show only requests for this Host"},
	} {
		c.fs.Func(f.name, f.usage, func(v string) error { q.Set(f.name, v); return nil })
	}
	limit := c.fs.Int("n", 0, "stop after this many lines; 0 runs until Ctrl-C")
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	if *limit < 0 {
		return c.usageError("-n must be 0 or more")
	}
	resp, err := c.stream(ctx, "/tail", q)
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		return c.failStatus(resp.StatusCode, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	shown := 0
	for sc.Scan() {
		line := sc.Bytes()
		var d tailDropped
		if json.Unmarshal(line, &d) == nil && d.Dropped > 0 {
			fmt.Fprintf(stderr, "... %d lines dropped: this tail did not keep up\n", d.Dropped)
			continue
		}
		if c.json {
			stdout.Write(append(line, '\n'))
		} else {
			var rec served
			if err := json.Unmarshal(line, &rec); err != nil {
				return c.fail("bad line from the admin API at %s: %v", c.base.Redacted(), err)
			}
			fmt.Fprintln(stdout, tailLine(rec))
		}
		if shown++; *limit > 0 && shown >= *limit {
			return 0
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return c.fail("the stream from %s broke: %v", c.base.Redacted(), err)
	}
	return 0
}

// tailLine formats one request for cacheproxy tail:
//
//	06:10:00.123 200 HIT-L1      GET api.example /rank?page=2 512 B 0.3ms
func tailLine(r served) string {
	s := fmt.Sprintf("%s %d %-11s %s %s %s %s %.1fms", r.Time.Local().Format("15:04:05.000"), r.Status, orDash(r.XCache),
		r.Method, r.Host, r.Path, humanize.IBytes(uint64(max(r.Bytes, 0))), r.DurationMS)
	if r.Reason != "" {
		s += " " + r.Reason
	}
	return s
}

// stream sends GET path?query to the admin API and returns the response
// while its body streams: -timeout bounds only the wait for its header.
func (c *clientCmd) stream(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("User-Agent", "cacheproxy-"+c.name)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = c.timeout
	return (&http.Client{Transport: transport}).Do(req)
}
