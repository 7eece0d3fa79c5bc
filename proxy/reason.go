package proxy

import (
	"slices"
	"strings"
)

// The vocabulary of Cache-Status (RFC 9211): why the cache forwarded a
// request (fwd), and the detail of an answer: why a request was not
// answered from the cache or its answer not stored, or which tier or rule
// answered it from the cache. Each is declared once, below, with its
// label, its meaning and what the report advises about it; the headers,
// the report, the access log (through Trace) and the admin API's
// GET /vocabulary (Vocab), which the dashboard reads, take them from here.
// This file calls nothing else in the package.

// A Reason is a Cache-Status detail. The zero value is no detail.
type Reason uint8

// The reasons, grouped by where they are decided.
const (
	reasonNone Reason = iota

	// Details of answers from the cache (outcome.go).
	reasonL1                   // answered from L1
	reasonL2                   // answered from L2
	reasonStaleWhileRevalidate // served stale while one refresh runs
	reasonStaleIfError         // served stale because the origin failed
	reasonOriginBackoff        // served stale: the key's fetches are failing (backoff.go)

	// Requests not looked up (exchange.go, forward.go).
	reasonMethod         // not GET or HEAD
	reasonBypassRoute    // a bypass route
	reasonAmbiguousPath  // readings of the path disagree on its route
	reasonURLTooLong     // too long to name in a purge
	reasonRequestNoStore // the request said no-store
	reasonMisdirected    // a host this proxy does not serve
	reasonPathAboveRoot  // the path climbs above the root

	// The request's own directives.
	reasonRequestNoCache // the request asked for the origin's answer
	reasonOnlyIfCached   // only-if-cached, and nothing stored

	// Storability and sharing (storable.go, sharing.go).
	reasonSetCookie
	reasonVaryStar
	reasonAuthorization
	reasonCookieRequest
	reasonCredentialRequest
	reasonContentType
	reasonStatus
	reasonMustUnderstand
	reasonNoStore
	reasonPrivate
	reasonNoCache
	reasonNoFreshness

	// The body (stream.go).
	reasonTooLarge     // over MaxObjectBytes
	reasonInflightFull // over MaxInflightBytes

	// Storing (chain.go).
	reasonExpired      // stale already, and nothing keeps it
	reasonRedisTimeout // L2 did not answer in time
	reasonRedisDown    // L2 failed otherwise
	reasonL1Unused     // L1 could not be used and there is no L2

	// The proxy's own error answers (origin.go).
	reasonOriginError
	reasonOriginBusy

	numReasons // the count of reasons, reasonNone included
)

// ReasonInfo describes one Cache-Status detail, as declared in the
// reason table.
type ReasonInfo struct {
	// Label is the detail as Cache-Status, the access log and the
	// report spell it.
	Label string `json:"label"`
	// Meaning says what the detail means, in a line: what the
	// dashboard shows beside it.
	Meaning string `json:"meaning"`
	// Hit is true for the detail of an answer from the cache (which
	// tier or rule answered), false for why the cache did not answer or
	// did not store the answer.
	Hit bool `json:"hit"`
	// Advice says what to do about the reason, for the report; "{route}"
	// stands for the report row's path pattern (see Reason.Advice).
	// Empty when there is nothing to advise.
	Advice string `json:"advice,omitempty"`
}

// applyRoutes says how a changed routes list takes effect.
const applyRoutes = "and reload it (`kill -HUP <pid>` or `cacheproxy reload`)"

// routePlaceholder is what ReasonInfo.Advice says for the row's pattern.
const routePlaceholder = "{route}"

// reasons is the reason table, indexed by Reason.
var reasons = [numReasons]ReasonInfo{
	reasonNone: {},

	reasonL1:                   {Label: "l1", Meaning: "answered from this instance's in-process cache (L1)", Hit: true},
	reasonL2:                   {Label: "l2", Meaning: "answered from the shared cache (Redis, L2), then copied into L1", Hit: true},
	reasonStaleWhileRevalidate: {Label: "stale-while-revalidate", Meaning: "served stale while one refresh runs in the background (stale-while-revalidate, or a soft purge)", Hit: true},
	reasonStaleIfError:         {Label: "stale-if-error", Meaning: "served stale because the origin failed (stale-if-error)", Hit: true},
	reasonOriginBackoff:        {Label: "origin-backoff", Meaning: "served stale without asking the origin: this URL's fetches are failing, and the proxy holds back", Hit: true},

	reasonMethod:         {Label: "method", Meaning: "not GET or HEAD: never looked up nor stored", Advice: "not GET or HEAD: passed through, and a success invalidates the URL"},
	reasonBypassRoute:    {Label: "bypass-route", Meaning: "a bypass route: never looked up nor stored", Advice: "a bypass route: never cached, as configured"},
	reasonAmbiguousPath:  {Label: "ambiguous-path", Meaning: "readings of the path disagree on its route: passed through, never looked up"},
	reasonURLTooLong:     {Label: "url-too-long", Meaning: "the URL is too long to name in a purge: passed through, never stored"},
	reasonRequestNoStore: {Label: "request-no-store", Meaning: "the request said Cache-Control: no-store"},
	reasonMisdirected:    {Label: "misdirected", Meaning: "a host this proxy does not serve"},
	reasonPathAboveRoot:  {Label: "path-above-root", Meaning: "the path climbs above the root: refused"},

	reasonRequestNoCache: {Label: "request-no-cache", Meaning: "the request asked for the origin's answer (Cache-Control: no-cache, a browser reload)", Advice: "clients ask for the origin's answer (a browser reload, Cache-Control: no-cache): see -client-no-cache"},
	reasonOnlyIfCached:   {Label: "only-if-cached", Meaning: "the request said only-if-cached and nothing was stored: answered 504"},

	reasonSetCookie:         {Label: "set-cookie", Meaning: "the response sets a cookie: never stored", Advice: "the origin sets a cookie on these responses, which are never stored: stop setting it on public pages (a session touched by a middleware, a CSRF cookie)"},
	reasonVaryStar:          {Label: "vary-star", Meaning: "the response says Vary: *: never stored", Advice: "`Vary: *` is never stored: vary on the request headers that change the answer"},
	reasonAuthorization:     {Label: "authorization", Meaning: "the request carries Authorization and the origin did not allow sharing the answer", Advice: "requests carry Authorization: if the answer is the same for every user, send `Cache-Control: public` or `s-maxage=N`"},
	reasonCookieRequest:     {Label: "cookie-request", Meaning: "the request carries a Cookie and the origin did not allow sharing the answer", Advice: "requests carry a Cookie and the answer has no explicit freshness: send `Cache-Control: max-age=N` (or `Vary: Cookie` if it depends on it), or set `cookies: ignore` on a route for " + routePlaceholder + " under `routes:` in the -config file " + applyRoutes},
	reasonCredentialRequest: {Label: "credential-request", Meaning: "the request carries a credential header of its route and the origin did not allow sharing the answer"},
	reasonContentType:       {Label: "content-type", Meaning: "the response's Content-Type is not one its route expects"},
	reasonStatus:            {Label: "status", Meaning: "the status is not cacheable without explicit freshness", Advice: "the status is not cacheable without explicit freshness: send `Cache-Control: max-age=N` with it"},
	reasonMustUnderstand:    {Label: "must-understand", Meaning: "the response says must-understand with a status the cache does not understand", Advice: "the origin says must-understand without a validator: send an ETag or Last-Modified so answers can be revalidated"},
	reasonNoStore:           {Label: "no-store", Meaning: "the response says no-store", Advice: "the origin says no-store: right for per-user answers; if every user gets the same, send `Cache-Control: public, max-age=N`"},
	reasonPrivate:           {Label: "private", Meaning: "the response says private", Advice: "the origin says private: right for per-user answers; if every user gets the same, send `Cache-Control: public, max-age=N`"},
	reasonNoCache:           {Label: "no-cache", Meaning: "the response says no-cache without a validator to revalidate it with", Advice: "the origin says no-cache without a validator: send an ETag or Last-Modified so answers can be revalidated"},
	reasonNoFreshness:       {Label: "no-freshness", Meaning: "the response has no freshness (max-age, Expires) nor validator, and its route gives no ttl", Advice: "the origin sends no Cache-Control max-age, Expires nor validator: send `Cache-Control: max-age=N` (or an ETag), or add `{path: " + routePlaceholder + ", ttl: 30s}` to `routes:` in the -config file " + applyRoutes},

	reasonTooLarge:     {Label: "too-large", Meaning: "the body is larger than -max-object-bytes: passed on, not stored", Advice: "the answers are larger than -max-object-bytes: raise it if they should be cached"},
	reasonInflightFull: {Label: "inflight-full", Meaning: "fills in flight held -max-inflight-bytes: passed on, not stored", Advice: "fills exceeded -max-inflight-bytes: raise it, or make fewer large cold requests at once"},

	reasonExpired:      {Label: "expired", Meaning: "stale already when fetched, and nothing keeps it: not stored"},
	reasonRedisTimeout: {Label: "redis-timeout", Meaning: "the write to Redis took longer than its call timeout: stored in L1 only", Advice: "some writes to Redis took longer than its call timeout and were not stored there (a transient slowness, not an outage: see cacheproxy_redis_errors_total); if the share grows, look at Redis's latency"},
	reasonRedisDown:    {Label: "redis-down", Meaning: "the write to Redis failed, or Redis is down: stored in L1 only", Advice: "the shared tier (Redis) failed: see /readyz and the log"},
	reasonL1Unused:     {Label: "l1-unused", Meaning: "L1 could not take the entry (not usable now) and there is no L2: not stored", Advice: "the shared tier (Redis) failed: see /readyz and the log"},

	reasonOriginError: {Label: "origin-error", Meaning: "the origin failed or timed out: the proxy's own 502 or 504"},
	reasonOriginBusy:  {Label: "origin-busy", Meaning: "no origin request slot freed in time (-max-origin-conns): the proxy's own 503"},
}

// String returns the reason's label: its Cache-Status spelling.
func (r Reason) String() string {
	if r >= numReasons {
		return ""
	}
	return reasons[r].Label
}

// Advice says what to do about requests for the path pattern route that
// were not answered from the cache for reason r; "" when there is nothing
// to advise.
func (r Reason) Advice(route string) string {
	if r >= numReasons {
		return ""
	}
	return strings.ReplaceAll(reasons[r].Advice, routePlaceholder, route)
}

// Reasons returns every Cache-Status detail the proxy answers with, in a
// fixed order: what the report counts, the access log writes and the
// admin API describes.
func Reasons() []ReasonInfo { return slices.Clone(reasons[1:]) }

// A fwdReason is why the cache forwarded a request, Cache-Status's fwd
// parameter (RFC 9211 §2.2). The zero value is none: an answer from the
// cache.
type fwdReason uint8

// The forward reasons.
const (
	fwdNone     fwdReason = iota
	fwdURIMiss            // nothing stored for the URL
	fwdVaryMiss           // the URL stored, not the variant the request selects
	fwdMiss               // not stored, for a reason neither of those says
	fwdStale              // what is stored is stale
	fwdRequest            // the request asked for the origin's answer
	fwdBypass             // not looked up
)

var fwdLabels = [...]string{
	fwdNone: "", fwdURIMiss: "uri-miss", fwdVaryMiss: "vary-miss", fwdMiss: "miss",
	fwdStale: "stale", fwdRequest: "request", fwdBypass: "bypass",
}

// String returns the Cache-Status spelling of f.
func (f fwdReason) String() string {
	if int(f) >= len(fwdLabels) {
		return ""
	}
	return fwdLabels[f]
}
