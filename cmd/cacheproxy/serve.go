package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/proxy/conn"
	"github.com/cacheproxy/cacheproxy/tiers"
	"github.com/cacheproxy/cacheproxy/tiers/local"
	"github.com/cacheproxy/cacheproxy/tiers/shared"
)

// logRepeatInterval is how often a warning or error that keeps happening
// (the origin or Redis down) is logged: its first occurrence, then once
// per interval with the count of the others.
const logRepeatInterval = 10 * time.Second

// newLogger returns the process logger, writing to w at level (which a
// reload may change), warnings and errors rate-limited per message.
func newLogger(cfg config, level *slog.LevelVar, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(newRateLimited(h, logRepeatInterval))
}

// stack is the cache built from a config: the tiers, the fleet membership
// and the proxy handler.
type stack struct {
	local  *local.Cache   // nil when L1 is off
	shared *shared.Tier   // nil when there is no Redis
	fleet  *shared.Fleet  // nil when there is no Redis
	bans   *tiers.Bans    // nil when there is no Redis
	proxy  *proxy.Handler //
	id     string         // this instance's name in the fleet

	started   time.Time
	purges    purgeLog    // the last purges asked of this instance
	tail      tailHub     // the open GET /tail streams
	history   history     // the counters' last minutes, for the dashboard
	warm      atomic.Bool // the fleet has been usable once, or startGrace passed
	proxyAddr string      // set once listening, before the fleet runs
	adminAddr string
	conns     atomic.Pointer[conn.Listener] // the proxy listener, once listening
}

// newStack builds the tiers and the proxy handler. On error, whatever was
// built is closed.
func newStack(cfg config, logger *slog.Logger) (_ *stack, err error) {
	s := &stack{started: time.Now()}
	defer func() {
		if err != nil {
			s.close(logger)
		}
	}()
	popts := proxyOptions(cfg)
	popts.Logger = logger
	// Local and Shared are interfaces: assign them only when the tier
	// exists, as a nil *T in an interface is not a nil interface.
	if cfg.L1MaxBytes > 0 {
		if s.local, err = local.New(local.Options{MaxBytes: cfg.L1MaxBytes, Logger: logger}); err != nil {
			return nil, fmt.Errorf("L1 cache: %w", err)
		}
		popts.Local = s.local
	} else {
		logger.Info("-l1-max-bytes 0: running without L1")
	}
	if cfg.Redis != "" {
		s.bans = &tiers.Bans{MaxBans: cfg.MaxBans}
		if s.shared, err = shared.New(shared.Options{URL: cfg.Redis, Mode: cfg.RedisMode, TLSConfig: cfg.RedisTLS,
			Prefix: cfg.KeyPrefix, Logger: logger, Bans: s.bans, Timeout: cfg.RedisTimeout,
			// As long as the proxy remembers a purge alone: one definition.
			BanKeep: popts.BanRetention()}); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		s.fleet, err = shared.NewFleet(shared.FleetOptions{
			Tier:      s.shared,
			PurgeWait: cfg.PurgeWait,
			Info:      s.memberInfo,
			Flush:     s.flushLocal,
			// What the proxy caps L1 entries at, and its fill timeout
			// (the default, as popts leaves it): an instance cut off
			// from Redis keeps L1 that long, and purges count on it.
			L1TTL: cfg.L1TTL,
		})
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		s.id = s.fleet.ID()
		popts.Shared = s.shared
		popts.Bans = s.bans
		popts.LocalUsable = s.fleet.LocalUsable
		popts.Fleet = s.fleet
	} else {
		logger.Info("no -redis: running with L1 only")
	}
	if s.local == nil && s.shared == nil {
		logger.Warn("no L1 and no -redis: nothing is cached")
	}
	if s.id == "" {
		host, _ := os.Hostname()
		s.id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	popts.Instance = s.id
	if s.proxy, err = proxy.New(popts); err != nil {
		return nil, err
	}
	return s, nil
}

// proxyOptions maps cfg into the proxy's options, without the tiers and
// the logger: the one mapping start-up, reload and check use.
func proxyOptions(cfg config) proxy.Options {
	_, maxOriginConns := cfg.connLimits()
	return proxy.Options{
		Origin:         cfg.Origin,
		KeyPrefix:      cfg.KeyPrefix,
		DefaultTTL:     cfg.DefaultTTL,
		L1TTL:          cfg.L1TTL,
		MaxObjectBytes: cfg.MaxObjectBytes,
		Routes:         cfg.Routes,
		PublicHost:     cfg.PublicHost,
		Hosts:          cfg.Hosts,
		StripHeaders:   cfg.StripHeaders,
		LockTimeout:    cfg.LockTimeout,
		ClientNoCache:  cfg.ClientNoCache,
		TagHeaders:     cfg.TagHeaders,

		StaleIfError:         cfg.StaleIfError,
		StaleWhileRevalidate: cfg.StaleWhileRevalidate,
		StatusTTL:            cfg.StatusTTL,
		OriginBackoff:        cfg.OriginBackoff,
		OriginBackoffMax:     cfg.OriginBackoffMax,

		MaxInflightBytes: cfg.MaxInflightBytes,
		BodyTimeout:      cfg.BodyTimeout,
		RequestBuffering: cfg.RequestBuffering,
		MaxOriginConns:   maxOriginConns,
		OriginQueueWait:  cfg.OriginQueueTimeout,
	}
}

// flushLocal drops every L1 entry: the fleet calls it whenever this
// instance may have missed a purge.
func (s *stack) flushLocal() {
	if s.local != nil {
		s.local.Clear()
	}
}

// close releases the tiers.
func (s *stack) close(logger *slog.Logger) {
	if s.shared != nil {
		if err := s.shared.Close(); err != nil {
			logger.Warn("closing redis", "err", err)
		}
	}
	if s.local != nil {
		s.local.Close()
	}
}

// newEngine returns the Gin engine of the proxy listener: no routes, no
// logger, every request (whatever its method, M-SEARCH and PROPFIND
// included) handed to h. Gin's mode is process-wide state of the gin
// package; release mode only silences its debug output.
func newEngine(h http.Handler) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = false
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.NoRoute(wrapHandler(h))
	return e
}

// wrapHandler is gin.WrapH for a NoRoute handler. Gin runs NoRoute
// handlers with the status preset to 404 and, if they wrote no body,
// replaces a 404 by its own "404 page not found" text. That would turn an
// implicit 200 into a 404 and add a body to the origin's empty 404s, so the
// status is reset to net/http's implicit 200 before h runs and whatever h
// set is sent as it is afterwards.
func wrapHandler(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Status(http.StatusOK)
		h.ServeHTTP(c.Writer, c.Request)
		c.Writer.WriteHeaderNow()
	}
}

// serve runs the proxy and admin listeners until ctx is done, then shuts
// them down gracefully: listeners close at once, in-flight requests get up
// to cfg.ShutdownTimeout to finish, and the tiers are closed last.
// Meanwhile SIGHUP reloads the configuration with load (see reloader) and
// SIGUSR1 reopens the access log. level is the logger's level.
func serve(ctx context.Context, cfg config, logger *slog.Logger, level *slog.LevelVar, load func() (config, error)) error {
	tuneGC(cfg, logger)
	logLimits(cfg, logger)
	// go-redis logs through a process-wide logger of its own.
	redis.SetLogger(redisLogger{logger})
	s, err := newStack(cfg, logger)
	if err != nil {
		return err
	}
	defer s.close(logger)

	var draining atomic.Bool
	adm, err := newAdmin(cfg, s, &draining)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy listener: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	access, err := newAccessLogger(cfg.AccessLog, cfg.AccessLogFormat)
	if err != nil {
		ln.Close()
		adminLn.Close()
		return err
	}
	defer access.close()
	rl := &reloader{load: load, stack: s, level: level, access: access, logger: logger, cur: cfg,
		warn: func(c config) []string { return configWarnings(c, os.Environ()) }}
	for _, w := range rl.warn(cfg) {
		logger.Warn("configuration warning", "warning", w)
	}
	proxySrv := &http.Server{
		Handler:  newEngine(observe(s.proxy, access, &s.tail, s.proxy)),
		ErrorLog: errorLog,
	}
	// The proxy listener keeps the header, idle and write timeouts
	// itself (cheaper than net/http's per-request deadlines) and
	// coalesces the writes of large responses. There is deliberately no
	// overall read or write timeout: request and response bodies are
	// streamed and may take as long as they take, as long as they make
	// progress (-body-timeout, -write-timeout); the origin side is
	// bounded by the proxy's own timeouts.
	maxConns, _ := cfg.connLimits()
	proxyLn := conn.Listen(ln, proxySrv, conn.Options{HeaderTimeout: cfg.HeaderTimeout, IdleTimeout: cfg.IdleTimeout, WriteTimeout: cfg.WriteTimeout, MaxConns: maxConns})
	s.conns.Store(proxyLn)
	adminSrv := &http.Server{
		Handler:           adm,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errorLog,
	}

	s.proxyAddr, s.adminAddr = ln.Addr().String(), adminLn.Addr().String()
	adm.Handle("DELETE /cache", s.logPurges(logger, s.proxy.PurgeAPI()))
	adm.Handle("GET /purges", http.HandlerFunc(s.serveRecentPurges))
	adm.Handle("GET /cache", s.proxy.InspectAPI())
	adm.Handle("GET /report", http.HandlerFunc(s.serveReport))
	adm.Handle("POST /reload", http.HandlerFunc(rl.serveReload))
	adm.Handle("GET /tail", http.HandlerFunc(s.serveTail))
	adm.Handle("GET /history", http.HandlerFunc(s.serveHistory))
	adm.Handle("GET /vocabulary", proxy.VocabularyAPI())
	// Profiles, behind the admin token like everything but /healthz.
	adm.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
	adm.Handle("GET /debug/pprof/profile", limitSeconds(http.HandlerFunc(pprof.Profile)))
	adm.Handle("GET /debug/pprof/trace", limitSeconds(http.HandlerFunc(pprof.Trace)))
	adminSrv.Handler = withDashboard(adm) // GET /ui/: the dashboard's files, without the token (ui.go)

	g, gctx := errgroup.WithContext(ctx)
	if s.fleet != nil {
		// The fleet leaves (and stops its heartbeat) only after the
		// proxy has drained: in-flight requests may still purge.
		fleetCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
		fleetDone := make(chan struct{})
		go func() {
			defer close(fleetDone)
			s.fleet.Run(fleetCtx)
		}()
		defer func() {
			stopFleet()
			<-fleetDone
		}()
	}
	// SIGHUP reloads, SIGUSR1 reopens the access log, until the shutdown.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					rl.reload("SIGHUP")
				} else if err := access.reopen(); err != nil {
					logger.Error("SIGUSR1: access log not reopened", "err", err.Error())
				} else {
					logger.Info("SIGUSR1: access log reopened", "access_log", cfg.AccessLog)
				}
			}
		}
	})
	s.history.sampleNow(s.proxy) // the first sample: every counter at zero
	g.Go(func() error { s.history.run(gctx, s.proxy); return nil })
	g.Go(func() error { return serveOn(proxySrv, proxyLn) })
	g.Go(func() error { return serveOn(adminSrv, adminLn) })
	logger.Info("listening", "server", "proxy", "addr", ln.Addr().String(), "origin", cfg.Origin.String())
	logger.Info("listening", "server", "admin", "addr", adminLn.Addr().String(), "auth", cfg.AdminToken != "")
	g.Go(func() error {
		<-gctx.Done()
		// /readyz answers 503 while the proxy drains; the admin listener
		// stays up until the proxy is done.
		draining.Store(true)
		if cfg.Drain > 0 {
			// Lame duck: still serving, but not ready, so that a load
			// balancer takes the instance out before its listener closes.
			logger.Info("draining", "reason", context.Cause(gctx).Error(), "for", cfg.Drain.String())
			// (A second signal ends the process at once: see main.)
			time.Sleep(cfg.Drain)
		}
		logger.Info("shutting down", "reason", context.Cause(gctx).Error(), "timeout", cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), cfg.ShutdownTimeout)
		defer cancel()
		return errors.Join(shutdown(sctx, proxySrv, "proxy"), shutdown(sctx, adminSrv, "admin"))
	})
	if err := g.Wait(); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// memoryHeadroom is the least the process may use beyond -l1-max-bytes:
// the runtime, connections, buffers of requests in flight, and the
// collector's room to work. Too little, and a full L1 leaves the collector
// running without pause. -l1-max-bytes counts the memory entries really
// take (tiers.Entry.MemSize, checked against the heap), so with 48 MiB a
// full 64 MiB L1 under the benchmark's zipf load peaked at 121 MiB RSS,
// below the -l1-max-bytes + 64 MiB the benchmark asks, with the collector
// at about a fifth of the CPU (56 MiB: 129 MiB, a ninth).
const memoryHeadroom = 48 << 20

// memoryLimit returns the soft memory limit for an L1 of l1 bytes: l1
// plus memoryHeadroom, or plus three quarters of l1 when that is more.
//
// The headroom grows with the L1 because a collection's work does: it
// marks every entry held, so its cost grows with the L1, and with a fixed
// headroom so does how often it comes, once fragmentation has taken its
// share. A full L1 of 256 MiB (the default; 134,600 JSON pages), 200,000
// gzip hits over 200 of them, 16 connections, one CPU: with 48 MiB of
// headroom a hit cost 59 µs, with 34 collections of ~150 ms (RSS 343 MB;
// 87.5 µs and 76 collections on a busier machine); with 128 MiB 41 µs (15
// collections, RSS 393 MB); with 192 MiB, three quarters of the L1 as a
// 64 MiB L1 has, 34 µs (8), about what a hit costs with a 64 MiB L1, the
// heap in use at 1.41x the L1's bound, RSS 449 MB.
//
// An L1 too large for the sum (-l1-max-bytes takes up to 8 EiB) gets no
// limit, math.MaxInt64, rather than a sum that wraps negative.
func memoryLimit(l1 int64) int64 {
	l1 = max(l1, 0)
	headroom := max(memoryHeadroom, l1/4*3)
	if l1 > math.MaxInt64-headroom {
		return math.MaxInt64
	}
	return l1 + headroom
}

// gcPercentNoL1 is the collector's GOGC when there is no L1, unless the
// environment sets one. The live heap is then a few MiB, and every hit,
// from Redis, is a new copy of its body: at Go's default of 100 the
// collector ran after every 5 MiB allocated and took a sixth of the CPU.
// At 800 it runs after every 40 MiB, within the memory limit of 48 MiB
// that bounds the heap whatever the percent. 16 KiB hits from Redis, 64
// connections, one CPU: 23,300-24,800 req/s at 100, 28,100-29,900 at 800.
//
// With an L1 the default stays: its entries are most of the live heap, so
// once it is full the memory limit, not the percent, decides when to
// collect; and while it is nearly empty a larger percent only spreads the
// allocations over more memory. 1 KiB L1 hits, 256 MiB L1: at 800 the RSS
// grew from 45 to 187 MB and p99 from 2.6-2.75 to 2.95-9.9 ms, for no
// more throughput.
const gcPercentNoL1 = 800

// tuneGC gives the Go runtime a soft memory limit of memoryLimit, unless
// GOMEMLIMIT is set (without it the collector lets the heap grow to twice
// what is live, so a full L1 would cost twice its bound in RSS), and with
// no L1 a GC percent of gcPercentNoL1, unless GOGC is set.
func tuneGC(cfg config, logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := memoryLimit(cfg.L1MaxBytes)
		debug.SetMemoryLimit(limit)
		logger.Debug("memory limit set", "bytes", limit)
	}
	if cfg.L1MaxBytes <= 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercentNoL1)
	}
}

// serveOn serves srv on ln until srv is shut down.
func serveOn(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdown stops srv gracefully, or closes its connections when ctx ends
// first.
func shutdown(ctx context.Context, srv *http.Server, name string) error {
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("%s listener: requests still in flight at the shutdown timeout were cut: %w", name, err)
	}
	return nil
}
