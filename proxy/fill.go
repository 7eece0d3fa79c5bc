package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// fillResult is the outcome of one fill: an entry from the shared tier or
// the origin, or a body too large to buffer, or an error.
type fillResult struct {
	entry *tiers.Entry
	// key is the key entry was looked up or stored under (its variant
	// key if it varies).
	key string
	// shareable means entry may answer requests other than the one that
	// caused the fill: it is storable, or was found in a tier.
	shareable bool
	stored    bool
	fromL2    bool
	// revalidated: entry is a stored response the origin confirmed
	// with a 304.
	revalidated bool
	// staleOnError: entry is a stale response served because the
	// origin failed and the response allows it (stale-if-error).
	staleOnError bool
	// stream, for a response over MaxObjectBytes, is for the leader
	// alone.
	stream *streamedResponse
	err    error
}

// streamedResponse is an origin response too large to store, handed to the
// one client it was fetched for.
type streamedResponse struct {
	status int
	header http.Header
	prefix []byte        // the part already read
	body   io.ReadCloser // the rest
	cancel context.CancelFunc

	release     func() // gives back the budget prefix holds; nil if none
	releaseOnce sync.Once
}

func (s *streamedResponse) close() {
	s.body.Close()
	s.giveBack()
	if s.cancel != nil {
		s.cancel()
	}
}

// miss answers r from the shared tier or the origin, collapsing concurrent
// misses of key into one fill. fwd is the reason the local tier did not
// answer.
func (h *Handler) miss(w http.ResponseWriter, r *http.Request, key string, rt *Route, reqCC cacheControl, fwd string, stale *tiers.Entry) {
	use := sharedLeaseOnly // the handler has just read L2
	if fwd == "request" {
		use = sharedNone
	}
	interim := &interimWriter{w: w}
	res, leader, err := h.flights.do(r.Context(), key, h.fillTimeout, func(ctx context.Context) *fillResult {
		// Only the leader's own client sees the origin's 1xx responses.
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: interim.write})
		return h.fill(ctx, r, key, rt, reqCC, use, stale)
	})
	interim.close()
	if err != nil && !errors.Is(err, errLockTimeout) {
		// The client has gone; nobody is left to answer.
		return
	}
	if !leader {
		if res = h.joined(r, res, reqCC, stale); res != nil {
			h.m.collapsed.Add(1)
			h.writeResult(w, r, res, fwd, true)
			return
		}
		// The leader's response is not for others, or took too long:
		// fetch our own, revalidating our stale copy if we have one.
		res = h.fill(r.Context(), r, key, rt, reqCC, sharedNone, stale)
	}
	h.writeResult(w, r, res, fwd, false)
}

// joined returns what a caller who joined another request's fill may
// answer with, or nil if it must fetch its own: the fill's entry if it is
// for this request and was not purged since the fill started (a request
// arriving after a purge never gets a response fetched before it); a
// stale copy where the origin failed, or the fill outlived the lock
// timeout, and the stale copy may be served so. res is nil after the lock
// timeout.
func (h *Handler) joined(r *http.Request, res *fillResult, reqCC cacheControl, stale *tiers.Entry) *fillResult {
	now := h.now()
	switch {
	case res == nil:
		// The lock timeout: the fill is slow, the origin likely hung.
		if stale != nil && !h.bans.Dead(stale) && (staleIfError(stale, reqCC, now) || staleWhileRevalidate(stale, now)) {
			return &fillResult{entry: stale, shareable: true, staleOnError: true}
		}
		return nil
	case res.staleOnError && res.entry != nil && h.sameVariant(res, r) && !h.bans.Dead(res.entry) && staleIfError(res.entry, reqCC, now):
		// The origin failed and the leader served its stale copy: so
		// may every waiter that allows it (nginx's proxy_cache_use_stale).
		return res
	case res.shareable && res.entry != nil && !res.staleOnError && !h.bans.Dead(res.entry) && h.matches(res, r, reqCC):
		return res
	case (res.err != nil || res.entry == nil && res.stream == nil || res.entry != nil && res.entry.Status >= 500) &&
		stale != nil && !h.bans.Dead(stale) && staleIfError(stale, reqCC, now):
		// The origin failed for the leader: our own stale copy.
		return &fillResult{entry: stale, shareable: true, staleOnError: true}
	}
	return nil
}

// sameVariant reports whether the entry of a fill made for another request
// is the variant r selects.
func (h *Handler) sameVariant(res *fillResult, r *http.Request) bool {
	e := res.entry
	return len(e.Vary) == 0 || h.variantKey(strings.SplitN(res.key, "#", 2)[0], e.Vary, r) == res.key
}

// interimWriter forwards the origin's informational (1xx) responses to the
// client while the fill runs on another goroutine, until close.
type interimWriter struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	closed bool
}

func (iw *interimWriter) write(code int, hdr textproto.MIMEHeader) error {
	if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
		return nil
	}
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if iw.closed {
		return nil
	}
	// Write through wrappers (Gin's buffers the status until the final
	// write) to the connection's own writer.
	w := iw.w
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	h := w.Header()
	for k, v := range hdr {
		h[k] = v
	}
	w.WriteHeader(code)
	// The header map is sent again with the final response: the 1xx's
	// fields must not be.
	for k := range hdr {
		delete(h, k)
	}
	return nil
}

// close stops forwarding; the caller owns the ResponseWriter again.
func (iw *interimWriter) close() {
	iw.mu.Lock()
	iw.closed = true
	iw.mu.Unlock()
}

// matches reports whether a fill made for another request can answer r:
// same variant, and usable under r's own directives.
func (h *Handler) matches(res *fillResult, r *http.Request, reqCC cacheControl) bool {
	return h.sameVariant(res, r) && usability(res.entry, r, reqCC, h.now()) == usable
}

// writeResult writes a fill's outcome to the client of r.
func (h *Handler) writeResult(w http.ResponseWriter, r *http.Request, res *fillResult, fwd string, collapsed bool) {
	switch {
	case res.err != nil:
		h.m.request("MISS")
		h.writeError(w, r, res.err, xMiss)
	case res.stream != nil:
		h.m.request("MISS")
		h.writeStream(w, r, res.stream, fwd)
	case res.fromL2:
		h.m.request("HIT-L2")
		h.writeEntry(w, r, res.entry, xHitL2, h.status.hitL2, h.now())
	case res.staleOnError:
		h.m.request("STALE")
		h.writeEntry(w, r, res.entry, xStale, h.status.staleOnError, h.now())
	case res.revalidated:
		h.m.request("REVALIDATED")
		h.writeEntry(w, r, res.entry, xRevalidated, h.status.forward("stale", http.StatusNotModified, res.stored, collapsed), h.now())
	default:
		h.m.request("MISS")
		h.writeEntry(w, r, res.entry, xMiss, h.status.forward(fwd, res.entry.Status, res.stored, collapsed), h.now())
	}
}

// writeStream copies a response too large to store to the client.
func (h *Handler) writeStream(w http.ResponseWriter, r *http.Request, s *streamedResponse, fwd string) {
	defer s.close()
	stop := context.AfterFunc(r.Context(), s.close)
	defer stop()
	hdr := w.Header()
	for k, v := range s.header {
		hdr[k] = v
	}
	hdr["X-Cache"] = xMiss
	hdr["Cache-Status"] = h.status.forward(fwd, s.status, false, false)
	if streamNotModified(r, s) {
		delete(hdr, "Content-Length")
		delete(hdr, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(s.status)
	if r.Method == http.MethodHead || !bodyAllowed(s.status) {
		return
	}
	h.copyStream(w, r, s)
}

// errNoLease stands for a lease not taken on purpose.
var errNoLease = errors.New("no fill lease")

// sharedUse says what a fill asks of the shared tier before the origin.
type sharedUse int

const (
	sharedNone      sharedUse = iota // straight to the origin
	sharedLeaseOnly                  // L2 was just read: only take the fill lease
	sharedFull                       // read L2, then take the fill lease
)

// fill fetches the entry for r: from the shared tier if use says so, else
// from the origin, storing what may be stored. A stale entry, from the
// local tier or found in the shared one, is revalidated rather than
// fetched again, and served if the origin fails and it allows that. fill
// runs under ctx, which may outlive r's own context.
func (h *Handler) fill(ctx context.Context, r *http.Request, key string, rt *Route, reqCC cacheControl, use sharedUse, stale *tiers.Entry) *fillResult {
	// Every purge applied from here on is newer than what this fill
	// fetches, and will kill it.
	seq := h.bans.Applied()
	if use != sharedNone && h.shared != nil {
		if use == sharedFull {
			now := h.now()
			e, st, _ := h.lookup(ctx, h.shared, key, r, reqCC, now)
			if e != nil {
				h.promote(ctx, key, r, e, now)
				return &fillResult{entry: e, key: key, shareable: true, fromL2: true}
			}
			if st != nil && (stale == nil || st.StoredAt.After(stale.StoredAt)) {
				stale = st
			}
		}
		if l, ok := h.shared.(leaser); ok && stale == nil {
			e, held, release, err := l.Lease(ctx, key, leaseTTL)
			if e != nil && e.Kind == tiers.KindVary {
				// A Vary marker: the variant decides. Read it the
				// usual way; no lease for varying responses.
				e, _, _ = h.lookup(ctx, h.shared, key, r, reqCC, h.now())
				held, err = false, errNoLease
			} else if e != nil && (h.bans.Dead(e) || usability(e, r, reqCC, h.now()) != usable) {
				// Stored but not for this request: the script took no
				// lease; fetch without one.
				e, err = nil, errNoLease
			}
			switch {
			case e != nil:
				// Stored since the handler read L2.
				h.promote(ctx, key, r, e, h.now())
				return &fillResult{entry: e, key: key, shareable: true, fromL2: true}
			case err != nil:
				// No coordination: fetch ourselves.
			case held:
				defer release()
			default:
				if e := h.awaitFill(ctx, l, key, r, reqCC); e != nil {
					h.m.fleetCollapsed.Add(1)
					h.promote(ctx, key, r, e, h.now())
					return &fillResult{entry: e, key: key, shareable: true, fromL2: true}
				}
			}
		}
	}
	out := h.originRequest(ctx, r)
	if stale != nil {
		setValidators(out.Header, stale.Header)
	}
	reqTime := h.now()
	h.m.originRequests.Add(1)
	resp, err := h.transport.RoundTrip(out)
	h.m.originLatency.Observe(h.now().Sub(reqTime).Seconds())
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errFillTimeout) && !errors.Is(err, errFillTimeout) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		h.m.originFailed(err)
		if stale != nil && staleIfError(stale, reqCC, h.now()) {
			return &fillResult{entry: stale, key: key, shareable: true, staleOnError: true}
		}
		return &fillResult{err: err}
	}
	h.m.originOK()
	removeHopHeaders(resp.Header)
	if resp.StatusCode == http.StatusNotModified && stale != nil {
		resp.Body.Close()
		if e := h.freshen(stale, resp, out, reqCC, rt, reqTime, seq); e != nil {
			res := &fillResult{entry: e, key: key, shareable: true, revalidated: true}
			if len(e.Vary) > 0 {
				res.key = h.variantKey(key, e.Vary, r)
			}
			res.stored = h.store(ctx, key, res.key, e, e.StoredAt)
			return res
		}
		// The 304 is for another representation: fetch it whole.
		return h.fill(ctx, r, key, rt, reqCC, sharedNone, nil)
	}
	if resp.StatusCode >= 500 && stale != nil && staleIfError(stale, reqCC, h.now()) {
		resp.Body.Close()
		return &fillResult{entry: stale, key: key, shareable: true, staleOnError: true}
	}
	// Whether the response may be stored depends on its header alone:
	// what may not be stored is streamed, never buffered.
	pol := decide(out, reqCC, resp.StatusCode, resp.Header, rt, h.defaultTTL)
	if !pol.storable {
		h.log.Debug("not storing", "url", r.URL.String(), "reason", pol.reason)
		return &fillResult{stream: h.newStream(resp, nil, 0), key: key}
	}
	body, held, stream, err := h.bufferBody(resp)
	if err != nil {
		// Cut short: a 502, never stored.
		resp.Body.Close()
		return &fillResult{err: fmt.Errorf("reading the origin's body: %w", err)}
	}
	if stream != nil {
		// Too large, or over the budget of the fills in flight.
		return &fillResult{stream: stream, key: key}
	}
	defer h.inflight.give(held)
	resp.Body.Close()
	respTime := h.now()

	vary, _ := parseVary(resp.Header)
	e := &tiers.Entry{
		Kind:       tiers.KindResponse,
		Status:     resp.StatusCode,
		Header:     tiers.MakeHeader(storedHeader(resp.Header, len(body))),
		Body:       body,
		StoredAt:   respTime,
		InitialAge: initialAge(resp.Header, reqTime, respTime),
		Lifetime:   pol.lifetime,
		Vary:       vary,
		URL:        requestTarget(r.URL).url(),
		Tags:       parseTags(resp.Header),
		Seq:        seq,
	}
	if rt != nil && rt.Override {
		// The origin's freshness does not apply; neither may its age.
		e.InitialAge = 0
	}
	// The body and every string of the entry into one allocation: it
	// may be held for long.
	e = e.Packed()
	res := &fillResult{entry: e, key: key, shareable: true}
	if len(vary) > 0 {
		res.key = h.variantKey(key, vary, r)
	}
	res.stored = h.store(ctx, key, res.key, e, respTime)
	return res
}

// store writes e under entryKey in both tiers and, if e varies, a Vary
// marker under baseKey. It reports whether any tier took it.
func (h *Handler) store(ctx context.Context, baseKey, entryKey string, e *tiers.Entry, now time.Time) bool {
	ttl := min(e.Remaining(now)+retention(e), h.maxTTL)
	if ttl <= 0 {
		return false
	}
	var marker *tiers.Entry
	if entryKey != baseKey {
		marker = &tiers.Entry{Kind: tiers.KindVary, Vary: e.Vary, URL: e.URL,
			StoredAt: e.StoredAt, InitialAge: e.InitialAge, Lifetime: e.Lifetime, Seq: e.Seq, Tags: e.Tags}
	}
	stored := false
	if h.shared != nil {
		err := h.shared.Set(ctx, entryKey, e, ttl)
		if err == nil && marker != nil {
			err = h.shared.Set(ctx, baseKey, marker, ttl)
		}
		if err != nil {
			h.tierError(h.shared, err)
		} else {
			stored = true
		}
	}
	if h.setLocal(ctx, baseKey, entryKey, e, marker, ttl, true) {
		stored = true
	}
	if stored {
		h.m.stored.Add(1)
	}
	return stored
}

// promote copies an entry found in the shared tier into the local tier.
func (h *Handler) promote(ctx context.Context, baseKey string, r *http.Request, e *tiers.Entry, now time.Time) {
	if h.local == nil || !h.localUsable() {
		return
	}
	// An entry read from Redis lives in the one allocation of its
	// encoding: copy it into the packed form, which takes less memory in
	// L1 (see tiers.Entry.Packed). A promotion is once per key per L1 TTL.
	e = e.Packed()
	entryKey, marker := baseKey, (*tiers.Entry)(nil)
	if len(e.Vary) > 0 {
		entryKey = h.variantKey(baseKey, e.Vary, r)
		marker = &tiers.Entry{Kind: tiers.KindVary, Vary: e.Vary, URL: e.URL,
			StoredAt: e.StoredAt, InitialAge: e.InitialAge, Lifetime: e.Lifetime, Seq: e.Seq, Tags: e.Tags}
	}
	h.setLocal(ctx, baseKey, entryKey, e, marker, min(e.Remaining(now)+retention(e), h.maxTTL), false)
}

// waiter is implemented by a tier whose writes become visible
// asynchronously (ristretto buffers them).
type waiter interface{ Wait() }

// setLocal stores e (and its Vary marker) in the local tier. With wait, it
// returns only once the write is visible (ristretto applies writes
// asynchronously): a fill from the origin waits, so that the next request
// cannot go to the origin again; a promotion from the shared tier does
// not, since missing it only costs another shared-tier read.
func (h *Handler) setLocal(ctx context.Context, baseKey, entryKey string, e, marker *tiers.Entry, ttl time.Duration, wait bool) bool {
	if h.local == nil || ttl <= 0 || !h.localUsable() {
		return false
	}
	if ttl > h.l1TTL && h.shared != nil {
		// Other instances can purge: bound how long a copy may outlive a
		// purge this instance missed (see the fleet's guarantee). Alone,
		// an entry lives as long as its freshness and stale windows.
		ttl = h.l1TTL
	}
	if err := h.local.Set(ctx, entryKey, e, ttl); err != nil {
		return false
	}
	if marker != nil {
		if err := h.local.Set(ctx, baseKey, marker, ttl); err != nil {
			return false
		}
	}
	if w, ok := h.local.(waiter); ok && wait {
		w.Wait()
	}
	return true
}

// parseTags returns the surrogate keys of a response: the comma- or
// space-separated values of Cache-Tag and Surrogate-Key.
func parseTags(hdr http.Header) []string {
	var tags []string
	for _, name := range []string{"Cache-Tag", "Surrogate-Key"} {
		for _, v := range hdr[name] {
			tags = append(tags, strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })...)
		}
	}
	return tags
}
