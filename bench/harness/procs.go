package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs starts and stops the processes of a benchmark run. Every process
// gets its own process group and is recorded, with its start time, in a
// pid file that run.sh's EXIT trap reads, so that nothing outlives the run
// even if the harness itself is killed. Safe for concurrent use.
type procs struct {
	dir     string // logs go here
	pidFile string
	// serverCPUs is the taskset CPU list of servers ("" means unpinned).
	serverCPUs string

	mu      sync.Mutex
	running []*proc
	ports   map[int]bool
}

// proc is one started process.
type proc struct {
	name string
	argv []string // as executed, taskset included
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
}

// Pid returns the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// start runs argv in the background, its output in a log file named after
// name. Servers are pinned to the server CPUs.
func (ps *procs) start(name string, argv ...string) (*proc, error) {
	if ps.serverCPUs != "" {
		// taskset execs argv: the pid we get is the server's own.
		argv = append([]string{"taskset", "-c", ps.serverCPUs}, argv...)
	}
	logPath := filepath.Join(ps.dir, strings.ReplaceAll(name, " ", "_")+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "### %s %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own group, so that stopping it reaches its children (nginx
	// workers, the Varnish cache process) by group id; SIGTERM if the
	// harness dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, argv: argv, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.running = append(ps.running, p)
	ps.mu.Unlock()
	if st, err := startTime(p.Pid()); err == nil {
		if f, err := os.OpenFile(ps.pidFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			fmt.Fprintf(f, "%d %d %s\n", p.Pid(), st, name)
			f.Close()
		}
	}
	return p, nil
}

// stop ends p: SIGTERM to its group, then SIGKILL to the group and to any
// descendant that left it, after five seconds.
func (ps *procs) stop(p *proc) {
	type known struct {
		pid   int
		start uint64
	}
	var desc []known
	for _, d := range descendants(p.Pid()) {
		if st, err := startTime(d); err == nil {
			desc = append(desc, known{d, st})
		}
	}
	syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived their parent and left its group: by pid,
	// and only if the pid still names the same process.
	for _, d := range desc {
		if st, err := startTime(d.pid); err == nil && st == d.start {
			syscall.Kill(d.pid, syscall.SIGKILL)
		}
	}
	ps.mu.Lock()
	for i, q := range ps.running {
		if q == p {
			ps.running = append(ps.running[:i], ps.running[i+1:]...)
			break
		}
	}
	ps.mu.Unlock()
}

// stopAll stops every running process, last started first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.running...)
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		ps.stop(list[i])
	}
}

// port returns a free TCP port on 127.0.0.1, never the same twice in a run.
func (ps *procs) port() (int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ps.ports[port] {
			ps.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// waitPort waits until addr accepts connections, p exits, or 20s pass.
func waitPort(p *proc, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s; log %s:\n%s", p.name, addr, p.log, tail(p.log, 15))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after 20s; log %s:\n%s", p.name, addr, p.log, tail(p.log, 15))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// statFields returns the fields of /proc/pid/stat after the command name
// (which may contain spaces): index 0 is field 3, the state.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// startTime returns field 22 of /proc/pid/stat, which with the pid
// identifies a process even after its pid is reused.
func startTime(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil || len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %v", pid, err)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// descendants returns the pids of every living descendant of pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(c)
		if err != nil || len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], c)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(pid)
	return out
}

// usage is CPU time and peak memory of a set of processes.
type usage struct {
	CPU     time.Duration // user + system, including reaped children
	PeakRSS int64         // sum of VmHWM, bytes
}

// clkTck is USER_HZ, the unit of /proc/pid/stat times; 100 on every Linux
// port that matters.
const clkTck = 100

// treeUsage sums the usage of the given processes and their descendants.
func treeUsage(roots ...int) usage {
	var u usage
	for _, r := range roots {
		for _, pid := range append([]int{r}, descendants(r)...) {
			if f, err := statFields(pid); err == nil && len(f) > 14 {
				var ticks int64
				for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
					n, _ := strconv.ParseInt(f[i], 10, 64)
					ticks += n
				}
				u.CPU += time.Duration(ticks) * time.Second / clkTck
			}
			u.PeakRSS += vmHWM(pid)
		}
	}
	return u
}

// vmHWM returns the peak resident set size of pid, in bytes.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// snapshot is what is read before and after a measured run: the servers'
// usage, and the CPU time of the whole machine and of the harness and its
// reaped children (load tools that have ended), from which the CPU used by
// unrelated work during the run follows.
type snapshot struct {
	at       time.Time
	servers  usage         // the system under test
	ours     time.Duration // every process started, the servers included
	busy     time.Duration // all CPUs, /proc/stat
	harness  time.Duration // this process and its waited-for children
	clkValid bool
}

// snapshot reads the usage of servers, and what otherLoad needs.
func (ps *procs) snapshot(servers []int) snapshot {
	ps.mu.Lock()
	var all []int
	for _, p := range ps.running {
		all = append(all, p.Pid())
	}
	ps.mu.Unlock()
	s := snapshot{at: time.Now(), servers: treeUsage(servers...), ours: treeUsage(all...).CPU}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 9 && f[0] == "cpu" {
			var ticks int64
			// user nice system idle iowait irq softirq steal: all but
			// idle and iowait are busy.
			for i, v := range f[1:9] {
				if i == 3 || i == 4 {
					continue
				}
				n, _ := strconv.ParseInt(v, 10, 64)
				ticks += n
			}
			s.busy = time.Duration(ticks) * time.Second / clkTck
			s.clkValid = true
		}
	}
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	s.harness = rusageCPU(self) + rusageCPU(children)
	return s
}

// waitQuiet waits, at most max, until unrelated work uses less than
// limit CPUs over half a second, and returns how long it waited. Called
// between runs, when our own servers are idle.
func (ps *procs) waitQuiet(limit float64, max time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < max {
		a := ps.snapshot(nil)
		time.Sleep(500 * time.Millisecond)
		if l := otherLoad(a, ps.snapshot(nil)); l >= 0 && l < limit {
			break
		}
	}
	return time.Since(start)
}

func rusageCPU(r syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// otherLoad returns the CPU used between a and b by processes that are
// neither ours (servers, origin, Redis), the harness nor its load tools, in CPUs (1.0 is
// one CPU kept busy). It also counts kernel work such as loopback
// networking that is charged to no process, so it is not zero on an idle
// machine; a high value means the run competed with unrelated work.
func otherLoad(a, b snapshot) float64 {
	wall := b.at.Sub(a.at)
	if !a.clkValid || !b.clkValid || wall <= 0 {
		return -1
	}
	other := (b.busy - a.busy) - (b.ours - a.ours) - (b.harness - a.harness)
	return math.Max(0, float64(other)/float64(wall))
}
