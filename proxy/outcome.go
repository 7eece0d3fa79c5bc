package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// An outcome is how the proxy answered a request. Each is declared once,
// below, with everything that names it: the X-Cache value (which is also
// its label in the metrics and Stats), and its Cache-Status (RFC 9211)
// parameters. Adding one is one line.
type outcome struct {
	label  string    // X-Cache value and metrics label
	class  Class     // answered from the cache, fetched, passed or failed
	tier   string    // where the body came from: see OutcomeInfo.Tier
	hit    bool      // Cache-Status "hit"; else "fwd=..."
	fwd    fwdReason // a forwarded outcome's fixed fwd reason; fwdNone takes the request's
	detail Reason    // Cache-Status detail, if any
	// onError: a stale entry served because the origin failed, which
	// a request that joined the fill may be served too if it allows.
	onError bool

	idx    int      // index of label in labels: the counter of the outcome
	xcache []string // the X-Cache header value, shared and never modified
	status []string // a hit's Cache-Status, built once: a hit allocates none
}

// cacheName is this cache's name in Cache-Status.
const cacheName = "cacheproxy"

// The tiers an answer's body comes from (OutcomeInfo.Tier).
const (
	tierL1     = "l1"
	tierL2     = "l2"
	tierCache  = "cache" // a stored entry, from L1 or L2
	tierOrigin = "origin"
	tierProxy  = "proxy" // the proxy's own answer
)

// The outcomes.
var (
	hitL1             = newOutcome(outcome{label: "HIT-L1", class: ClassHit, tier: tierL1, hit: true, detail: reasonL1})
	hitL2             = newOutcome(outcome{label: "HIT-L2", class: ClassHit, tier: tierL2, hit: true, detail: reasonL2})
	staleRevalidating = newOutcome(outcome{label: "STALE", class: ClassHit, tier: tierCache, hit: true, detail: reasonStaleWhileRevalidate})
	staleOnError      = newOutcome(outcome{label: "STALE", class: ClassHit, tier: tierCache, fwd: fwdStale, detail: reasonStaleIfError, onError: true})
	staleBackoff      = newOutcome(outcome{label: "STALE", class: ClassHit, tier: tierCache, hit: true, detail: reasonOriginBackoff, onError: true}) // the origin not asked: the key's fetches are failing (backoff.go)
	revalidated       = newOutcome(outcome{label: "REVALIDATED", class: ClassHit, tier: tierCache, fwd: fwdStale})
	missed            = newOutcome(outcome{label: "MISS", class: ClassMiss, tier: tierOrigin})
	passed            = newOutcome(outcome{label: "PASS", class: ClassPass, tier: tierOrigin}) // fetched, not storable: detail says why
	bypassed          = newOutcome(outcome{label: "BYPASS", class: ClassPass, tier: tierOrigin, fwd: fwdBypass})
	wrongHost         = newOutcome(outcome{label: "BYPASS", class: ClassPass, tier: tierOrigin, fwd: fwdBypass, detail: reasonMisdirected})
	badPath           = newOutcome(outcome{label: "BYPASS", class: ClassPass, tier: tierProxy, fwd: fwdBypass, detail: reasonPathAboveRoot})
	// originError is the proxy's 502 or 504 when the origin failed; fwd
	// is the request's (uri-miss, stale, bypass...).
	originError = newOutcome(outcome{label: "ERROR", class: ClassError, tier: tierProxy, detail: reasonOriginError})
	// originBusy is the proxy's 503 when no origin request slot was free
	// (Options.MaxOriginConns).
	originBusy = newOutcome(outcome{label: "ERROR", class: ClassError, tier: tierProxy, detail: reasonOriginBusy})
)

// labels are the distinct outcome labels, in the order outcomes were
// declared: the keys of Stats.Requests and of the requests metric;
// infos describes each.
var (
	labels []string
	infos  []OutcomeInfo
)

func newOutcome(o outcome) *outcome {
	o.idx = -1
	for i, l := range labels {
		if l == o.label {
			o.idx = i
		}
	}
	if o.idx < 0 {
		o.idx = len(labels)
		labels = append(labels, o.label)
		infos = append(infos, OutcomeInfo{Label: o.label, Class: o.class, Tier: o.tier})
	}
	o.xcache = []string{o.label}
	if o.hit || o.fwd != fwdNone {
		o.status = []string{o.cacheStatus(forward{})}
	}
	return &o
}

// forward is what varies in the Cache-Status of a forwarded response: the
// request's fwd reason (if its outcome has none of its own), the origin's
// status (0: none), whether it was stored or shared with another
// request's fill, and the detail (if its outcome has none of its own):
// why it was not stored, or not served from the cache.
type forward struct {
	fwd       fwdReason
	status    int
	stored    bool
	collapsed bool
	detail    Reason
}

// cacheStatus returns the Cache-Status value of o for a forwarded
// response f.
func (o *outcome) cacheStatus(f forward) string {
	fwd, status, stored, collapsed := f.fwd, f.status, f.stored, f.collapsed
	var b strings.Builder
	b.WriteString(cacheName)
	if o.hit {
		b.WriteString("; hit")
	} else {
		if o.fwd != fwdNone {
			fwd = o.fwd
		}
		b.WriteString("; fwd=")
		b.WriteString(fwd.String())
		if status != 0 {
			b.WriteString("; fwd-status=")
			b.WriteString(strconv.Itoa(status))
		}
		if stored {
			b.WriteString("; stored")
		}
		if collapsed {
			b.WriteString("; collapsed")
		}
	}
	if detail := o.reason(f.detail); detail != reasonNone {
		b.WriteString("; detail=")
		b.WriteString(detail.String())
	}
	return b.String()
}

// forwarded returns the Cache-Status header value of a forwarded response
// (see cacheStatus); the fixed one when nothing varies.
func (o *outcome) forwarded(f forward) []string {
	if o.status != nil && f == (forward{}) {
		return o.status
	}
	return []string{o.cacheStatus(f)}
}

// reason returns the Cache-Status detail of an answer as o for reason r:
// o's own if it has one, else r.
func (o *outcome) reason(r Reason) Reason {
	if o.detail != reasonNone {
		return o.detail
	}
	return r
}

// count counts one answer to r, as o for reason (see outcome.reason): in
// the metrics, in the cacheability report under the canonical path's
// pattern and its route, and in r's Trace if it has one.
func (h *Handler) count(r *http.Request, path string, rt *Route, o *outcome, reason Reason) {
	reason = o.reason(reason)
	h.m.request(o)
	h.rep.add(path, h.live.Load().routeCounters(rt), o, reason)
	traceOf(r).answered(o, reason)
}

// countEntry is count for an answer from an entry, which may carry the
// note of its pattern's counters (see report.note).
func (h *Handler) countEntry(e *tiers.Entry, x *exchange, o *outcome, why Reason) {
	c := h.rep.noted(e.Note)
	if c == nil {
		h.count(x.r, x.path, x.rt, o, why)
		return
	}
	reason := o.reason(why)
	h.m.request(o)
	c.add(o, reason)
	if rc := x.s.routeCounters(x.rt); rc != nil {
		rc.add(o, reason)
	}
	traceOf(x.r).answered(o, reason)
}
