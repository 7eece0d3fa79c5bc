package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
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
	addr string        // the first address launch waited for it on; "" if none
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

// procFS reads /proc; its zero value is unusable, so it is opened once.
var procFS, procErr = procfs.NewDefaultFS()

// startTime returns a process's start time (field 22 of /proc/pid/stat),
// which with the pid identifies it even after its pid is reused.
func startTime(pid int) (uint64, error) {
	if procErr != nil {
		return 0, procErr
	}
	p, err := procFS.Proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.Starttime, nil
}

// descendants returns the pids of every living descendant of pid.
func descendants(pid int) []int {
	if procErr != nil {
		return nil
	}
	all, _ := procFS.AllProcs()
	children := map[int][]int{}
	for _, p := range all {
		if st, err := p.Stat(); err == nil {
			children[st.PPID] = append(children[st.PPID], p.PID)
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
	if procErr != nil {
		return u
	}
	for _, r := range roots {
		for _, pid := range append([]int{r}, descendants(r)...) {
			p, err := procFS.Proc(pid)
			if err != nil {
				continue
			}
			if st, err := p.Stat(); err == nil {
				ticks := int64(st.UTime) + int64(st.STime) + int64(st.CUTime) + int64(st.CSTime)
				u.CPU += time.Duration(ticks) * time.Second / clkTck
			}
			if status, err := p.NewStatus(); err == nil {
				u.PeakRSS += int64(status.VmHWM)
			}
		}
	}
	return u
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
	if procErr == nil {
		if st, err := procFS.Stat(); err == nil {
			// Busy is everything but idle and iowait.
			c := st.CPUTotal
			busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
			s.busy = time.Duration(busy * float64(time.Second))
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
