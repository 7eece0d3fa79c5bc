// Command harness runs cacheproxy's comparative benchmarks and writes their
// report. It is started by bench/run.sh, which builds the binaries and
// installs the peers; see that script for the options.
//
// Every server it starts (the fixed origin, Redis, cacheproxy, nginx,
// Varnish, the plain Go proxy) listens on a free 127.0.0.1 port, runs from
// its own config in a temp directory, and is stopped by pid when its
// scenario ends. On a machine with two or more CPUs the servers are pinned
// to all CPUs but the last and the load generator to the last: a load
// generator competing with the server for a core would measure the
// scheduler, not the server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	quick     bool
	scenarios []string
	duration  time.Duration // one measured load run of the hot and shared scenarios
	rounds    int           // measured runs of each hot and shared load, taking the systems in turn
	zipfRate  float64       // open-loop rate of the zipf scenario; purge runs at half
	bin       string        // directory of the built binaries
	out       string        // the report goes to a new directory under it
	pidFile   string
	noPin     bool
	cmdline   string // run.sh's options, for the report
	redis     string // shared and stampede: redisSingle, redisCluster or redisBoth
	faults    string // the faults scenario's faults to run, by name; "" for all
}

// scenario is one named benchmark.
type scenario struct {
	name, title string
	run         func(h *harness, ctx context.Context) error
}

var allScenarios = []scenario{
	{"hot", "Hot keys (all hits)", (*harness).hot},
	{"shared", "Shared tier (all hits from Redis)", (*harness).shared},
	{"zipf", "Zipf, 1,000,000 keys, 64 MiB caches", (*harness).zipf},
	{"stampede", "Stampede: 1,000 concurrent requests for one cold key", (*harness).stampede},
	{"purge", "Purge storm", (*harness).purge},
	{"scale", "Scale: the fleet's cost by size (1 to 100 instances on one Redis), and scale-out behind a load balancer", (*harness).scale},
	{"faults", "Faults: Redis and origin failures under load and purges", (*harness).faults},
	{"storage", "Storage: JSON responses held per 64 MiB, and the Zipf hit ratio on them", (*harness).storage},
}

func main() {
	var opt options
	var scen string
	flag.BoolVar(&opt.quick, "quick", false, "short runs: a smoke test in under 3 minutes")
	flag.StringVar(&scen, "scenarios", "hot,shared,zipf,stampede,purge,scale,faults,storage", "comma-separated scenarios to run")
	flag.DurationVar(&opt.duration, "duration", 0, "length of one measured run of hot and shared (default 6s, 2s with -quick)")
	flag.IntVar(&opt.rounds, "rounds", 0, "measured runs of each hot and shared load, the median reported (default 3, 1 with -quick)")
	flag.Float64Var(&opt.zipfRate, "zipf-rate", 0, "open-loop requests/s of the zipf scenario; purge runs at half (default 3000, 2000 with -quick)")
	flag.StringVar(&opt.bin, "bin", "", "directory holding cacheproxy, fixedorigin, plainproxy and loadgen (required)")
	flag.StringVar(&opt.out, "out", "bench/results", "the report goes to a new directory under this one")
	flag.StringVar(&opt.pidFile, "pidfile", "", "append 'pid starttime name' of every started process here")
	flag.StringVar(&opt.cmdline, "cmdline", "", "the options run.sh was given, shown in the report")
	flag.StringVar(&opt.redis, "redis", redisSingle, "the Redis of shared and stampede: single (one redis-server), cluster (a Redis Cluster of 3 masters) or both")
	flag.StringVar(&opt.faults, "faults", "", "comma-separated faults of the faults scenario to run, by name (default: all)")
	flag.BoolVar(&opt.noPin, "no-pin", false, "do not pin servers and load generator to separate CPUs")
	flag.Parse()
	opt.scenarios = strings.Split(scen, ",")
	if opt.duration == 0 {
		opt.duration = 6 * time.Second
		if opt.quick {
			opt.duration = 2 * time.Second
		}
	}
	if opt.rounds == 0 {
		opt.rounds = 3
		if opt.quick {
			opt.rounds = 1
		}
	}
	if opt.zipfRate == 0 {
		// Below what every system sustains on one CPU, so that the
		// latencies compare service, not queues.
		opt.zipfRate = 3000
		if opt.quick {
			opt.zipfRate = 2000
		}
	}
	if err := runMain(opt); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func runMain(opt options) error {
	if opt.bin == "" {
		return fmt.Errorf("-bin is required")
	}
	if opt.rounds < 1 || opt.duration <= 0 {
		return fmt.Errorf("-rounds and -duration must be positive, got %d and %v", opt.rounds, opt.duration)
	}
	if opt.redis != redisSingle && opt.redis != redisCluster && opt.redis != redisBoth {
		return fmt.Errorf("-redis must be single, cluster or both, got %q", opt.redis)
	}
	known := map[string]bool{}
	for _, s := range allScenarios {
		known[s.name] = true
	}
	for _, s := range opt.scenarios {
		if !known[s] {
			return fmt.Errorf("unknown scenario %q", s)
		}
	}
	h, err := newHarness(opt)
	if err != nil {
		return err
	}
	defer h.cleanup()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, sc := range allScenarios {
		if !contains(opt.scenarios, sc.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		h.scenario = sc.name
		h.ran = append(h.ran, sc)
		h.progress("starting")
		if err := sc.run(h, ctx); err != nil {
			h.failed = true
			h.note(sc.name, "**Scenario failed:** "+err.Error())
			h.progress("FAILED: " + err.Error())
		}
		// Whatever a scenario left running (it failed midway) goes now.
		h.ps.stopAll()
	}
	dir, err := h.writeReport()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\nreport: %s\n", filepath.Join(dir, "report.md"))
	return nil
}

// harness is the state of one benchmark run. It runs one scenario at a time.
type harness struct {
	opt      options
	ps       *procs
	bin      string
	tmp      string // configs, logs, Varnish working directories
	shm      string // on tmpfs: nginx's cache directories
	loadCPU  string // taskset list of the load generator; "" unpinned
	started  time.Time
	scenario string // the one running
	ran      []scenario
	results  []row
	notes    map[string][]string
	cmdMu    sync.Mutex // load tools may run concurrently (purge)
	commands []string
	failed   bool          // a scenario or system failed: keep the logs
	retries  int           // noisy closed-loop runs measured again
	waited   time.Duration // waiting for unrelated work to calm down
}

func newHarness(opt options) (*harness, error) {
	bin, err := filepath.Abs(opt.bin)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "cacheproxy-bench-")
	if err != nil {
		return nil, err
	}
	// nginx caches on tmpfs so that it is a memory cache like the others.
	shmRoot := "/dev/shm"
	if st, err := os.Stat(shmRoot); err != nil || !st.IsDir() {
		shmRoot = tmp
	}
	shm, err := os.MkdirTemp(shmRoot, "cacheproxy-bench-")
	if err != nil {
		return nil, err
	}
	h := &harness{opt: opt, bin: bin, tmp: tmp, shm: shm, started: time.Now(),
		notes: map[string][]string{}}
	h.ps = &procs{dir: tmp, pidFile: opt.pidFile, ports: map[int]bool{}}
	if h.ps.pidFile == "" {
		h.ps.pidFile = filepath.Join(tmp, "pids")
	}
	if n := runtime.NumCPU(); n >= 2 && !opt.noPin {
		h.ps.serverCPUs = "0"
		if n > 2 {
			h.ps.serverCPUs = fmt.Sprintf("0-%d", n-2)
		}
		h.loadCPU = fmt.Sprint(n - 1)
	}
	return h, nil
}

// phase is the unit length of the open-loop scenarios (zipf, purge,
// scale): 10s, 2s in a quick run.
func (h *harness) phase() time.Duration {
	if h.opt.quick {
		return 2 * time.Second
	}
	return 10 * time.Second
}

// serverCPUCount is the number of CPUs servers run on: nginx's workers.
func (h *harness) serverCPUCount() int {
	if h.loadCPU != "" {
		return runtime.NumCPU() - 1
	}
	return runtime.NumCPU()
}

func (h *harness) cleanup() {
	h.ps.stopAll()
	os.RemoveAll(h.shm)
	// The temp directory keeps the logs for a failed run; it is small.
	if !h.failed {
		os.RemoveAll(h.tmp)
	} else {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", h.tmp)
	}
}

// progress prints one line about the running scenario.
func (h *harness) progress(msg string) {
	el := time.Since(h.started).Round(time.Second)
	fmt.Fprintf(os.Stderr, "[%5s] %-8s %s\n", el, h.scenario, msg)
}

// note adds a remark to a scenario's section of the report.
func (h *harness) note(scenario, msg string) {
	h.notes[scenario] = append(h.notes[scenario], msg)
}

// fail records that a system could not be measured; the run goes on.
func (h *harness) fail(system string, err error) {
	h.failed = true
	h.note(h.scenario, fmt.Sprintf("**%s failed:** %v", system, err))
	h.progress(fmt.Sprintf("%s FAILED: %v", system, err))
}

func (h *harness) add(r row) {
	r.Scenario = h.scenario
	h.results = append(h.results, r)
	h.progress(fmt.Sprintf("%-26s %-18s %s", r.System, r.Variant, r.summary()))
}

// record adds a command line to the report's list, in a form that
// repeats from run to run: ports, the build and temp directories are
// replaced by names, arguments quoted for a shell where needed, and a
// command already listed is not listed again.
func (h *harness) record(argv []string) {
	var parts []string
	for i, a := range argv {
		a = strings.ReplaceAll(a, h.bin+"/", "$BIN/")
		a = strings.ReplaceAll(a, h.tmp, "$TMP")
		a = strings.ReplaceAll(a, h.shm, "$SHM")
		a = portRE.ReplaceAllString(a, "127.0.0.1:$$PORT")
		a = tempRE.ReplaceAllString(a, "$1-XXXX")
		if i > 0 && argv[i-1] == "--port" {
			a = "$PORT"
		}
		if strings.ContainsAny(a, "?{}*& ;") || a == "" {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	c := strings.Join(parts, " ")
	h.cmdMu.Lock()
	defer h.cmdMu.Unlock()
	if !slices.Contains(h.commands, c) {
		h.commands = append(h.commands, c)
	}
}

var (
	portRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	tempRE = regexp.MustCompile(`\b(nginx|varnish|nginx-cache|redis-node)-\d+`)
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}
