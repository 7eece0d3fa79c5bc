package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
)

// reloader re-reads the configuration (SIGHUP, POST /reload) and applies
// to the running process the settings that may change live (those marked
// live in the settings table, and the routes), keeping L1, L2 and the
// fleet membership. A configuration that does not load is refused with
// the error start-up would give, and the running one kept.
type reloader struct {
	load   func() (config, error) // loadConfig with the process's arguments and environment
	stack  *stack
	level  *slog.LevelVar
	access *accessLogger
	logger *slog.Logger
	warn   func(config) []string // the configuration's warnings (see configWarnings)

	mu  sync.Mutex
	cur config // the running configuration
}

// reloadAnswer is what a reload changed (the settings applied) and the
// changes it did not apply, which need a restart.
type reloadAnswer struct {
	Changed       []string `json:"changed"`
	RestartNeeded []string `json:"restart_needed"`
	Warnings      []string `json:"warnings,omitempty"`
}

// errReloadRefused wraps the error of a configuration a reload refused.
var errReloadRefused = errors.New("reload refused, the running configuration is kept")

// reload loads the configuration again and applies what it may; trigger
// says what asked for it, for the log.
func (r *reloader) reload(trigger string) (reloadAnswer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, err := r.load()
	if err == nil {
		err = proxyOptions(next).Validate()
	}
	if err != nil {
		r.logger.Error("reload refused: the running configuration is kept", "trigger", trigger, "err", err.Error())
		return reloadAnswer{}, errors.Join(errReloadRefused, err)
	}
	ans := reloadAnswer{Changed: []string{}, RestartNeeded: []string{}}
	run := r.cur
	run.values, run.sources = maps.Clone(r.cur.values), maps.Clone(r.cur.sources)
	for _, s := range settings {
		if next.values[s.name] == r.cur.values[s.name] {
			run.sources[s.name] = next.sources[s.name]
			continue
		}
		if !s.live {
			ans.RestartNeeded = append(ans.RestartNeeded, s.name)
			continue
		}
		ans.Changed = append(ans.Changed, s.name)
		// The value parsed as at start-up, into the running
		// configuration: restart-only settings keep their running values.
		if err := s.parse(&run, next.values[s.name]); err != nil {
			panic("a value that loaded does not parse again: " + err.Error())
		}
		run.values[s.name], run.sources[s.name] = next.values[s.name], next.sources[s.name]
	}
	if !reflect.DeepEqual(next.Routes, r.cur.Routes) {
		ans.Changed = append(ans.Changed, "routes")
		run.Routes, run.sources["routes"] = next.Routes, next.sources["routes"]
	}
	// The access log first: a file that cannot be opened refuses the
	// reload before anything changed.
	if err := r.access.set(run.AccessLog); err != nil {
		r.logger.Error("reload refused: the running configuration is kept", "trigger", trigger, "err", err.Error())
		return reloadAnswer{}, errors.Join(errReloadRefused, err)
	}
	if err := r.stack.proxy.Reload(proxyOptions(run)); err != nil {
		// Validated above with the same routes and values.
		panic("proxy.Reload refused options that validated: " + err.Error())
	}
	r.level.Set(run.LogLevel)
	r.cur = run
	ans.Warnings = r.warn(run)
	r.logger.Info("configuration reloaded", "trigger", trigger, "changed", ans.Changed, "restart_needed", ans.RestartNeeded)
	if len(ans.RestartNeeded) > 0 {
		r.logger.Warn("settings changed that a reload does not apply: restart to apply them", "settings", ans.RestartNeeded)
	}
	for _, w := range ans.Warnings {
		r.logger.Warn("configuration warning", "warning", w)
	}
	return ans, nil
}

// serveReload is POST /reload: a reload, for platforms without signals.
// It answers 200 with what changed, or 422 with the error start-up would
// give.
func (r *reloader) serveReload(w http.ResponseWriter, _ *http.Request) {
	ans, err := r.reload("admin")
	if err != nil {
		admin.WriteJSON(w, http.StatusUnprocessableEntity, proxy.ErrorAnswer{Error: err.Error()})
		return
	}
	admin.WriteJSON(w, http.StatusOK, ans)
}

const reloadSynopsis = `Usage:
  cacheproxy reload [flags]

Asks a running instance to reload its configuration (POST /reload), as
SIGHUP does, for platforms without signals: it reads its -config file and
environment again and applies what may change live (routes, TTLs, the
client no-cache policy, header lists, limits, log level, access log),
keeping its caches and its fleet membership. Prints what changed and what
needs a restart.

Exit status: 0 when the configuration was reloaded, 1 when it was refused
(the instance keeps running its configuration) or on error, 2 for a bad
command line.

Flags:
`

// runReload is cacheproxy reload.
func runReload(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := newClientCmd("reload", reloadSynopsis, getenv, stdout, stderr)
	pos, code, ok := c.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	status, body, err := c.call(ctx, http.MethodPost, "/reload", nil, nil)
	if err != nil {
		return c.unreachable(err)
	}
	if status == http.StatusUnprocessableEntity {
		return c.fail("%s", serverError(body)) // the configuration's error
	}
	if status != http.StatusOK {
		return c.failStatus(status, body)
	}
	var a reloadAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return c.fail("bad answer from the admin API at %s: %v", c.base.Redacted(), err)
	}
	if !c.json {
		fmt.Fprintf(stdout, "reloaded; changed: %s\n", orNone(a.Changed))
		if len(a.RestartNeeded) > 0 {
			fmt.Fprintf(stdout, "not applied, restart to apply: %s\n", strings.Join(a.RestartNeeded, ", "))
		}
		for _, w := range a.Warnings {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
	}
	return 0
}
