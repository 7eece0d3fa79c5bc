package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// fillResult is the outcome of one fill: an entry from the shared tier or
// the origin, or a body not to buffer, or an error.
type fillResult struct {
	entry *tiers.Entry
	// key is the key entry was looked up or stored under (its variant
	// key if it varies).
	key string
	// shareable means entry may answer requests other than the one that
	// caused the fill: it is storable, or was found in a tier.
	shareable bool
	stored    bool
	// as is the outcome entry answers as when it is not the origin's
	// own answer: hitL2 (found in L2), revalidated (a stored response
	// the origin confirmed with a 304), staleOnError (a stale response
	// served because the origin failed, as it allows). nil: the origin's
	// answer, a MISS (writeResult).
	as *outcome
	// stream, for a response that is not stored, is for the leader
	// alone.
	stream *streamedResponse
	err    error
	// detail says why a storable entry was not stored, or what went
	// wrong on the way (Cache-Status detail).
	detail Reason
}

// sharedUse says what a fill asks of the shared tier before the origin.
type sharedUse int

const (
	sharedNone      sharedUse = iota // straight to the origin
	sharedLeaseOnly                  // L2 was just read: only take the fill lease
	sharedFull                       // read L2, then take the fill lease
)

// fill fetches the entry for the exchange: from the fleet if use says so
// (claim, lease.go), else from the origin, storing what may be stored.
// The stale copy, if any (the lookup's, or a newer one the fleet holds),
// is revalidated rather than fetched again, and served if the origin
// fails and it allows that. fill runs under ctx, which may outlive the
// request's own context; it reads the exchange, never writes it or its
// client's response.
func (x *exchange) fill(ctx context.Context, use sharedUse, stale *tiers.Entry) *fillResult {
	// Running, for an invalidation of its URL to see (invalidationFor).
	defer x.h.filling.begin(x.key)()
	// Every purge applied from here on is newer than what this fill
	// fetches, and will kill it.
	seq := x.h.o.Bans.Applied()
	res, stale, release := x.claim(ctx, use, stale)
	if res != nil {
		return res
	}
	if release != nil {
		defer release()
	}
	var report bool
	if now := x.h.o.Now(); x.servesStale(stale, now) {
		// The origin may be failing: while it is, one fetch per interval
		// (backoff.go), and the stale copy for the others.
		var ok bool
		if ok, report = x.originAllowed(ctx, now); !ok {
			x.h.m.originHeld.Add(1)
			return &fillResult{entry: stale, key: x.key, shareable: true, as: staleBackoff}
		}
	}
	res = x.fetch(ctx, seq, stale, report)
	if res == nil {
		// A 304 for another representation: fetch it whole.
		res = x.fetch(ctx, seq, nil, report)
	}
	return res
}

// fetch makes one origin request, conditional if stale is set, and returns
// what it gives: an entry stored, a stale entry confirmed by a 304 or
// served because the origin failed, a stream of what may not be stored,
// or an error. It returns nil for a 304 that does not select stale. Its
// outcome, failed or not, is recorded for the key's backoff (backoff.go);
// report says the fleet awaits it.
func (x *exchange) fetch(ctx context.Context, seq uint64, stale *tiers.Entry, report bool) *fillResult {
	h := x.h
	out := h.originRequest(ctx, x.r)
	if stale != nil {
		setValidators(out.Header, stale.Header)
	}
	reqTime := h.o.Now()
	h.m.originRequests.Add(1)
	resp, err := h.o.Transport.RoundTrip(out)
	took := h.o.Now().Sub(reqTime)
	h.m.originLatency.Observe(took.Seconds())
	if tr := traceOf(x.r); tr != nil {
		tr.addOrigin(took)
	}
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errFillTimeout) && !errors.Is(err, errFillTimeout) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		if !errors.Is(err, errOriginBusy) {
			h.m.originFailed(err) // busy is the proxy's own bound, not the origin down
			if cause := context.Cause(ctx); cause == nil || errors.Is(cause, errFillTimeout) {
				// Not when every client waiting for it left: the origin
				// did not fail.
				x.originOutcome(ctx, true, report)
			}
		}
		return x.staleOr(stale, &fillResult{err: err})
	}
	h.m.originOK()
	x.originOutcome(ctx, resp.StatusCode >= 500, report)
	removeHopHeaders(resp.Header)
	switch {
	case resp.StatusCode == http.StatusNotModified && stale != nil:
		resp.Body.Close()
		return x.revalidated(ctx, originReply{out, resp, reqTime, seq}, stale)
	case resp.StatusCode >= 500 && stale != nil && staleIfError(stale, x.cc, h.o.Now()):
		resp.Body.Close()
		return x.staleOr(stale, nil)
	}
	return x.storeResponse(ctx, originReply{out, resp, reqTime, seq})
}

// originReply is one origin exchange of a fill: the request sent, the response,
// when it was sent, and the purge sequence the fill started at.
type originReply struct {
	out     *http.Request
	resp    *http.Response
	reqTime time.Time
	seq     uint64
}

// staleOr returns stale, served because the origin failed, if it may be
// served so; else res.
func (x *exchange) staleOr(stale *tiers.Entry, res *fillResult) *fillResult {
	if stale != nil && staleIfError(stale, x.cc, x.h.o.Now()) {
		return &fillResult{entry: stale, key: x.key, shareable: true, as: staleOnError}
	}
	return res
}

// revalidated returns stale updated by the origin's 304 and stores it, or
// nil if the 304 is for another representation.
func (x *exchange) revalidated(ctx context.Context, o originReply, stale *tiers.Entry) *fillResult {
	e, pol := x.freshen(stale, o)
	if e == nil {
		return nil
	}
	res := &fillResult{entry: e, key: x.key, shareable: pol.storable, as: revalidated}
	if len(e.Vary()) > 0 {
		res.key = x.h.variantKey(x.key, e.Vary(), x.r)
	}
	if !pol.storable {
		// The 304 answered this request alone (sharing.go): it is
		// served, not stored, and not handed to other requests.
		res.detail = pol.reason
		return res
	}
	res.stored, res.detail = x.h.chain.store(ctx, x.key, res.key, e)
	return res
}

// storeResponse reads and stores the origin's response if it may be
// stored: whether it may is decided from its header alone, and what may
// not is streamed, never buffered.
func (x *exchange) storeResponse(ctx context.Context, o originReply) *fillResult {
	h, resp := x.h, o.resp
	pol := decide(x.storeRule(o.out), resp.StatusCode, resp.Header)
	if !pol.storable {
		h.o.Logger.Debug("not storing", "url", x.r.URL.String(), "reason", pol.reason.String())
		if pol.reason == reasonSetCookie && x.rt != nil && x.rt.IgnoreCookies {
			h.o.Logger.Warn("a route with cookies: ignore answers with Set-Cookie: such responses are never stored",
				"route", x.rt.Path, "url", x.r.URL.String())
		}
		return &fillResult{stream: h.newStream(resp, nil, 0).why(pol.reason), key: x.key}
	}
	body, held, stream, err := h.bufferBody(resp)
	if err != nil {
		// Cut short: a 502, never stored.
		resp.Body.Close()
		return &fillResult{err: fmt.Errorf("reading the origin's body: %w", err)}
	}
	if stream != nil {
		// Too large, or over the budget of the fills in flight.
		return &fillResult{stream: stream, key: x.key}
	}
	defer h.inflight.give(held)
	resp.Body.Close()
	e := x.newEntry(o, body, pol.lifetime)
	res := &fillResult{entry: e, key: x.key, shareable: true}
	if len(e.Vary()) > 0 {
		res.key = h.variantKey(x.key, e.Vary(), x.r)
	}
	res.stored, res.detail = h.chain.store(ctx, x.key, res.key, e)
	return res
}

// newEntry returns the entry of a storable origin response with body.
func (x *exchange) newEntry(o originReply, body []byte, lifetime time.Duration) *tiers.Entry {
	respTime := x.h.o.Now()
	vary, _ := parseVary(o.resp.Header)
	hdr := x.h.storedHeader(o.resp.Header)
	// Compressed once if it pays (compress.go): every client is served
	// from the one copy, decoded for those that do not accept gzip.
	body = compressResponse(o.resp.StatusCode, hdr, body)
	stored := tiers.MakeHeader(hdr)
	e := &tiers.Entry{
		Kind:       tiers.KindResponse,
		Status:     o.resp.StatusCode,
		Header:     stored,
		StoredAt:   tiers.At(respTime),
		InitialAge: initialAge(o.resp.Header, o.reqTime, respTime),
		Lifetime:   lifetime,
		URL:        requestTarget(x.r.URL).url(),
		Seq:        o.seq,
	}
	e.SetBody(body)
	if x.rt != nil && x.rt.Override {
		// The origin's freshness does not apply; neither may its age.
		e.InitialAge = 0
	}
	// The configured stale windows go with the entry (staleWindows).
	extra := tiers.Extra{Vary: selectingHeaders(vary, stored), Tags: x.h.parseTags(o.resp.Header)}
	extra.StaleWhileRevalidate, extra.StaleIfError = x.h.configuredStale(x.rt)
	e.SetExtra(extra)
	// The body and every string of the entry into one allocation: it
	// may be held for long.
	return e.Packed()
}
