package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"strconv"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// miss answers the exchange with a fill, given what the lookup found:
// concurrent misses of its key on this instance are collapsed into one
// fill (see flightGroup), which runs detached from this request's
// context; the fill revalidates the stale copy found, if any.
func (x *exchange) miss(f found) {
	use := sharedLeaseOnly // L2 was just read
	if x.asksOrigin(f.stale) {
		use = sharedNone
	}
	interim := &interimWriter{w: x.w}
	ctx := x.r.Context()
	if x.h.flights.lockTimeout > 0 && x.staleAfterLockTimeout(f.stale) != nil {
		// A stale copy that may be served if the origin hangs: the
		// leader, like every waiter, waits for the fill at most the lock
		// timeout, here or for another instance's fill (lease.go).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, x.h.flights.lockTimeout, errLockTimeout)
		defer cancel()
	}
	// The fill may outlive this request: it gets its own copy of the
	// exchange's facts (which neither changes), so that the exchange
	// itself stays on the stack of a request answered from the tiers.
	fx := *x
	res, leader, err := x.h.flights.do(ctx, x.key, x.h.o.FillTimeout, func(ctx context.Context) *fillResult {
		// Only the leader's own client sees the origin's 1xx responses.
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: interim.write})
		return fx.fill(ctx, use, f.stale)
	})
	interim.close()
	if err != nil && x.r.Context().Err() == nil && errors.Is(context.Cause(ctx), errLockTimeout) {
		leader, res, err = false, nil, errLockTimeout
	}
	if err != nil && !errors.Is(err, errLockTimeout) {
		// The client has gone; nobody is left to answer.
		return
	}
	if !leader {
		if res = x.joined(res, f.stale); res != nil {
			x.h.m.collapsed.Add(1)
			x.writeResult(res, true, f.fwd)
			return
		}
		// The leader's response is not for others, or took too long:
		// fetch our own, revalidating our stale copy if we have one.
		res = x.fill(x.r.Context(), sharedNone, f.stale)
	}
	x.writeResult(res, false, f.fwd)
}

// joined returns what a request that joined another request's fill may
// answer with, or nil if it must fetch its own: the fill's entry if it is
// for this request and was not purged since the fill started (a request
// arriving after a purge never gets a response fetched before it); its
// stale copy where the origin failed, or the fill outlived the lock
// timeout, and the stale copy may be served so. res is nil after the lock
// timeout.
func (x *exchange) joined(res *fillResult, stale *tiers.Entry) *fillResult {
	now := x.h.o.Now()
	switch {
	case res == nil:
		// The lock timeout: the fill is slow, the origin likely hung.
		return x.staleAfterLockTimeout(stale)
	case res.servedOnError() && res.entry != nil && x.sameVariant(res) && x.servesStaleOnError(res.entry, now):
		// The origin failed and the leader served its stale copy: so
		// may every waiter that allows it (nginx's proxy_cache_use_stale).
		return res
	case res.shareable && res.entry != nil && !res.servedOnError() && x.sameVariant(res) && x.verdict(res.entry) == usable:
		return res
	case originFailed(res) && x.servesStaleOnError(stale, now):
		// The origin failed for the leader: our own stale copy.
		return &fillResult{entry: stale, shareable: true, as: staleOnError}
	}
	return nil
}

// servedOnError reports whether res is a stale entry served because the
// origin failed.
func (res *fillResult) servedOnError() bool { return res.as != nil && res.as.onError }

// originFailed reports whether a fill got no usable answer from the
// origin: an error, or a server error.
func originFailed(res *fillResult) bool {
	return res.err != nil || res.entry == nil && res.stream == nil || res.entry != nil && res.entry.Status >= 500
}

// sameVariant reports whether the entry of a fill made for another request
// is the variant this request selects.
func (x *exchange) sameVariant(res *fillResult) bool {
	e := res.entry
	base, _, _ := tiers.SplitKey(res.key)
	return len(e.Vary()) == 0 || x.h.variantKey(base, e.Vary(), x.r) == res.key
}

// writeResult writes a fill's outcome; fwd is why the cache could not
// answer.
func (x *exchange) writeResult(res *fillResult, collapsed bool, fwd fwdReason) {
	now := x.h.o.Now() // the fill took its time: Age is as of now
	var how delivery
	if res.entry != nil {
		how = deliveryOf(res.entry.Header, x.ae)
	}
	switch {
	case res.err != nil:
		o := errorOutcome(res.err)
		x.h.count(x.r, x.path, x.rt, o, reasonNone)
		x.h.writeError(x.w, x.r, res.err, fwd)
	case res.stream != nil:
		x.writeStream(res.stream, fwd)
	case res.as == revalidated:
		x.writeEntry(res.entry, how, revalidated, revalidated.forwarded(forward{status: http.StatusNotModified, stored: res.stored, collapsed: collapsed, detail: res.detail}), res.detail, now)
	case res.as != nil:
		x.writeEntry(res.entry, how, res.as, res.as.status, reasonNone, now)
	default:
		why := detail(res.detail, fwd)
		x.writeEntry(res.entry, how, missed, missed.forwarded(forward{fwd: fwd, status: res.entry.Status, stored: res.stored, collapsed: collapsed, detail: why}), why, now)
	}
}

// detail is the Cache-Status detail of a forwarded response: why it was
// not stored (stored), or why the cache could not answer (fwd).
func detail(stored Reason, fwd fwdReason) Reason {
	switch {
	case stored != reasonNone:
		return stored
	case fwd == fwdRequest:
		return reasonRequestNoCache
	}
	return reasonNone
}

// writeStream copies a response that is not stored to the client: a PASS,
// with the reason it is not stored.
func (x *exchange) writeStream(s *streamedResponse, fwd fwdReason) {
	x.h.count(x.r, x.path, x.rt, passed, s.detail)
	w, r := x.w, x.r
	defer s.close()
	stop := context.AfterFunc(r.Context(), s.close)
	defer stop()
	hdr := w.Header()
	for k, v := range s.header {
		hdr[k] = v
	}
	x.h.removeTagHeaders(hdr)
	hdr["X-Cache"] = passed.xcache
	hdr["Cache-Status"] = passed.forwarded(forward{fwd: fwd, status: s.status, detail: s.detail})
	if streamNotModified(r, s) {
		delete(hdr, "Content-Length")
		delete(hdr, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if s.status == http.StatusOK && s.size >= 0 {
		// A Range is answered as it would be from a stored response:
		// one range by slicing the stream, several with the whole 200.
		ranges, verdict := rangeRequest(r, s.header, s.size)
		switch {
		case verdict == rangeUnsatisfiable:
			delete(hdr, "Content-Encoding")
			hdr.Set("Content-Range", "bytes */"+strconv.FormatInt(s.size, 10))
			http.Error(w, "range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
			return
		case verdict == rangePartial && len(ranges) == 1:
			rg := ranges[0]
			hdr.Set("Content-Range", rg.contentRange(s.size))
			hdr.Set("Content-Length", strconv.FormatInt(rg.length, 10))
			w.WriteHeader(http.StatusPartialContent)
			if r.Method != http.MethodHead {
				x.h.copyStream(w, r, s, rg.start, rg.length)
			}
			return
		}
	}
	w.WriteHeader(s.status)
	if r.Method == http.MethodHead || !bodyAllowed(s.status) {
		return
	}
	x.h.copyStream(w, r, s, 0, -1)
}
