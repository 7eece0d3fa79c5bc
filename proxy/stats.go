package proxy

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Stats is a snapshot of a Handler's counters since it was created.
type Stats struct {
	// Requests counts client requests by X-Cache result. Every result of
	// Outcomes (which says what each means, and its class) is present,
	// zero included.
	Requests map[string]int64 `json:"requests"`
	// HitRatio is the share of the cacheable traffic answered from the
	// cache: the results of ClassHit, of those and ClassMiss. ClassPass
	// and ClassError are not counted.
	HitRatio float64 `json:"hit_ratio"`
	// HitRatioAll is the share of all requests answered from the cache.
	HitRatioAll float64 `json:"hit_ratio_all"`
	// OriginRequests counts requests sent to the origin.
	OriginRequests int64 `json:"origin_requests"`
	// OriginErrors counts origin requests that failed (no response).
	OriginErrors int64 `json:"origin_errors"`
	// Collapsed counts requests answered by another request's fill.
	Collapsed int64 `json:"collapsed"`
	// FleetCollapsed counts fills answered by another instance's fill
	// (its fill lease) rather than by the origin.
	FleetCollapsed int64 `json:"fleet_collapsed"`
	// OriginHeld counts fills not sent to the origin because their key's
	// fetches were failing (Options.OriginBackoff): each was answered
	// with its stale copy (Cache-Status detail origin-backoff).
	OriginHeld int64 `json:"origin_held"`
	// OriginBackoffKeys is how many keys this instance holds back from
	// the origin now.
	OriginBackoffKeys int `json:"origin_backoff_keys"`
	// Stored counts entries written to the tiers.
	Stored int64 `json:"stored"`
	// SharedErrors counts failed calls to the shared tier.
	SharedErrors int64 `json:"shared_errors"`
	// OriginBusy counts origin requests not sent because every slot of
	// Options.MaxOriginConns stayed in use for Options.OriginQueueWait.
	OriginBusy int64 `json:"origin_busy"`
	// OriginWaiting is the number of origin requests waiting for a slot
	// of Options.MaxOriginConns now.
	OriginWaiting int64 `json:"origin_waiting"`
	// OriginUp is false after the last origin request failed to get
	// any response, true after one succeeded.
	OriginUp bool `json:"origin_up"`
	// OriginLastError is the last origin failure, if any.
	OriginLastError string `json:"origin_last_error,omitempty"`
}

// Class is what kind of answer an outcome is, for hit ratios and
// dashboards.
type Class string

// The classes of outcomes.
const (
	// ClassHit is an answer from the cache (revalidated included).
	ClassHit Class = "hit"
	// ClassMiss is a cacheable request fetched from the origin.
	ClassMiss Class = "miss"
	// ClassPass is a request the cache could not or may not answer:
	// fetched and not storable, or never looked up.
	ClassPass Class = "pass"
	// ClassError is the proxy's own error answer (502, 504): the origin
	// gave no usable response and nothing stored could stand in.
	ClassError Class = "error"
)

// Classes returns every class, in a fixed order: hit, miss, pass, error.
func Classes() []Class { return []Class{ClassHit, ClassMiss, ClassPass, ClassError} }

// OutcomeInfo describes one X-Cache result, as declared in the outcome
// table.
type OutcomeInfo struct {
	// Label is the X-Cache value, the key of Stats.Requests and the
	// "result" label of the metrics.
	Label string `json:"label"`
	// Meaning says what the result means, in a line.
	Meaning string `json:"meaning"`
	// Class says whether it is a hit, a miss, a pass or an error.
	Class Class `json:"class"`
	// Tier is where the body served comes from: "l1", "l2", "cache"
	// (a stored entry, from either tier), "origin", or "proxy" (the
	// proxy's own error answer).
	Tier string `json:"tier"`
}

// Outcomes returns every X-Cache result the proxy answers with, in a
// fixed order (hits first): what the metrics, Stats, the report, the
// access log, the CLI and the dashboard list.
func Outcomes() []OutcomeInfo { return slices.Clone(infos) }

// Vocabulary describes the words the proxy answers with, as its tables
// declare them: the X-Cache results (outcome.go) and the Cache-Status
// details (reason.go). It is the JSON of the admin API's GET /vocabulary
// (VocabularyAPI), from which the dashboard takes every label it shows.
type Vocabulary struct {
	// Outcomes are the X-Cache results, as Outcomes returns them.
	Outcomes []OutcomeInfo `json:"outcomes"`
	// Reasons are the Cache-Status details, as Reasons returns them.
	Reasons []ReasonInfo `json:"reasons"`
}

// Vocab returns the proxy's vocabulary.
func Vocab() Vocabulary { return Vocabulary{Outcomes: Outcomes(), Reasons: Reasons()} }

// OutcomeOf returns the description of the X-Cache result label; ok is
// false for a label the proxy does not answer with.
func OutcomeOf(label string) (OutcomeInfo, bool) {
	for _, o := range infos {
		if o.Label == label {
			return o, true
		}
	}
	return OutcomeInfo{}, false
}

// Tiers returns every value of OutcomeInfo.Tier, in a fixed order.
func Tiers() []string { return []string{tierL1, tierL2, tierCache, tierOrigin, tierProxy} }

// HitRatios returns, for requests counted by X-Cache result as in
// Stats.Requests (a map read from the admin API, say), the share of the
// cacheable traffic (hits and misses) answered from the cache and the
// share of all traffic; ok is false before the first cacheable request.
// The classes come from Outcomes; a result it does not know counts only in
// the total.
func HitRatios(requests map[string]int64) (cacheable, all float64, ok bool) {
	var by classCounts
	for label, n := range requests {
		o, _ := OutcomeOf(label)
		by.add(o.Class, n)
	}
	return by.ratios()
}

// hitRatiosOf is HitRatios for counts indexed like labels, as the
// Handler's own counters are: each count's class is its outcome's, not
// looked up by its label.
func hitRatiosOf(counts []int64) (cacheable, all float64, ok bool) {
	var by classCounts
	for i, n := range counts {
		by.add(infos[i].Class, n)
	}
	return by.ratios()
}

// classCounts sums requests by the class of their outcome.
type classCounts struct{ hits, misses, total int64 }

func (c *classCounts) add(class Class, n int64) {
	c.total += n
	switch class {
	case ClassHit:
		c.hits += n
	case ClassMiss:
		c.misses += n
	}
}

// ratios returns the hit ratios of c: see HitRatios.
func (c classCounts) ratios() (cacheable, all float64, ok bool) {
	if n := c.hits + c.misses; n > 0 {
		cacheable, ok = float64(c.hits)/float64(n), true
	}
	if c.total > 0 {
		all = float64(c.hits) / float64(c.total)
	}
	return cacheable, all, ok
}

// Trace collects, for one request, what an access log needs from inside
// the proxy. Attach one with WithTrace; the Handler fills it in.
type Trace struct {
	mu      sync.Mutex
	origin  time.Duration
	outcome *outcome // how the request was answered; nil before
	reason  Reason   // the answer's Cache-Status detail
}

// answered records that the request was answered as o for reason (see
// outcome.reason). A nil Trace records nothing.
func (t *Trace) answered(o *outcome, reason Reason) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.outcome, t.reason = o, reason
	t.mu.Unlock()
}

// Outcome returns how the request was answered, as the outcome table
// describes it; ok is false if it was not (yet) answered.
func (t *Trace) Outcome() (info OutcomeInfo, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.outcome == nil {
		return OutcomeInfo{}, false
	}
	return infos[t.outcome.idx], true
}

// Reason returns the Cache-Status detail of a forwarded answer: why the
// request was not answered from the cache, or why its answer was not
// stored; "" for an answer from the cache, with no reason, or not (yet)
// made.
func (t *Trace) Reason() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.outcome == nil || t.outcome.hit {
		return ""
	}
	return t.reason.String()
}

// OriginDuration returns the time the request's own fills spent waiting
// for the origin.
func (t *Trace) OriginDuration() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.origin
}

func (t *Trace) addOrigin(d time.Duration) {
	t.mu.Lock()
	t.origin += d
	t.mu.Unlock()
}

type traceKey struct{}

// WithTrace returns ctx carrying a new Trace, for a request served by a
// Handler.
func WithTrace(ctx context.Context) (context.Context, *Trace) {
	t := new(Trace)
	return context.WithValue(ctx, traceKey{}, t), t
}

// traceOf returns the Trace of r, or nil.
func traceOf(r *http.Request) *Trace {
	t, _ := r.Context().Value(traceKey{}).(*Trace)
	return t
}
