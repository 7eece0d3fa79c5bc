package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// writeReport writes report.md, hot.svg and results.json to a new
// directory under the -out directory and returns it.
func (h *harness) writeReport() (string, error) {
	mode := "full"
	if h.opt.quick {
		mode = "quick"
	}
	dir := filepath.Join(h.opt.out, h.started.Format("2006-01-02T15-04-05")+"-"+mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	raw, _ := json.MarshalIndent(struct {
		Results []row               `json:"results"`
		Notes   map[string][]string `json:"notes"`
	}{h.results, h.notes}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), raw, 0o644); err != nil {
		return "", err
	}
	chart := ""
	if hot := h.rows("hot"); len(hot) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "hot.svg"), []byte(hotChart(hot)), 0o644); err != nil {
			return "", err
		}
		chart = "hot.svg"
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# cacheproxy benchmarks, %s (%s run)\n\n", h.started.Format("2006-01-02 15:04"), mode)
	fmt.Fprintf(&b, "Run with `%s` in %s.\n\n", strings.TrimSpace("bash bench/run.sh "+h.opt.cmdline), time.Since(h.started).Round(time.Second))
	h.writeMachine(&b)
	writeTargets(&b, h)
	for _, sc := range h.ran {
		fmt.Fprintf(&b, "## %s\n\n", sc.title)
		switch sc.name {
		case "hot":
			if chart != "" {
				fmt.Fprintf(&b, "![throughput and p99 per system](%s)\n\n", chart)
			}
			h.hotSection(&b)
		case "shared":
			h.sharedSection(&b)
		case "zipf":
			h.zipfSection(&b)
		case "stampede":
			h.stampedeSection(&b)
		case "purge":
			h.purgeSection(&b)
		case "scale":
			h.scaleSection(&b)
		case "faults":
			h.faultsSection(&b)
		}
		for _, n := range h.notes[sc.name] {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	httpBlock, location := nginxCacheBlocks("$SHM/nginx-cache-XXXX", zipfBudget, "127.0.0.1:$ORIGIN_PORT")
	b.WriteString("## Peer configurations\n\nnginx as a cache (shown for the 64 MiB budget of zipf, scale and stampede; the hot scenario gives it 256 MiB: keys_zone 9m, max_size 256m); the load balancer uses the same skeleton with an `upstream` of the backends and `proxy_pass` only:\n\n```nginx\n")
	fmt.Fprintf(&b, nginxConf, h.serverCPUCount(), "$TMP/nginx-XXXX", httpBlock, "127.0.0.1:$PORT", location)
	b.WriteString("```\n\nVarnish (`varnishd -F -j none -n $TMP/varnish-XXXX/n -a 127.0.0.1:$PORT -f bench.vcl -s malloc,SIZE`):\n\n```vcl\n")
	fmt.Fprintf(&b, varnishVCL, "$ORIGIN_PORT")
	b.WriteString("```\n\n")

	b.WriteString("## Commands\n\nEvery distinct server and load command the run executed, in order of first use. " +
		"$PORT is a free port chosen at run time, $BIN the directory run.sh built into, $TMP the run's temp directory (configs written there are described in bench/harness/systems.go), $SHM its tmpfs directory.\n\n<details><summary>show</summary>\n\n```\n")
	for _, c := range h.commands {
		b.WriteString(c + "\n")
	}
	b.WriteString("```\n\n</details>\n")
	return dir, os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

// writeMachine describes the machine and the versions of everything run.
func (h *harness) writeMachine(b *strings.Builder) {
	model := "unknown"
	if ci, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(ci), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "unknown"
	if mi, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(v, &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	b.WriteString("## Machine\n\n")
	fmt.Fprintf(b, "- CPUs (nproc): %d, %s\n- Memory: %s\n", runtime.NumCPU(), model, mem)
	if h.loadCPU != "" {
		fmt.Fprintf(b, "- Pinning: servers on CPU %s, load generator on CPU %s (taskset), so that load generation does not steal the server's CPU. Throughput figures are for servers on %d CPU(s).\n",
			h.ps.serverCPUs, h.loadCPU, h.serverCPUCount())
	} else {
		b.WriteString("- Pinning: none; servers and load generator share the CPUs.\n")
	}
	fmt.Fprintf(b, "- Versions: go %s; %s; %s; %s; %s\n", strings.TrimPrefix(runtime.Version(), "go"),
		version("nginx", "-v"), version("varnishd", "-V"), version("redis-server", "--version"), version("wrk", "-v"))
	if rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		fmt.Fprintf(b, "- cacheproxy: commit %s (plus any uncommitted changes in the work tree)\n", strings.TrimSpace(string(rev)))
	}
	fmt.Fprintf(b, "- Redis of the shared and stampede scenarios: %s.\n", h.redisText())
	b.WriteString("- Origin: bench/fixedorigin (bodies served from memory, `Cache-Control: max-age=300`, a request counter at `/__count`).\n")
	b.WriteString("- Load: wrk -t1 (closed loop) for hot and shared; bench/loadgen for the others (open loop at a fixed rate where latency is reported, latency measured from each request's scheduled time).\n")
	b.WriteString("- CPU per request: utime+stime (plus reaped children) of the server's processes from /proc/<pid>/stat, before and after the measured run, divided by its requests. Peak RSS: sum of VmHWM of those processes.\n")
	b.WriteString("- Other load: CPU used during a measured run by anything but the servers and the load tools (other users' builds and tests, and kernel work charged to no process), in CPUs, from /proc/stat. " +
		"This machine may be shared: where it is high, the figures of that row are depressed. ")
	fmt.Fprintf(b, "Before each closed-loop run the harness waits up to 10 s for other load to fall below %.2f CPUs (%s waited in all, at most %s); "+
		"a run with more was measured once more and the quieter run kept (%d such re-runs, at most %d).\n", noisyLoad, h.waited.Round(time.Second), h.quietBudget(), h.retries, h.maxRetries())
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(b, "- Load average at the end of the run: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	b.WriteString("\n")
}

// version returns the first line a program prints about its version.
func version(prog, flag string) string {
	out, _ := exec.Command(prog, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return prog + " (not found)"
	}
	return line
}

// rows returns the results of a scenario, in order.
func (h *harness) rows(scenario string) []row {
	var out []row
	for _, r := range h.results {
		if r.Scenario == scenario {
			out = append(out, r)
		}
	}
	return out
}

// find returns the result of system under variant in scenario, or nil.
func (h *harness) find(scenario, system, variant string) *row {
	for i := range h.results {
		r := &h.results[i]
		if r.Scenario == scenario && r.System == system && (variant == "" || r.Variant == variant) {
			return r
		}
	}
	return nil
}

// table writes a Markdown table.
func table(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// Number formats.
func num(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
func ms(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
func mib(v int64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20))
}
func pct(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}
func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
func load(r row) string {
	if r.OtherLoad < 0 {
		return "—"
	}
	s := fmt.Sprintf("%.2f", r.OtherLoad)
	if r.Retried {
		s += " (2nd try)"
	}
	return s
}
func us(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

// tiers renders X-Cache counts compactly: every value seen, the most
// frequent first (the harness spells no system's X-Cache values: a value
// it did not know of is shown like the others).
func tiers(t map[string]int64) string {
	keys := slices.Collect(maps.Keys(t))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(t[b], t[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s", k, num(float64(t[k]))))
	}
	return strings.Join(parts, ", ")
}
