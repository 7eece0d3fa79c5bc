package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// readConfigFile reads the YAML file: a mapping of setting names to scalars
// plus the routes list. Unknown keys are errors.
func readConfigFile(name string) (map[string]fileValue, []proxy.Route, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid -config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("invalid -config file %s: %w", name, err)
	}
	if len(doc.Content) == 0 { // empty file
		return nil, nil, nil
	}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("invalid -config file %s:%d: want a mapping of keys to values", name, top.Line)
	}
	known := make(map[string]bool, len(settings))
	for _, s := range settings {
		known[s.name] = true
	}
	values := map[string]fileValue{}
	var routes []proxy.Route
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], resolve(top.Content[i+1])
		at := fromFile(name, k.Line)
		if seen[k.Value] {
			return nil, nil, fmt.Errorf("invalid -config (%s): key %q given twice", at, k.Value)
		}
		seen[k.Value] = true
		switch {
		case k.Value == "routes":
			if routes, err = parseRoutes(name, v); err != nil {
				return nil, nil, err
			}
		case known[k.Value]:
			s, err := scalar(v)
			if err != nil {
				return nil, nil, fmt.Errorf("invalid %s: %w", at.describe("-"+k.Value), err)
			}
			values[k.Value] = fileValue{value: s, line: k.Line}
		default:
			return nil, nil, fmt.Errorf("invalid -config (%s): unknown key %q (known keys: %s, routes)", at, k.Value, knownKeys())
		}
	}
	return values, routes, nil
}

func knownKeys() string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// scalar returns the text of a scalar node; null is the empty string.
func scalar(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errors.New("want a single value, not a list or mapping")
	}
	if n.ShortTag() == "!!null" {
		return "", nil
	}
	return n.Value, nil
}

// headerNames reads a route's list of header names: a YAML list, or one
// comma-separated value.
func headerNames(n *yaml.Node) ([]string, error) {
	var raw []string
	switch n.Kind {
	case yaml.SequenceNode:
		for _, item := range n.Content {
			s, err := scalar(resolve(item))
			if err != nil {
				return nil, err
			}
			raw = append(raw, s)
		}
	case yaml.ScalarNode:
		raw = strings.Split(n.Value, ",")
	default:
		return nil, errors.New("want a list of header names")
	}
	var names []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			names = append(names, s)
		}
	}
	return names, nil
}

// parseRoutes maps the routes list into proxy routes.
func parseRoutes(file string, n *yaml.Node) ([]proxy.Route, error) {
	if n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("invalid routes (%s): want a list of {path, ttl, bypass, override}", fromFile(file, n.Line))
	}
	routes := make([]proxy.Route, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolve(item)
		field := fmt.Sprintf("routes[%d]", i)
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("invalid %s (%s): want a mapping {path, ttl, bypass, override}", field, fromFile(file, item.Line))
		}
		var r proxy.Route
		var hasPath, hasTTL bool
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], resolve(item.Content[j+1])
			name := field + "." + k.Value
			at := fromFile(file, k.Line)
			if k.Value == "status-ttl" {
				m, err := routeStatusTTL(v)
				if err != nil {
					return nil, fmt.Errorf("invalid %s: %w", at.describe(name), err)
				}
				r.StatusTTL = m
				continue
			}
			if k.Value == "credentials" {
				names, err := headerNames(v)
				if err != nil {
					return nil, fmt.Errorf("invalid %s: %w", at.describe(name), err)
				}
				r.Credentials = names
				continue
			}
			s, err := scalar(v)
			if err != nil {
				return nil, fmt.Errorf("invalid %s: %w", at.describe(name), err)
			}
			switch k.Value {
			case "path":
				if err := checkRoutePath(s); err != nil {
					return nil, fmt.Errorf("invalid %s: %q: %w", at.describe(name), s, err)
				}
				r.Path, hasPath = s, true
			case "ttl":
				if r.TTL, err = parseDuration(s, false); err != nil {
					return nil, fmt.Errorf("invalid %s: %q: %w", at.describe(name), s, err)
				}
				hasTTL = true
			case "stale-if-error", "stale-while-revalidate":
				d, err := parseDuration(s, false)
				if err != nil {
					return nil, fmt.Errorf("invalid %s: %q: %w", at.describe(name), s, err)
				}
				if k.Value == "stale-if-error" {
					r.StaleIfError = d
				} else {
					r.StaleWhileRevalidate = d
				}
			case "client-no-cache":
				p, err := proxy.ParseClientNoCache(s)
				if err != nil {
					return nil, fmt.Errorf("invalid %s: %q: %w", at.describe(name), s, err)
				}
				r.ClientNoCache = p
			case "cookies":
				switch s {
				case "ignore":
					r.IgnoreCookies = true
				case "", "respect":
					r.IgnoreCookies = false
				default:
					return nil, fmt.Errorf("invalid %s: %q: want ignore (the cookie does not change the answer) or respect", at.describe(name), s)
				}
			case "bypass", "override", "any-content-type":
				b, err := strconv.ParseBool(s)
				if err != nil {
					return nil, fmt.Errorf("invalid %s: %q: want true or false", at.describe(name), s)
				}
				switch k.Value {
				case "bypass":
					r.Bypass = b
				case "override":
					r.Override = b
				default:
					r.AnyContentType = b
				}
			default:
				return nil, fmt.Errorf("invalid %s (%s): unknown key %q (known keys: path, ttl, bypass, override, cookies, credentials, any-content-type, client-no-cache, stale-if-error, stale-while-revalidate, status-ttl)", field, at, k.Value)
			}
		}
		at := fromFile(file, item.Line)
		if !hasPath {
			return nil, fmt.Errorf("invalid %s (%s): path is required", field, at)
		}
		if r.Bypass && (hasTTL || r.Override || r.IgnoreCookies) {
			return nil, fmt.Errorf("invalid %s (%s): bypass excludes ttl, override and cookies", field, at)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("invalid %s (%s): %w", field, at, err)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// routeStatusTTL reads a route's status-ttl: a mapping {404: 10s}, or
// the flag's form "404=10s,410=1m".
func routeStatusTTL(n *yaml.Node) (map[int]time.Duration, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return parseStatusTTL(n.Value)
	case yaml.MappingNode:
		m := map[int]time.Duration{}
		for j := 0; j+1 < len(n.Content); j += 2 {
			v := resolve(n.Content[j+1])
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("status %s: want a duration", n.Content[j].Value)
			}
			if err := addStatusTTL(m, n.Content[j].Value, v.Value); err != nil {
				return nil, err
			}
		}
		return m, proxy.ValidateStatusTTL(m)
	}
	return nil, errors.New("want a mapping {404: 10s} or 404=10s,410=1m")
}

// checkRoutePath accepts a path prefix or a glob as proxy.Route documents.
func checkRoutePath(p string) error {
	return proxy.Route{Path: p}.Validate()
}
