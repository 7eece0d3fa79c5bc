// Command demo-origin is the sample origin of the quickstart and the
// benchmarks: the leaderboard API of a game, written like a plain Django
// view behind cache_page. Its answers carry no Cache-Control, every request
// pays an artificial latency (like a database query), and the player and
// rank pages carry Cache-Tag headers for tag purges.
//
//	GET  /rank                 top 100 players by total score (Cache-Tag: rank)
//	GET  /players/{id}         one player, 404 if unknown (Cache-Tag: player:<id>)
//	POST /games                {"player": id, "score": n} records a game, 201
//	GET  /blob/{id}?size=N     N deterministic bytes, Cache-Control: max-age=300
//
// Usage:
//
//	demo-origin [-listen 127.0.0.1:9000] [-latency 50ms] [-players 1000]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run serves the demo API until ctx is done and returns the exit status:
// 2 for bad flags, 1 if the server fails.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "listen address")
	latency := fs.Duration("latency", 50*time.Millisecond, "artificial delay added to every request, like a database query")
	players := fs.Int("players", 1000, "number of seeded players (deterministic)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "demo-origin: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *latency < 0:
		fmt.Fprintln(stderr, "demo-origin: invalid -latency: must not be negative")
		return 2
	case *players < 0:
		fmt.Fprintln(stderr, "demo-origin: invalid -players: must not be negative")
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("listen", "err", err)
		return 1
	}
	srv := &http.Server{
		Handler:           newLeaderboard(*players, *latency).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("demo-origin listening", "addr", ln.Addr().String(), "players", *players, "latency", latency.String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		logger.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
}
