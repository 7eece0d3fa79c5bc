package proxy

import (
	"slices"
	"strings"
)

// The vocabulary of Cache-Status (RFC 9211): why the cache forwarded a
// request (fwd), and the detail of an answer: why a request was not
// answered from the cache or its answer not stored, or which tier or rule
// answered it from the cache. Each is declared once, below, with its
// label and what the report advises about it; the headers, the report,
// the access log (through Trace) and the admin API read them from here.
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
	// Hit is true for the detail of an answer from the cache (which
	// tier or rule answered), false for why the cache did not answer or
	// did not store the answer.
	Hit bool `json:"hit,omitempty"`
	// Advice says what to do about the reason, for the report; "{route}"
	// stands for the report row's path pattern (see Reason.Advice).
	Advice string `json:"advice,omitempty"`
}

// applyRoutes says how a changed routes list takes effect.
const applyRoutes = "and reload it (`kill -HUP <pid>` or `cacheproxy reload`)"

// routePlaceholder is what ReasonInfo.Advice says for the row's pattern.
const routePlaceholder = "{route}"

// reasons is the reason table, indexed by Reason.
var reasons = [numReasons]ReasonInfo{
	reasonNone: {},

	reasonL1:                   {Label: "l1", Hit: true},
	reasonL2:                   {Label: "l2", Hit: true},
	reasonStaleWhileRevalidate: {Label: "stale-while-revalidate", Hit: true},
	reasonStaleIfError:         {Label: "stale-if-error", Hit: true},
	reasonOriginBackoff:        {Label: "origin-backoff", Hit: true},

	reasonMethod:         {Label: "method", Advice: "not GET or HEAD: passed through, and a success invalidates the URL"},
	reasonBypassRoute:    {Label: "bypass-route", Advice: "a bypass route: never cached, as configured"},
	reasonAmbiguousPath:  {Label: "ambiguous-path"},
	reasonURLTooLong:     {Label: "url-too-long"},
	reasonRequestNoStore: {Label: "request-no-store"},
	reasonMisdirected:    {Label: "misdirected"},
	reasonPathAboveRoot:  {Label: "path-above-root"},

	reasonRequestNoCache: {Label: "request-no-cache", Advice: "clients ask for the origin's answer (a browser reload, Cache-Control: no-cache): see -client-no-cache"},
	reasonOnlyIfCached:   {Label: "only-if-cached"},

	reasonSetCookie:         {Label: "set-cookie", Advice: "the origin sets a cookie on these responses, which are never stored: stop setting it on public pages (a session touched by a middleware, a CSRF cookie)"},
	reasonVaryStar:          {Label: "vary-star", Advice: "`Vary: *` is never stored: vary on the request headers that change the answer"},
	reasonAuthorization:     {Label: "authorization", Advice: "requests carry Authorization: if the answer is the same for every user, send `Cache-Control: public` or `s-maxage=N`"},
	reasonCookieRequest:     {Label: "cookie-request", Advice: "requests carry a Cookie and the answer has no explicit freshness: send `Cache-Control: max-age=N` (or `Vary: Cookie` if it depends on it), or set `cookies: ignore` on a route for " + routePlaceholder + " under `routes:` in the -config file " + applyRoutes},
	reasonCredentialRequest: {Label: "credential-request"},
	reasonContentType:       {Label: "content-type"},
	reasonStatus:            {Label: "status", Advice: "the status is not cacheable without explicit freshness: send `Cache-Control: max-age=N` with it"},
	reasonMustUnderstand:    {Label: "must-understand", Advice: "the origin says must-understand without a validator: send an ETag or Last-Modified so answers can be revalidated"},
	reasonNoStore:           {Label: "no-store", Advice: "the origin says no-store: right for per-user answers; if every user gets the same, send `Cache-Control: public, max-age=N`"},
	reasonPrivate:           {Label: "private", Advice: "the origin says private: right for per-user answers; if every user gets the same, send `Cache-Control: public, max-age=N`"},
	reasonNoCache:           {Label: "no-cache", Advice: "the origin says no-cache without a validator: send an ETag or Last-Modified so answers can be revalidated"},
	reasonNoFreshness:       {Label: "no-freshness", Advice: "the origin sends no Cache-Control max-age, Expires nor validator: send `Cache-Control: max-age=N` (or an ETag), or add `{path: " + routePlaceholder + ", ttl: 30s}` to `routes:` in the -config file " + applyRoutes},

	reasonTooLarge:     {Label: "too-large", Advice: "the answers are larger than -max-object-bytes: raise it if they should be cached"},
	reasonInflightFull: {Label: "inflight-full", Advice: "fills exceeded -max-inflight-bytes: raise it, or make fewer large cold requests at once"},

	reasonExpired:      {Label: "expired"},
	reasonRedisTimeout: {Label: "redis-timeout", Advice: "some writes to Redis took longer than its call timeout and were not stored there (a transient slowness, not an outage: see cacheproxy_redis_errors_total); if the share grows, look at Redis's latency"},
	reasonRedisDown:    {Label: "redis-down", Advice: "the shared tier (Redis) failed: see /readyz and the log"},
	reasonL1Unused:     {Label: "l1-unused", Advice: "the shared tier (Redis) failed: see /readyz and the log"},

	reasonOriginError: {Label: "origin-error"},
	reasonOriginBusy:  {Label: "origin-busy"},
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
