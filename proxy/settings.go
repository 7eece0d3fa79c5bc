package proxy

import (
	"net/http"
	"strings"
	"time"
)

// settings are the options a running Handler may change (Reload): routes,
// the heuristic TTL, the client no-cache policy, the strip and tag header
// lists and the size and body-time limits. A settings value is immutable
// once built; the Handler holds the current one in an atomic pointer, and
// a request loads it once, at the top of ServeHTTP, so that its route,
// TTL and policy come from one configuration from start to end. The other
// options (origin, tiers, key prefix, hosts, L1 TTL, lock timeout, ...)
// are fixed when the Handler is made.
type settings struct {
	routes []Route
	// counts are the report's counters of each route, indexed like
	// routes; a route kept by a reload (same rule) keeps its counters.
	counts        []*counters
	defaultTTL    time.Duration
	noCachePolicy ClientNoCachePolicy // Options.ClientNoCache
	strip         []string            // canonical names, see Options.StripHeaders
	stripSet      map[string]bool
	tagHeaders    []string // canonical names, see Options.TagHeaders
	maxObject     int64
	bodyTimeout   time.Duration
}

// newSettings returns the live settings of o, whose defaults are filled
// in, keeping the report counters of prev's routes that o keeps.
func newSettings(o Options, prev *settings) *settings {
	s := &settings{
		routes:        append([]Route(nil), o.Routes...),
		defaultTTL:    o.DefaultTTL,
		noCachePolicy: o.ClientNoCache,
		tagHeaders:    o.TagHeaders,
		maxObject:     o.MaxObjectBytes,
		bodyTimeout:   o.BodyTimeout,
		stripSet:      make(map[string]bool, len(o.StripHeaders)),
	}
	for _, n := range o.StripHeaders {
		if n = http.CanonicalHeaderKey(strings.TrimSpace(n)); n != "" && !s.stripSet[n] {
			s.stripSet[n] = true
			s.strip = append(s.strip, n)
		}
	}
	s.counts = make([]*counters, len(s.routes))
	for i, rt := range s.routes {
		if prev != nil {
			for j, old := range prev.routes {
				if old.same(rt) {
					s.counts[i] = prev.counts[j]
					break
				}
			}
		}
		if s.counts[i] == nil {
			c := newCounters()
			s.counts[i] = &c
		}
	}
	return s
}

// routeCounters returns the report counters of rt, a route of s, or nil.
func (s *settings) routeCounters(rt *Route) *counters {
	for i := 0; rt != nil && i < len(s.routes); i++ {
		if rt == &s.routes[i] {
			return s.counts[i]
		}
	}
	return nil
}
