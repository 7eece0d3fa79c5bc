// Package proxy is the HTTP behaviour of cacheproxy: a reverse proxy that
// answers GET and HEAD from a local tier, then a shared tier, then the
// origin, storing what RFC 9111 lets a shared cache store.
//
// The Handler speaks net/http only; the tiers it uses are the small Tier
// interface, so this package depends on neither ristretto nor Redis.
//
// A request is read top to bottom: ServeHTTP (exchange.go) makes one
// exchange for it and walks it through the tier chain (chain.go), then the
// collapsed fill (collapse.go, flight.go), the fleet's fill lease
// (lease.go) and the origin (fill.go); what may be stored and for how long
// is decided in storable.go and freshness.go, conditional requests in
// conditional.go, and how the answer is named in outcome.go.
package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Handler is a caching reverse proxy. It is an http.Handler, safe for
// concurrent use. Create it with New.
type Handler struct {
	o Options // as given, with defaults filled in; never modified

	origin   *urlBase
	chain    *chain
	pass     *httputil.ReverseProxy
	flights  flightGroup
	m        *metrics
	rep      *report
	inflight budget
	hosts    map[string]bool // nil: every Host, none in the key
	strip    []string        // canonical names, see Options.StripHeaders
	stripSet map[string]bool
	keyPre   string // the first part of every key without Hosts (see baseKey)
}

// New returns a Handler for opts, or an error naming the option that is
// not valid.
func New(opts Options) (*Handler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	h := &Handler{o: opts.withDefaults(), origin: newURLBase(opts.Origin), m: newMetrics()}
	h.o.Routes = append([]Route(nil), opts.Routes...)
	h.rep = newReport(len(h.o.Routes))
	h.keyPre = h.o.KeyPrefix + ":" + keyVersion + ":G"
	for _, hn := range opts.Hosts {
		if h.hosts == nil {
			h.hosts = make(map[string]bool)
		}
		h.hosts[canonicalHost(hn)] = true
	}
	h.stripSet = make(map[string]bool, len(h.o.StripHeaders))
	for _, n := range h.o.StripHeaders {
		if n = http.CanonicalHeaderKey(strings.TrimSpace(n)); n != "" && !h.stripSet[n] {
			h.stripSet[n] = true
			h.strip = append(h.strip, n)
		}
	}
	h.inflight.max = h.o.MaxInflightBytes
	h.flights.lockTimeout = h.o.LockTimeout
	h.chain = &chain{local: h.o.Local, shared: h.o.Shared, usable: h.o.LocalUsable, bans: h.o.Bans,
		l1TTL: h.o.L1TTL, maxTTL: h.o.MaxTTL, variant: h.variantKey, m: h.m, log: h.o.Logger, now: h.o.Now, rep: h.rep}
	h.pass = h.newPassthrough()
	return h, nil
}

// withDefaults returns o with every zero field that has a default set to
// it.
func (o Options) withDefaults() Options {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&o.MaxTTL, 24*time.Hour)
	set(&o.L1TTL, 30*time.Second)
	set(&o.FillTimeout, 30*time.Second)
	set(&o.LockTimeout, 5*time.Second)
	set(&o.BodyTimeout, 60*time.Second)
	if o.KeyPrefix == "" {
		o.KeyPrefix = "cacheproxy"
	}
	if o.MaxObjectBytes == 0 {
		o.MaxObjectBytes = 8 << 20
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = 256 << 20
	}
	if o.StripHeaders == nil {
		o.StripHeaders = DefaultStripHeaders
	}
	if o.TagHeaders == nil {
		o.TagHeaders = DefaultTagHeaders
	}
	o.TagHeaders = append([]string(nil), o.TagHeaders...)
	for i, n := range o.TagHeaders {
		o.TagHeaders[i] = http.CanonicalHeaderKey(strings.TrimSpace(n))
	}
	if o.Bans == nil {
		o.Bans = new(tiers.Bans)
	}
	if o.Instance == "" {
		host, _ := os.Hostname()
		o.Instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.LocalUsable == nil {
		o.LocalUsable = func() bool { return true }
	}
	if o.Transport == nil {
		o.Transport = defaultTransport()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// count counts one answer: in the metrics, and in the cacheability report
// under the canonical path's pattern and its route, with the reason it was
// not stored or not answered from the cache (detail), if any.
func (h *Handler) count(path string, rt *Route, o *outcome, detail string) {
	h.m.request(o)
	h.rep.add(path, h.routeIndex(rt), o, detail)
}

// countEntry is count for an answer from an entry, which may carry the
// note of its pattern's counters (see report.note).
func (h *Handler) countEntry(e *tiers.Entry, x *exchange, o *outcome) {
	c := h.rep.noted(e.Note)
	if c == nil {
		h.count(x.path, x.rt, o, x.why)
		return
	}
	h.m.request(o)
	c.add(o, x.why)
	if i := h.routeIndex(x.rt); i >= 0 {
		h.rep.routes[i].add(o, x.why)
	}
}

// routeIndex returns the index of rt in the routes, -1 for nil.
func (h *Handler) routeIndex(rt *Route) int {
	for i := 0; rt != nil && i < len(h.o.Routes); i++ {
		if rt == &h.o.Routes[i] {
			return i
		}
	}
	return -1
}
