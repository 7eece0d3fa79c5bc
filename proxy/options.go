package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Tier is a cache tier as the proxy uses it. tiers/local and tiers/shared
// implement it.
type Tier interface {
	// Get returns the entry stored under key. A miss is (nil, false, nil);
	// an error means the tier could not answer and is treated as a miss.
	Get(ctx context.Context, key string) (*tiers.Entry, bool, error)
	// Set stores e under key for at most ttl. e must not be modified
	// afterwards.
	Set(ctx context.Context, key string, e *tiers.Entry, ttl time.Duration) error
	// Delete removes the given keys.
	Delete(ctx context.Context, keys ...string) error
}

// Route is a per-path caching rule. The first route whose Path matches a
// request's path applies.
type Route struct {
	// Path is a path prefix ("/players/") or, when it contains any of
	// "*?[", a glob in the syntax of path.Match where "*" does not
	// cross "/"; a trailing "/**" matches everything below.
	Path string
	// TTL is the freshness given to cacheable responses of this route
	// that carry no explicit freshness, or to every response when
	// Override is set. Zero means the proxy's DefaultTTL.
	TTL time.Duration
	// Bypass means requests on this route are never looked up or stored.
	Bypass bool
	// Override replaces the origin's freshness (Cache-Control max-age,
	// s-maxage, no-cache, Expires and Age) by TTL, as Django's cache_page
	// does. It replaces freshness only: responses that are not 200, that
	// are private or no-store, or that set a cookie are never stored, and
	// the sharing rule (sharing.go) applies first: a response to a
	// request with credentials is stored only with the origin's explicit
	// permission to share it.
	Override bool
	// IgnoreCookies says that a request's Cookie does not change the
	// route's answers. The proxy makes that true: on the route, a GET or
	// HEAD is looked up, keyed and sent to the origin without its
	// Cookie. Requests with other methods keep theirs.
	IgnoreCookies bool
	// Credentials names request headers that identify a client on this
	// route (an API key header such as "X-Api-Key"), beside
	// Authorization and Cookie: a response to a request carrying one is
	// stored for others only with the origin's explicit permission to
	// share it, or when it varies on that header.
	Credentials []string
	// AnyContentType lets a route whose pattern names a file extension
	// ("/assets/*.css") store responses of any Content-Type. By default
	// such a route stores only responses whose Content-Type is one the
	// extension names (or that have none), so that a page served at a
	// static-looking URL is not stored for everyone (web cache
	// deception).
	AnyContentType bool
	// ClientNoCache is how this route treats a client's request for the
	// origin's answer (Cache-Control: no-cache or max-age=0, Pragma:
	// no-cache): see Options.ClientNoCache. If NoCacheDefault, the
	// Handler's, but NoCacheIgnore on an Override route (as Django's
	// cache_page does).
	ClientNoCache ClientNoCachePolicy
	// StaleIfError and StaleWhileRevalidate are the stale windows (RFC
	// 5861) given to this route's stored responses whose Cache-Control
	// states none of its own: how long past its freshness a response
	// may be served when the origin fails, or while it is revalidated in
	// the background. They are recorded on the entry when it is stored,
	// so every instance serves it alike, and the entry is kept that long
	// past its freshness in each tier. Zero means the Handler's.
	StaleIfError, StaleWhileRevalidate time.Duration
	// StatusTTL gives a freshness lifetime per status code to this
	// route's responses that state no explicit freshness (nginx's
	// proxy_cache_valid), for negative caching: {404: 10s}. It changes
	// freshness only: a response that is private, no-store, sets a
	// cookie or may not be shared (sharing.go) is never stored. Statuses
	// 200 to 499 but 206 and 304; a status not listed takes the
	// Handler's StatusTTL, then the usual rules.
	StatusTTL map[int]time.Duration
}

// Options configures a Handler. The zero value of each field is a usable
// default unless its comment says otherwise.
type Options struct {
	// Origin is the base URL requests are forwarded to. Required.
	Origin *url.URL

	// KeyPrefix namespaces every cache key. If empty, "cacheproxy".
	KeyPrefix string

	// DefaultTTL is the heuristic freshness (RFC 9111 §4.2.2) given to
	// cacheable responses with no explicit freshness. Zero stores only
	// responses with explicit freshness.
	DefaultTTL time.Duration

	// L1TTL is the longest an entry stays in Local. If zero, 30s.
	L1TTL time.Duration

	// MaxObjectBytes is the largest body that is buffered and stored;
	// larger responses are streamed through. If zero, 8 MiB.
	MaxObjectBytes int64

	// Routes are per-path rules, first match wins.
	Routes []Route

	// Local is the in-process tier (L1). Nil means none.
	Local Tier
	// Shared is the shared tier (L2). Nil means none.
	Shared Tier

	// Transport performs origin requests. If nil, a clone of
	// http.DefaultTransport tuned for a single origin.
	Transport http.RoundTripper

	// FillTimeout bounds one origin fetch made on behalf of possibly
	// several clients. If zero, 30s.
	FillTimeout time.Duration

	// ClientNoCache is how a client's request for the origin's answer
	// (Cache-Control: no-cache or max-age=0, Pragma: no-cache, as a
	// browser's reload sends) is treated: NoCacheHonour (the default, RFC
	// 9111: a stored entry is revalidated with a conditional request when
	// it has a validator, else fetched again), NoCacheRevalidate (only
	// revalidated: an entry without a validator is served as if the
	// directive were absent, so no client can make the proxy fetch it
	// whole at will), or NoCacheIgnore (every request cache directive is
	// ignored). See ClientNoCachePolicy.
	ClientNoCache ClientNoCachePolicy

	// LockTimeout bounds how long a request waits for another request's
	// fill of the same key (nginx's proxy_cache_lock_timeout), here or,
	// through the fill lease, on another instance: it then serves its
	// stale copy where the response allows (stale-if-error or
	// stale-while-revalidate), or fetches on its own. A fill older than
	// this is not joined at all. If zero, 5s.
	LockTimeout time.Duration

	// StaleIfError and StaleWhileRevalidate are the stale windows given
	// to stored responses that state none, on routes that set none (see
	// Route.StaleIfError). Zero: none.
	StaleIfError, StaleWhileRevalidate time.Duration
	// StatusTTL is the freshness lifetime per status code given to
	// responses without explicit freshness, on every route (see
	// Route.StatusTTL). Nil: none, the usual rules.
	StatusTTL map[int]time.Duration

	// OriginBackoff is how long, after a key's origin fetch failed (an
	// error, a refused connection or a 5xx), requests for it that have a
	// stale copy they may serve on error are served it without asking the
	// origin; the fleet through the shared tier. It doubles with each
	// failure in a row, up to OriginBackoffMax; a fetch that succeeds
	// ends it. See backoff.go. If zero, 1s.
	OriginBackoff time.Duration
	// OriginBackoffMax caps OriginBackoff's doubling. If zero, 30s.
	OriginBackoffMax time.Duration

	// Logger receives the proxy's logs. If nil, slog.Default().
	Logger *slog.Logger

	// Now returns the current time. If nil, time.Now. For tests.
	Now func() time.Time

	// Bans is the table of purges this instance has applied; every
	// entry read from a tier is checked against it. If nil, a table of
	// the Handler's own, fed only by Purge.
	Bans *tiers.Bans

	// LocalUsable reports whether Local may be used now. An instance in
	// a fleet returns false while it cannot be sure it has seen every
	// purge (its invalidation subscription is down). If nil, always.
	LocalUsable func() bool

	// Fleet records purges for every instance sharing the shared tier
	// (shared.Fleet): Purge and the invalidation after an unsafe request
	// (RFC 9111 §4.4) go through it. If nil, a purge is this
	// instance's alone.
	Fleet Fleet

	// Instance names this instance in purge answers. If empty, the
	// host name and process ID, "host-1234".
	Instance string

	// PublicHost is the host name clients use to reach the proxy (e.g.
	// "api.example.com"). It is sent to the origin as X-Forwarded-Host,
	// and a Location on it is this proxy's own. If empty, the origin
	// receives no X-Forwarded-Host. The client's Host never reaches the
	// origin: the origin is sent its own host, as nginx does by default.
	PublicHost string

	// Hosts, if set, are the public host names this proxy serves, for one
	// proxy in front of several names: the request's Host (lower-cased,
	// without port) must be one of them, else the answer is 421 and the
	// origin is not asked; it is part of the cache key, and sent to the
	// origin as Host and X-Forwarded-Host. Excludes PublicHost.
	Hosts []string

	// StripHeaders are request headers removed before a request that may
	// be stored reaches the origin: headers that can change a response
	// but are not part of the cache key (forwarding and override
	// headers). If nil, DefaultStripHeaders. X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host are always set by the proxy
	// itself, on every request.
	StripHeaders []string

	// TagHeaders are the response headers naming an entry's tags for
	// purges by tag; they are removed before a response reaches a
	// client. If nil, DefaultTagHeaders.
	TagHeaders []string

	// MaxTTL caps how long any entry is kept in any tier, whatever its
	// freshness. Purges are remembered for MaxTTL plus FillTimeout. If
	// zero, 24h.
	MaxTTL time.Duration

	// MaxInflightBytes bounds the bytes of response bodies that fills
	// hold in memory at once while they read them to store them. A
	// storable response that would take the total over it is streamed
	// to the one client it was fetched for, and not stored; so is any
	// response that may not be stored, whatever its size. Request bodies
	// buffered under RequestBuffering count against it too. If zero,
	// 256 MiB.
	MaxInflightBytes int64

	// ClientBanBytes bounds the bans that the invalidations after one
	// client's unsafe requests (RFC 9111 §4.4) may record: a token bucket
	// of this many bytes (each ban counting tiers.BanCost of its URL) per
	// client address, refilled at as many per ban retention
	// (Options.BanRetention: 25h by default), so that over any retention one client records
	// at most twice it. Past it, an invalidation deletes the URL's keys
	// from the shared tier and this instance's L1 instead of recording a
	// ban. An invalidation of a URL that nothing holds records no ban and
	// costs nothing. Admin purges are not counted. If zero, 1/32 of the
	// smaller of the ban table's bounds (Bans.Limits: MaxBytes, or
	// MaxBans times tiers.BanOverhead): 800,000 bytes by default.
	ClientBanBytes int

	// BodyTimeout bounds the wait for each read of a request body that
	// is forwarded to the origin (nginx's client_body_timeout): a client
	// that sends nothing for that long gets a 408, unless the origin has
	// answered already, and the origin request is aborted. It needs a
	// ResponseWriter that supports http.ResponseController's
	// SetReadDeadline, as net/http's does. If zero, 60s.
	BodyTimeout time.Duration

	// RequestBuffering is the largest request body that is read whole
	// before the origin is asked (nginx's proxy_request_buffering), so
	// that a client sending its body slowly holds no origin connection
	// meanwhile; the bytes are taken from MaxInflightBytes's budget, and
	// a body that does not fit, or is longer, streams as it arrives. If
	// zero, every body streams (no buffering).
	RequestBuffering int64

	// MaxOriginConns bounds the origin requests in flight at once, fills
	// and pass-through alike: from the request until its response body
	// is read or closed. A request over it waits up to OriginQueueWait
	// for one to end, then is answered 503 with Retry-After (or with a
	// stale copy where stale-if-error allows). If zero, no bound.
	MaxOriginConns int

	// OriginQueueWait bounds the wait for an origin request slot under
	// MaxOriginConns. If zero, 5s.
	OriginQueueWait time.Duration
}

// validate reports the first option that is not valid.
func (o Options) validate() error {
	switch {
	case o.Origin == nil:
		return errors.New("proxy: Origin is required")
	case o.Origin.Scheme != "http" && o.Origin.Scheme != "https":
		return fmt.Errorf("proxy: Origin %q: scheme must be http or https", o.Origin)
	case o.Origin.Host == "":
		return fmt.Errorf("proxy: Origin %q: no host", o.Origin)
	case o.MaxObjectBytes < 0:
		return fmt.Errorf("proxy: MaxObjectBytes must not be negative, got %d", o.MaxObjectBytes)
	case o.RequestBuffering < 0:
		return fmt.Errorf("proxy: RequestBuffering must not be negative, got %d", o.RequestBuffering)
	case o.MaxOriginConns < 0:
		return fmt.Errorf("proxy: MaxOriginConns must not be negative, got %d", o.MaxOriginConns)
	case o.ClientBanBytes < 0:
		return fmt.Errorf("proxy: ClientBanBytes must not be negative, got %d", o.ClientBanBytes)
	case o.MaxInflightBytes < 0:
		return fmt.Errorf("proxy: MaxInflightBytes must not be negative, got %d", o.MaxInflightBytes)
	case o.PublicHost != "" && len(o.Hosts) > 0:
		return errors.New("proxy: PublicHost and Hosts exclude each other")
	case !o.ClientNoCache.valid():
		return fmt.Errorf("proxy: ClientNoCache %q: want honour, revalidate or ignore", o.ClientNoCache)
	}
	for name, d := range map[string]time.Duration{"DefaultTTL": o.DefaultTTL, "L1TTL": o.L1TTL, "FillTimeout": o.FillTimeout,
		"MaxTTL": o.MaxTTL, "LockTimeout": o.LockTimeout, "BodyTimeout": o.BodyTimeout, "OriginQueueWait": o.OriginQueueWait,
		"OriginBackoff": o.OriginBackoff, "OriginBackoffMax": o.OriginBackoffMax,
		"StaleIfError": o.StaleIfError, "StaleWhileRevalidate": o.StaleWhileRevalidate} {
		if d < 0 {
			return fmt.Errorf("proxy: %s must not be negative, got %v", name, d)
		}
	}
	if err := ValidateStatusTTL(o.StatusTTL); err != nil {
		return fmt.Errorf("proxy: StatusTTL: %w", err)
	}
	for i, rt := range o.Routes {
		if err := rt.Validate(); err != nil {
			return fmt.Errorf("proxy: Routes[%d]: %w", i, err)
		}
	}
	if err := checkHost(o.PublicHost); o.PublicHost != "" && err != nil {
		return fmt.Errorf("proxy: PublicHost %q: %v", o.PublicHost, err)
	}
	for i, hn := range o.Hosts {
		if err := checkHost(hn); err != nil {
			return fmt.Errorf("proxy: Hosts[%d] %q: %v", i, hn, err)
		}
	}
	return nil
}
