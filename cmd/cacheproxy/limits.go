package main

// The connection limits' defaults, from the open-file limit
// (docs/limits.md).

import (
	"log/slog"
	"runtime"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cacheproxy/cacheproxy/proxy/conn"
)

// autoLimit is the value of -max-conns and -max-origin-conns when they
// are not set: derived from the open-file limit by connLimits.
const autoLimit = -1

// The parts of the open-file limit that are not client or origin
// connections: the listeners, log files, Redis (go-redis opens up to
// redisConnsPerProc connections per GOMAXPROCS by default), and the
// connections conn.Listener is refusing (at most 64 at once).
const (
	fileReserve       = 64 + 64
	redisConnsPerProc = 10
	maxAutoLimit      = 1 << 20 // the most either default is
	minAutoLimit      = 16      // the least either default is
)

// fileLimit returns the process's open-file limit (RLIMIT_NOFILE), 0 if
// it cannot be read. The Go runtime has already raised the soft limit to
// the hard one (the os package does so at start, since Go 1.19, as
// nginx's worker_rlimit_nofile does), so this is the hard limit.
func fileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}

// connLimits splits an open-file limit of nofile between client
// connections and origin connections, half each once the reserve for a
// process of procs GOMAXPROCS is taken; each between minAutoLimit and
// maxAutoLimit. A limit it cannot read (0) gives the least.
func connLimits(nofile uint64, procs int) (clients, origin int) {
	reserve := uint64(fileReserve + redisConnsPerProc*procs)
	if nofile <= reserve {
		return minAutoLimit, minAutoLimit
	}
	half := min((nofile-reserve)/2, maxAutoLimit)
	n := max(int(half), minAutoLimit)
	return n, n
}

// connLimits returns the -max-conns and -max-origin-conns in force: as
// set, or, where not set, derived from the open-file limit. Every use of
// the two (the listener, the proxy's options, the log) goes through it.
func (c config) connLimits() (clients, origin int) {
	clients, origin = c.MaxConns, c.MaxOriginConns
	if clients == autoLimit || origin == autoLimit {
		autoClients, autoOrigin := connLimits(fileLimit(), runtime.GOMAXPROCS(0))
		if clients == autoLimit {
			clients = autoClients
		}
		if origin == autoLimit {
			origin = autoOrigin
		}
	}
	return clients, origin
}

// logLimits logs the connection limits in force, with a warning when the
// two together may exceed the open-file limit.
func logLimits(cfg config, logger *slog.Logger) {
	nofile := fileLimit()
	clients, origin := cfg.connLimits()
	logger.Info("connection limits", "max-conns", clients, "max-origin-conns", origin, "open-file-limit", nofile)
	if nofile > 0 && (clients == 0 || origin == 0 || uint64(clients+origin) > nofile) {
		logger.Warn("-max-conns and -max-origin-conns may together exceed the open-file limit: past it, new connections fail until some close",
			"max-conns", clients, "max-origin-conns", origin, "open-file-limit", nofile)
	}
}

// connCollectors are the metrics of the proxy listener's connections:
// open now, and refused past -max-conns.
func (s *stack) connCollectors() []prometheus.Collector {
	of := func(f func(*conn.Listener) int64) func() float64 {
		return func() float64 {
			if l := s.conns.Load(); l != nil {
				return float64(f(l))
			}
			return 0
		}
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cacheproxy_client_connections",
			Help: "Client connections open on the proxy listener."}, of((*conn.Listener).Open)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cacheproxy_client_connections_refused_total",
			Help: "Client connections answered 503 and closed because -max-conns were open."}, of((*conn.Listener).Refused)),
	}
}
