// Command cacheproxy is a caching reverse proxy: it answers from an
// in-process cache (L1), then Redis (L2), then the origin.
//
// Usage:
//
//	cacheproxy [serve] -origin http://127.0.0.1:9000 [flags]
//
// Every flag can also be set with the environment variable
// CACHEPROXY_<NAME> or as a key of the YAML file given by -config; see
// configs/cacheproxy.yaml and cacheproxy -help.
//
// cacheproxy check takes the same flags and validates them, the
// environment and the file as start-up does, without listening. While it
// runs, SIGHUP (or cacheproxy reload) reloads the configuration and
// SIGUSR1 reopens the access log: see docs/operations.md.
//
// Exit status: 0 after a clean shutdown, 1 when the server fails, 2 for a
// bad command line or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal starts the graceful shutdown, restore the
		// default behaviour so that a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program: it dispatches on the subcommand in args[0]
// (serve when args is empty or starts with a flag) and returns the exit
// status. ctx is cancelled to ask for a graceful shutdown.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "-version" || args[0] == "--version") {
		cmd, args = "version", args[1:]
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, getenv, stdout, stderr)
	case "purge":
		return runPurge(ctx, args, getenv, stdout, stderr)
	case "inspect":
		return runInspect(ctx, args, getenv, stdout, stderr)
	case "stats":
		return runStats(ctx, args, getenv, stdout, stderr)
	case "report":
		return runReport(ctx, args, getenv, stdout, stderr)
	case "reload":
		return runReload(ctx, args, getenv, stdout, stderr)
	case "check":
		return runCheck(args, getenv, stdout, stderr)
	case "purges":
		return runPurges(ctx, args, getenv, stdout, stderr)
	case "tail":
		return runTail(ctx, args, getenv, stdout, stderr)
	case "version":
		return runVersion(args, stdout, stderr)
	case "help":
		printUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "cacheproxy: unknown command %q\n\n", cmd)
		printUsage(stderr)
		return 2
	}
}

// runServe loads the configuration and runs the proxy until ctx is done.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "cacheproxy: %v\n", err)
		return 2
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	logger := newLogger(cfg, level, stderr)
	load := func() (config, error) { return loadConfig(args, getenv) }
	if err := serve(ctx, cfg, logger, level, load); err != nil {
		logger.Error("cacheproxy stopped", "err", err)
		return 1
	}
	return 0
}
