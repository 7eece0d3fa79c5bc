package main

// The purge, inspect and stats commands: their flags, the answers they
// decode, and how they print them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers/shared"
)

// runPurge is cacheproxy purge: exactly one of -url, -prefix, -tag, -all.
func runPurge(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("purge", purgeSynopsis, getenv, stdout, stderr)
	byURL := c.fs.String("url", "", "purge one URL, /path?query, in every Vary variant")
	prefix := c.fs.String("prefix", "", "purge every URL whose path starts with this, e.g. /players/")
	tag := c.fs.String("tag", "", "purge every entry with this tag, e.g. player:42")
	all := c.fs.Bool("all", false, "purge everything")
	soft := c.fs.Bool("soft", false, "mark what is named stale instead of removing it: served stale while one refresh per key runs (and if the origin fails, as its stale-if-error allows)")
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	q := url.Values{}
	for name, v := range map[string]string{"url": *byURL, "prefix": *prefix, "tag": *tag} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if *all {
		q.Set("all", "true")
	}
	if len(q) != 1 {
		return c.usageError("give exactly one of -url, -prefix, -tag or -all")
	}
	if *soft {
		q.Set("soft", "1")
	}

	status, body, err := c.call(ctx, http.MethodDelete, "/cache", q, nil)
	if err != nil {
		return c.unreachable(err)
	}
	if status != http.StatusOK && status != http.StatusAccepted {
		return c.failStatus(status, body)
	}
	var a proxy.PurgeAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
	}
	if !c.json {
		printPurge(stdout, a)
	}
	if status == http.StatusAccepted {
		switch {
		case len(a.Missing) > 0:
			return c.fail("the purge is recorded, but %s did not confirm it within the server's -purge-wait: %s (until then it may serve purged entries from its L1)",
				instances(len(a.Missing)), strings.Join(a.Missing, ", "))
		case !a.UnknownUntil.IsZero():
			return c.fail("the purge is recorded and every instance redis knows confirmed it, but redis lost its record of the instances (restarted empty or flushed) recently: an instance cut off from it since may serve purged entries from its L1 until %s",
				a.UnknownUntil.UTC().Format(time.RFC3339))
		}
		return c.fail("the purge is recorded, but not every live instance confirmed it within the server's -purge-wait")
	}
	return 0
}

// printPurge writes a purge's outcome on one line:
//
//	purged url /rank (seq 12): confirmed by 3 instances: a, b, c
//	purged all (seq 4): confirmed by 2 of 3 instances: a, b
//	purged tag player:42 (seq 1) on host-1-123 only: no fleet (no Redis)
func printPurge(w io.Writer, a proxy.PurgeAnswer) {
	what := a.Purge.Kind
	if a.Purge.Value != "" {
		what += " " + a.Purge.Value
	}
	if a.Purge.Seq > 0 {
		what += fmt.Sprintf(" (seq %d)", a.Purge.Seq)
	}
	switch {
	case !a.Fleet:
		fmt.Fprintf(w, "purged %s on %s only: no fleet (no Redis)\n", what, orNone(a.Confirmed))
	case len(a.Missing) > 0:
		fmt.Fprintf(w, "purged %s: confirmed by %d of %s: %s\n", what,
			len(a.Confirmed), instances(len(a.Confirmed)+len(a.Missing)), orNone(a.Confirmed))
	default:
		fmt.Fprintf(w, "purged %s: confirmed by %s: %s\n", what, instances(len(a.Confirmed)), orNone(a.Confirmed))
	}
}

// instances returns "1 instance" or "n instances".
func instances(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return fmt.Sprintf("%d instances", n)
}

// orNone joins names with commas, or returns "none".
func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// inspectAnswer is a GET /cache answer: the server's own type.
type inspectAnswer = proxy.Inspection

// headerFlag collects repeated -H "Name: value" flags.
type headerFlag http.Header

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

// runInspect is cacheproxy inspect: the URL as the argument or -url.
func runInspect(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("inspect", inspectSynopsis, getenv, stdout, stderr)
	byURL := c.fs.String("url", "", "the URL to inspect, /path?query (or give it as the argument)")
	hdr := headerFlag{}
	c.fs.Var(hdr, "H", "request `header` \"Name: value\" selecting a Vary variant; repeatable")
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	target := *byURL
	switch {
	case len(pos) > 1:
		return c.usageError("unexpected argument %q", pos[1])
	case len(pos) == 1 && target != "":
		return c.usageError("give the URL once: as the argument or with -url")
	case len(pos) == 1:
		target = pos[0]
	case target == "":
		return c.usageError("missing the URL to inspect")
	}

	status, body, err := c.call(ctx, http.MethodGet, "/cache", url.Values{"url": {target}}, http.Header(hdr))
	if err != nil {
		return c.unreachable(err)
	}
	if status == http.StatusNotFound && json.Valid(body) {
		return c.fail("not cached: %s", target)
	}
	if status != http.StatusOK {
		return c.failStatus(status, body)
	}
	var a inspectAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
	}
	if !c.json {
		printInspection(stdout, a)
	}
	return 0
}

// printInspection writes an aligned key/value block, then the headers:
//
//	url        /rank
//	key        cacheproxy:1:G:/rank
//	tiers      l1, l2
//	status     200 OK
//	stored     2026-11-25T16:00:00Z
//	age        1.5s
//	remaining  4m58.5s
//	size       1.2 KiB (1234 bytes)
//	tags       rank
//	vary       Accept-Encoding
//
//	headers:
//	  Content-Type: application/json
func printInspection(w io.Writer, a inspectAnswer) {
	if len(a.Variants) > 0 {
		printVariants(w, a)
		if a.Status == 0 {
			return
		}
		fmt.Fprintln(w, "\nselected variant:")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "url\t%s\n", a.URL)
	fmt.Fprintf(tw, "key\t%s\n", a.Key)
	fmt.Fprintf(tw, "tiers\t%s\n", orNone(a.Tiers))
	fmt.Fprintf(tw, "status\t%d %s\n", a.Status, http.StatusText(a.Status))
	if !a.StoredAt.IsZero() {
		fmt.Fprintf(tw, "stored\t%s\n", a.StoredAt.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "age\t%s\n", seconds(a.AgeSeconds))
	if a.RemainingSeconds < 0 {
		fmt.Fprintf(tw, "remaining\t0s (stale for %s)\n", seconds(-a.RemainingSeconds))
	} else {
		fmt.Fprintf(tw, "remaining\t%s\n", seconds(a.RemainingSeconds))
	}
	fmt.Fprintf(tw, "size\t%s (%d bytes)\n", humanize.IBytes(uint64(max(a.Size, 0))), a.Size)
	fmt.Fprintf(tw, "tags\t%s\n", orNone(a.Tags))
	fmt.Fprintf(tw, "vary\t%s\n", orNone(a.Vary))
	tw.Flush()
	fmt.Fprintln(w, "\nheaders:")
	for _, name := range slices.Sorted(maps.Keys(a.Header)) {
		for _, v := range a.Header[name] {
			fmt.Fprintf(w, "  %s: %s\n", name, v)
		}
	}
}

// printVariants writes the cached variants of a URL that varies: the
// request header values that select each, its tiers, status, age and
// size.
func printVariants(w io.Writer, a inspectAnswer) {
	fmt.Fprintf(w, "url %s varies on %s: %d variants cached (pick one with -H \"Name: value\")\n\n", a.URL, strings.Join(a.Vary, ", "), len(a.Variants))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tTIERS\tSTATUS\tAGE\tREMAINING\tSIZE\n", strings.ToUpper(strings.Join(a.Vary, "\t")))
	for _, v := range a.Variants {
		var sel []string
		for _, name := range a.Vary {
			val, ok := v.Select[name]
			if !ok {
				val = "-"
			}
			sel = append(sel, val)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", strings.Join(sel, "\t"), strings.Join(v.Tiers, ", "), v.Status,
			seconds(v.AgeSeconds), seconds(v.RemainingSeconds), humanize.IBytes(uint64(max(v.Size, 0))))
	}
	tw.Flush()
}

// seconds formats a number of seconds as a duration to a tenth of a
// second: 1.5s, 4m58.5s.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}

// statsAnswer is a GET /stats answer: the server's own type. Sections
// the server leaves out stay nil.
type statsAnswer = stats

// runStats is cacheproxy stats.
func runStats(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("stats", statsSynopsis, getenv, stdout, stderr)
	watch := c.fs.Bool("watch", false, "refresh every -interval until Ctrl-C, with the rates over the last interval (like varnishstat)")
	interval := c.fs.Duration("interval", 2*time.Second, "how often -watch refreshes")
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	if *interval < 100*time.Millisecond {
		return c.usageError("-interval must be at least 100ms")
	}
	if *watch {
		return watchStats(ctx, c, *interval)
	}
	status, body, err := c.call(ctx, http.MethodGet, "/stats", nil, nil)
	if err != nil {
		return c.unreachable(err)
	}
	if status != http.StatusOK {
		return c.failStatus(status, body)
	}
	var a statsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
	}
	if !c.json {
		printStats(stdout, a, time.Now())
	}
	return 0
}

// printStats writes this instance's counters as an aligned block, then a
// table of the fleet's members; last-seen times are relative to now.
func printStats(w io.Writer, a statsAnswer, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := a.Proxy
	if a.Fleet != nil && a.Fleet.Self.ID != "" {
		fmt.Fprintf(tw, "instance\t%s\n", a.Fleet.Self.ID)
	}
	var total int64
	for _, n := range p.Requests {
		total += n
	}
	fmt.Fprintf(tw, "requests\t%d: %s\n", total, countList(p.Requests, requestKinds()))
	fmt.Fprintf(tw, "hit ratio\t%s of cacheable, %s of all requests\n", hitRatio(p.Requests), hitRatioAll(p.Requests))
	origin := "down"
	if p.OriginUp {
		origin = "up"
	}
	fmt.Fprintf(tw, "origin\t%s: %d requests, %d errors", origin, p.OriginRequests, p.OriginErrors)
	if p.OriginLastError != "" {
		fmt.Fprintf(tw, ", last: %s", p.OriginLastError)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "collapsed\t%d in this instance, %d by the fleet's fill lease\n", p.Collapsed, p.FleetCollapsed)
	fmt.Fprintf(tw, "stored\t%d entries written, %d shared tier errors\n", p.Stored, p.SharedErrors)
	if l1 := a.L1; l1 != nil {
		fmt.Fprintf(tw, "l1\t%d entries, %s of %s\n", l1.Entries,
			humanize.IBytes(uint64(max(l1.Bytes, 0))), humanize.IBytes(uint64(max(l1.MaxBytes, 0))))
	} else {
		fmt.Fprintf(tw, "l1\toff\n")
	}
	if r := a.Redis; r != nil {
		health := "unhealthy"
		if r.Healthy {
			health = "healthy"
		}
		fmt.Fprintf(tw, "redis\t%s, %d errors\n", health, r.Errors)
		for _, p := range r.Problems {
			fmt.Fprintf(tw, "problem\t%s\n", problemText(p))
		}
	} else {
		fmt.Fprintf(tw, "redis\tnone\n")
	}
	if f := a.Fleet; f != nil {
		s := f.Self
		fmt.Fprintf(tw, "purges\t%s\n", countList(s.Purges, []string{"url", "prefix", "tag", "all"}))
		usable := "L1 usable"
		if !s.LocalUsable {
			usable = "L1 bypassed (may have missed purges)"
		}
		fmt.Fprintf(tw, "fleet\t%s; %d invalidations received, %d subscription resyncs, %d L1 flushes; bans applied to seq %d, %d held\n",
			usable, s.InvalidationsRecvd, s.SubscriptionResyncs, s.L1Flushes, s.BansApplied, s.BansHeld)
		if f.Error != "" {
			fmt.Fprintf(tw, "members\t%s\n", f.Error)
		}
	}
	tw.Flush()
	if a.Fleet == nil || len(a.Fleet.Members) == 0 {
		return
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLISTEN\tADMIN\tLAST SEEN\tREQUESTS\tHIT RATIO")
	members := slices.Clone(a.Fleet.Members)
	slices.SortFunc(members, func(x, y shared.Member) int { return strings.Compare(x.ID, y.ID) })
	for _, m := range members {
		id := m.ID
		if id == a.Fleet.Self.ID {
			id += " (self)"
		}
		listen, admin, requests, ratio := "-", "-", "-", "-"
		var info *memberInfo
		if len(m.Info) > 0 && json.Unmarshal(m.Info, &info) != nil {
			info = nil
		}
		if i := info; i != nil {
			listen, admin = orDash(i.Listen), orDash(i.Admin)
			var n int64
			for _, v := range i.Requests {
				n += v
			}
			requests = fmt.Sprint(n)
			ratio = hitRatio(i.Requests)
			if ratio == "-" && i.HitRatio > 0 {
				ratio = fmt.Sprintf("%.1f%%", 100*i.HitRatio)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, listen, admin, ago(now, m.LastSeen), requests, ratio)
	}
	tw.Flush()
}

// countList formats counters as "k1 n1, k2 n2": the known keys in order,
// zero included, then any other key, sorted.
func countList(counts map[string]int64, known []string) string {
	var parts []string
	for _, k := range known {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	var others []string
	for k := range counts {
		if !slices.Contains(known, k) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	for _, k := range others {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

// hitRatio returns the hit ratio of the cacheable requests (see
// proxy.HitRatios) as a percentage, or "-" before the first one.
func hitRatio(requests map[string]int64) string {
	r, _, ok := proxy.HitRatios(requests)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*r)
}

// hitRatioAll returns the hit ratio of all requests as a percentage, or
// "-" before the first one.
func hitRatioAll(requests map[string]int64) string {
	_, r, _ := proxy.HitRatios(requests)
	var n int64
	for _, v := range requests {
		n += v
	}
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*r)
}

// ago formats how long before now t was, to the second: "3s ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return max(now.Sub(t), 0).Round(time.Second).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// problemText describes one purpose Redis answers errors to.
func problemText(p shared.Problem) string {
	return fmt.Sprintf("%s calls answered %s since %s: %s", p.Purpose, p.Kind, p.Since.Format(time.RFC3339), p.Err)
}
