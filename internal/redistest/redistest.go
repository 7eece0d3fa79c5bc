// Package redistest runs a private redis-server for tests that talk to
// Redis: one process per Start, on a free loopback port, with persistence
// off and its working directory in the test's temporary directory. Tests
// can kill, restart, pause and resume it to simulate outages.
//
// It never touches a Redis it did not start, in particular not the one that
// may be listening on 127.0.0.1:6379.
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/syncbuf"
)

const (
	// readyTimeout bounds how long Start and Restart wait for PING.
	readyTimeout = 10 * time.Second
	// reservedPort is the default Redis port, never used here.
	reservedPort = 6379
)

// Server is a redis-server process owned by one test. Its methods must be
// called from the test's goroutine (they call t.Fatal on failure), except
// Addr and URL, which may be read from anywhere.
type Server struct {
	// Addr is the server's address, "127.0.0.1:PORT". It stays the same
	// across Restart.
	Addr string

	t    testing.TB
	bin  string
	dir  string
	port int
	args []string    // more arguments, after the defaults
	tls  *tls.Config // set for a TLS-only server: how to reach it
	name string      // "redis-server", or what it runs as, for messages
	// sentinelConf, if set, makes the server a sentinel of this
	// configuration file.
	sentinelConf string
	mu           sync.Mutex
	proc         *exec.Cmd
	exited       chan struct{}   // closed when proc has been waited for
	out          *syncbuf.Buffer // the server's output, for failure messages
	client       *redis.Client
}

// Start starts a redis-server for t and waits until it answers PING. The
// server is killed when t and its subtests finish. Start fails t if
// redis-server is not on PATH or does not come up within 10s.
func Start(t testing.TB) *Server {
	t.Helper()
	return startWith(t, nil, nil)
}

// startWith starts a redis-server with args after the defaults;
// configure, if set, is called with the server's port and directory
// before each attempt and may change its arguments and TLS.
func startWith(t testing.TB, args []string, configure func(s *Server)) *Server {
	t.Helper()
	s := &Server{t: t, bin: binary(t, "redis-server"), dir: t.TempDir(), args: args, name: "redis-server"}
	t.Cleanup(s.stop)

	// A free port can be taken between our probe and the server's bind;
	// try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if configure != nil {
			configure(s)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// binary returns the path of the named program, failing t with how to
// install it if it is not on PATH.
func binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(name + " not found on PATH: install it (apt-get install redis-server, which has redis-server and redis-cli) — " +
			"tests that touch Redis need a real server")
	}
	return bin
}

// URL returns the server's URL, "redis://127.0.0.1:PORT/0" (rediss://
// for a TLS server).
func (s *Server) URL() string {
	if s.tls != nil {
		return "rediss://" + s.Addr + "/0"
	}
	return "redis://" + s.Addr + "/0"
}

// Client returns a client connected to the server (as the default user,
// over TLS with the test's client certificate for a TLS server), created
// on first use and closed when the test finishes.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: s.tls})
		c := s.client
		s.t.Cleanup(func() { c.Close() })
	}
	return s.client
}

// running reports whether the server's process is running (not killed).
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Kill kills the server with SIGKILL and waits for it to exit. Data is
// lost (persistence is off).
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatal("redistest: Kill of a server that is not running")
	}
	s.kill()
}

// Restart starts the server again on the same port, killing it first if
// it is still running, and waits until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	if s.proc != nil {
		s.kill()
	}
	s.mu.Unlock()

	// The port was ours a moment ago, but the kernel may take a moment
	// to release it; retry briefly.
	var err error
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Pause stops the server with SIGSTOP: connections stay open but nothing
// is answered, like a hung Redis. Resume undoes it; cleanup kills a paused
// server too.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume continues a server stopped by Pause with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redistest: %v to a server that is not running", sig)
	}
	if err := s.proc.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// start launches redis-server on s.port and waits for it to answer PING.
// On failure the process is gone and the error carries its output.
func (s *Server) start() error {
	out := &syncbuf.Buffer{}
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	args := append(port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	if s.sentinelConf != "" {
		args = append([]string{s.sentinelConf, "--sentinel"}, args...)
	}
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()

	s.mu.Lock()
	s.proc, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		err := pingTLS(s.Addr, s.tls)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			s.mu.Lock()
			s.proc = nil
			s.mu.Unlock()
			return fmt.Errorf("%s on port %d exited before answering PING: %s", s.name, s.port, lastLines(out.String()))
		default:
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			s.kill()
			s.mu.Unlock()
			return fmt.Errorf("%s on port %d did not answer PING within %v (last error: %v): %s",
				s.name, s.port, readyTimeout, err, lastLines(out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs the running process and waits for it; s.mu is held.
func (s *Server) kill() {
	_ = s.proc.Process.Kill() // works on a stopped process too
	<-s.exited
	s.proc = nil
}

// stop is the cleanup: it kills the server if it is running.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.kill()
	}
}

// ping sends one PING on a fresh connection and expects +PONG.
func ping(addr string) error { return pingTLS(addr, nil) }

// pingTLS is ping, over TLS if conf is set.
func pingTLS(addr string, conf *tls.Config) error {
	d := &net.Dialer{Timeout: 200 * time.Millisecond}
	var conn net.Conn
	var err error
	if conf != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, conf)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// -LOADING and the like: not ready yet.
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// freePort returns a loopback TCP port that was free a moment ago and is
// not the default Redis port.
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != reservedPort {
			return port, nil
		}
	}
}

// lastLines returns the end of the server's output.
func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

// FlushAll empties the server (FLUSHALL), as an operator might.
func (s *Server) FlushAll() {
	s.t.Helper()
	if err := s.Client().FlushAll(context.Background()).Err(); err != nil {
		s.t.Fatalf("redistest: FLUSHALL: %v", err)
	}
}
