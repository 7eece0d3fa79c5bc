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
	"sync"
	"sync/atomic"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Handler is a caching reverse proxy. It is an http.Handler, safe for
// concurrent use. Create it with New.
type Handler struct {
	// o is the options as given, with defaults filled in; never
	// modified. Those that may change live are read from live, never
	// from o (see settings).
	o        Options
	live     atomic.Pointer[settings]
	reloadMu sync.Mutex // one Reload at a time

	origin   *urlBase
	chain    *chain
	pass     *httputil.ReverseProxy
	flights  flightGroup
	backoffs backoffs
	m        *metrics
	rep      *report
	inflight budget
	hosts    map[string]bool // nil: every Host, none in the key
	keyPre   string          // the first part of every key without Hosts (see baseKey)

	// What the invalidations after unsafe requests may spend (invalidate.go).
	budgets       *banBudgets
	filling       fillsRunning
	overBudgetLog everyMinute
}

// New returns a Handler for opts, or an error naming the option that is
// not valid.
func New(opts Options) (*Handler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	h := &Handler{o: opts.withDefaults(), origin: newURLBase(opts.Origin), m: newMetrics()}
	h.live.Store(newSettings(h.o, nil))
	h.o.Routes, h.o.StripHeaders, h.o.TagHeaders = nil, nil, nil // see live
	h.rep = newReport()
	h.keyPre = h.o.KeyPrefix + ":" + keyVersion + ":G"
	for _, hn := range opts.Hosts {
		if h.hosts == nil {
			h.hosts = make(map[string]bool)
		}
		h.hosts[canonicalHost(hn)] = true
	}
	h.inflight.max = h.o.MaxInflightBytes
	h.flights.lockTimeout = h.o.LockTimeout
	h.chain = &chain{local: h.o.Local, shared: h.o.Shared, usable: h.o.LocalUsable, bans: h.o.Bans,
		l1TTL: h.o.L1TTL, maxTTL: h.o.MaxTTL, variant: h.variantKey, m: h.m, log: h.o.Logger, now: h.o.Now, rep: h.rep}
	h.o.Transport = h.gate(h.o.Transport, h.o.MaxOriginConns, h.o.OriginQueueWait)
	h.pass = h.newPassthrough()
	h.budgets = newBanBudgets(h.clientBanBytes(), h.banRetention())
	return h, nil
}

// withDefaults returns o with every zero field that has a default set to
// it.
func (o Options) withDefaults() Options {
	setDefault(&o.MaxTTL, tiers.DefaultMaxTTL)
	setDefault(&o.L1TTL, 30*time.Second)
	setDefault(&o.FillTimeout, tiers.DefaultFillTimeout)
	setDefault(&o.LockTimeout, 5*time.Second)
	setDefault(&o.OriginBackoff, time.Second)
	setDefault(&o.OriginBackoffMax, 30*time.Second)
	o.OriginBackoffMax = max(o.OriginBackoffMax, o.OriginBackoff)
	setDefault(&o.BodyTimeout, 60*time.Second)
	setDefault(&o.OriginQueueWait, 5*time.Second)
	setDefault(&o.KeyPrefix, "cacheproxy")
	setDefault(&o.MaxObjectBytes, 8<<20)
	setDefault(&o.MaxInflightBytes, 256<<20)
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
	setDefault(&o.Bans, new(tiers.Bans))
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
	setDefault(&o.Logger, slog.Default())
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// clientBanBytes is Options.ClientBanBytes, or its default: 1/32 of the
// ban table's smaller bound, its bytes or its count of bans at
// tiers.BanOverhead each (800,000 bytes with the default bounds).
func (h *Handler) clientBanBytes() int {
	if h.o.ClientBanBytes > 0 {
		return h.o.ClientBanBytes
	}
	maxBans, maxBytes := h.o.Bans.Limits()
	return min(maxBytes, maxBans*tiers.BanOverhead) / 32
}

// setDefault sets *p to def if it is the zero value.
func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// BanRetention is how long a purge must be remembered with these
// options, their defaults applied: tiers.BanRetention of MaxTTL and
// FillTimeout. The fleet's purge log keeps bans as long
// (shared.Options.BanKeep).
func (o Options) BanRetention() time.Duration {
	o = o.withDefaults()
	return tiers.BanRetention(o.MaxTTL, o.FillTimeout)
}
