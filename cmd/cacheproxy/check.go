package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cacheproxy/cacheproxy/proxy"
)

const checkSynopsis = `Usage:
  cacheproxy check [-config FILE] [flags]

Checks a configuration as start-up does (flags, CACHEPROXY_* environment
variables and the -config file, with the same checks and errors) without
listening or connecting to anything, like nginx -t. Prints the effective
configuration, each setting with where its value came from, and the routes
in match order; then warnings about what looks wrong but starts.

Exit status: 0 when the configuration is valid (warnings or not), 2 when it
is not, with the error start-up would give.
`

// runCheck is cacheproxy check: it takes the serve command's flags.
func runCheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, checkSynopsis)
		return 0
	}
	if err == nil {
		err = proxyOptions(cfg).Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "cacheproxy: %v\n", err)
		return 2
	}
	printConfig(stdout, cfg)
	warnings := configWarnings(cfg, os.Environ())
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "configuration ok, %d warning(s)\n", len(warnings))
	return 0
}

// printConfig writes the effective configuration: every setting with its
// value (secrets not shown), where it came from and whether a reload
// applies it, then the routes in match order.
func printConfig(w io.Writer, cfg config) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SETTING\tFROM\tON RELOAD\tVALUE\n")
	if cfg.ConfigFile != "" {
		fmt.Fprintf(tw, "config\t\trestart\t%s\n", cfg.ConfigFile)
	}
	for _, s := range settings {
		v := cfg.values[s.name]
		if s.redact != nil && v != "" {
			v = s.redact(v)
		} else {
			v = fmt.Sprintf("%q", v)
		}
		onReload := "restart"
		if s.live {
			onReload = "applied"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.name, cfg.sources[s.name], onReload, v)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(cfg.Routes) == 0 {
		fmt.Fprintln(w, "no routes")
		return
	}
	fmt.Fprintf(w, "routes (%s), first match wins, applied on reload:\n", cfg.sources["routes"])
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "#\tPATH\tTTL\tRULE\n")
	for i, rt := range cfg.Routes {
		ttl := "-"
		if rt.TTL > 0 {
			ttl = rt.TTL.String()
		}
		var rule []string
		if rt.Bypass {
			rule = append(rule, "bypass")
		}
		if rt.Override {
			rule = append(rule, "override")
		}
		if rt.IgnoreCookies {
			rule = append(rule, "cookies: ignore")
		}
		if len(rt.Credentials) > 0 {
			rule = append(rule, "credentials: "+strings.Join(rt.Credentials, " "))
		}
		if rt.AnyContentType {
			rule = append(rule, "any-content-type")
		}
		if rt.ClientNoCache != proxy.NoCacheDefault {
			rule = append(rule, "client-no-cache: "+rt.ClientNoCache.String())
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i, rt.Path, ttl, strings.Join(rule, ", "))
	}
	tw.Flush()
}

// configWarnings returns what looks wrong in a configuration that loads:
// a route without a ttl, an override without a ttl, a route that an
// earlier one shadows, and a CACHEPROXY_* variable of environ that names
// no setting. Start-up, reload and check report them.
func configWarnings(cfg config, environ []string) []string {
	var out []string
	defaultTTL := "-default-ttl " + cfg.DefaultTTL.String()
	for i, rt := range cfg.Routes {
		name := fmt.Sprintf("routes[%d] %s", i, rt.Path)
		switch {
		case rt.Bypass:
		case rt.Override && rt.TTL == 0:
			out = append(out, fmt.Sprintf("%s: override without a ttl: every response is kept for %s, whatever the origin says; give the route its own ttl", name, defaultTTL))
		case rt.TTL == 0 && cfg.DefaultTTL == 0:
			out = append(out, fmt.Sprintf("%s: no ttl, and -default-ttl is 0: only responses with explicit freshness (max-age, Expires) are stored, as without the route", name))
		case rt.TTL == 0:
			out = append(out, fmt.Sprintf("%s: no ttl: responses without explicit freshness get the heuristic freshness of %s; give the route a ttl", name, defaultTTL))
		}
		for j := range i {
			if cfg.Routes[j].Covers(rt) {
				out = append(out, fmt.Sprintf("%s: never applies: routes[%d] %s comes first and matches every path it matches", name, j, cfg.Routes[j].Path))
				break
			}
		}
	}
	known := map[string]bool{envName("config"): true, "CACHEPROXY_ADMIN": true} // CACHEPROXY_ADMIN: the CLI's admin API
	for _, s := range settings {
		known[envName(s.name)] = true
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !known[name] {
			out = append(out, fmt.Sprintf("environment variable %s names no setting: it is ignored (a typo? see cacheproxy -help)", name))
		}
	}
	return out
}
