package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
)

// serveReport is GET /report?top=N: the cacheability report, the N (20)
// busiest path patterns and every route rule.
func (s *stack) serveReport(w http.ResponseWriter, r *http.Request) {
	top := 20
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1000 {
			admin.WriteJSON(w, http.StatusBadRequest, proxy.ErrorAnswer{Error: "top must be a number from 1 to 1000"})
			return
		}
		top = n
	}
	admin.WriteJSON(w, http.StatusOK, s.proxy.Report(top))
}

const reportSynopsis = `Usage:
  cacheproxy report [-top N] [flags]

Shows which of the API's routes the cache answers, and why not (GET /report):
the busiest path patterns with their hit ratio, the main reason requests
were not stored or not answered from the cache, and what to do about it;
then every route rule of the configuration.

Exit status: 0 on success, 1 on error, 2 for a bad command line.

Flags:
`

// runReport is cacheproxy report.
func runReport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("report", reportSynopsis, getenv, stdout, stderr)
	top := c.fs.Int("top", 20, "how many path patterns to show, busiest first")
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	if *top <= 0 || *top > 1000 {
		return c.usageError("-top must be from 1 to 1000")
	}
	status, body, err := c.call(ctx, http.MethodGet, "/report", url.Values{"top": {strconv.Itoa(*top)}}, nil)
	if err != nil {
		return c.unreachable(err)
	}
	if status != http.StatusOK {
		return c.failStatus(status, body)
	}
	var rep proxy.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
	}
	if !c.json {
		printReport(stdout, rep)
	}
	return 0
}

// printReport writes the report as two tables: patterns, then routes, each
// row followed by its advice.
func printReport(w io.Writer, rep proxy.Report) {
	if len(rep.Patterns) == 0 {
		fmt.Fprintln(w, "no requests yet")
		return
	}
	for _, part := range []struct {
		title string
		rows  []proxy.ReportRow
	}{{"PATTERN", rep.Patterns}, {"ROUTE", rep.Routes}} {
		if len(part.rows) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tREQUESTS\tHIT RATIO\t", part.title)
		for _, c := range proxy.Classes() { // a column per class
			fmt.Fprintf(tw, "%s\t", strings.ToUpper(string(c)))
		}
		fmt.Fprintln(tw, "MAIN REASON")
		for _, r := range part.rows {
			by := byClass(r.Answers)
			ratio := "-"
			if _, _, ok := proxy.HitRatios(r.Answers); ok {
				ratio = fmt.Sprintf("%.1f%%", 100*r.HitRatio)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t", r.Pattern, r.Requests, ratio)
			for _, c := range proxy.Classes() {
				fmt.Fprintf(tw, "%d\t", by[c])
			}
			fmt.Fprintln(tw, orDash(r.MainReasonText()))
		}
		tw.Flush()
		for _, r := range part.rows {
			if r.Advice != "" {
				fmt.Fprintf(w, "  %s: %s\n", r.Pattern, r.Advice)
			}
			if r.Warning != "" {
				fmt.Fprintf(w, "  %s: warning: %s\n", r.Pattern, r.Warning)
			}
		}
		fmt.Fprintln(w)
	}
}

// byClass sums answers counted by X-Cache result by their class in the
// outcome table.
func byClass(answers map[string]int64) map[proxy.Class]int64 {
	out := map[proxy.Class]int64{}
	for label, n := range answers {
		o, _ := proxy.OutcomeOf(label)
		out[o.Class] += n
	}
	return out
}
