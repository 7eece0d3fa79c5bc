package proxy

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"
)

// The cacheability report: for each route rule and each path pattern (the
// path's first two segments, with a segment that looks like an id read as
// "*"), how its requests were answered and, for those the cache could not
// answer, why. It is what a team putting the proxy in front of an
// existing API needs first: which of its routes are not cached, and what
// to change. It takes fixed memory (reportSlots patterns; any more are
// counted together as "other") and, per request, a hash of the path's
// first bytes and two atomic adds.

const reportSlots = 256

// counters are the answers of one pattern or route, by outcome label and
// by reason.
type counters struct {
	byLabel  []atomic.Int64 // indexed like labels
	byReason []atomic.Int64 // indexed by Reason
}

func newCounters() counters {
	return counters{byLabel: make([]atomic.Int64, len(labels)), byReason: make([]atomic.Int64, numReasons)}
}

func (c *counters) add(o *outcome, reason Reason) {
	c.byLabel[o.idx].Add(1)
	if reason == reasonNone || o.class == ClassHit {
		return // the report's reasons are those of answers not from the cache
	}
	c.byReason[reason].Add(1)
}

// slot is one pattern of the report.
type slot struct {
	hash atomic.Uint64 // 0 while free
	name atomic.Pointer[string]
	counters
}

// report is a Handler's cacheability report. The zero value is not
// usable: see newReport.
type report struct {
	slots [reportSlots]slot
	other counters
	// recent maps a hash of a path's first two segments, as they are, to
	// the slot of its pattern, so that most requests find it with one
	// pass over those bytes.
	recent [reportSlots * 4]atomic.Pointer[recentSlot]
	tag    uint32 // high half of this report's notes, never 0
}

type recentSlot struct {
	raw uint64
	c   *counters
}

func newReport() *report {
	r := &report{other: newCounters(), tag: uint32(rand.N(1<<16-1)) + 1}
	for i := range r.slots {
		r.slots[i].counters = newCounters()
	}
	return r
}

// add counts one answer, o for reason, to a request for the canonical
// path p, and to its route's counters if not nil (their route rules are
// held by the Handler's settings: see settings.counts).
func (r *report) add(p string, route *counters, o *outcome, reason Reason) {
	if route != nil {
		route.add(o, reason)
	}
	raw := rawHash(p)
	rs := &r.recent[raw%uint64(len(r.recent))]
	if cur := rs.Load(); cur != nil && cur.raw == raw {
		cur.c.add(o, reason)
		return
	}
	c := r.find(p)
	c.add(o, reason)
	rs.Store(&recentSlot{raw: raw, c: c})
}

// note returns the tag an entry for the canonical URL u carries (in
// tiers.Entry.Note), naming the slot of its pattern, so that a hit on it
// is counted without finding the pattern again; 0 for none.
func (r *report) note(u string) uint32 {
	p, _, _ := strings.Cut(u, "?")
	if i := r.slotOf(p); i >= 0 {
		return r.tag<<16 | uint32(i+1)
	}
	return 0
}

// noted returns the counters an entry's note names, or nil if it has
// none of this report.
func (r *report) noted(note uint32) *counters {
	if note>>16 != r.tag || note&0xffff == 0 {
		return nil
	}
	return &r.slots[note&0xffff-1].counters
}

// find returns the counters of the pattern of path p, taking a free slot
// for a new pattern; "other" when there is none.
func (r *report) find(p string) *counters {
	if i := r.slotOf(p); i >= 0 {
		return &r.slots[i].counters
	}
	return &r.other
}

// slotOf returns the slot of the pattern of path p, taking a free one for
// a new pattern; -1 when there is none.
func (r *report) slotOf(p string) int {
	h := patternHash(p)
	for probe := range 8 {
		i := int((h + uint64(probe)) % reportSlots)
		s := &r.slots[i]
		cur := s.hash.Load()
		if cur == 0 && s.hash.CompareAndSwap(0, h) {
			name := pattern(p)
			s.name.Store(&name)
			cur = h
		}
		if cur == 0 {
			cur = s.hash.Load() // another pattern took it meanwhile
		}
		if cur == h {
			return i
		}
	}
	return -1
}

// rawHash is a hash of the first two segments of p, as they are (and of
// whether there are more).
func rawHash(p string) uint64 {
	n := len(p)
	if i := strings.IndexByte(p[min(1, n):], '/'); i >= 0 {
		if j := strings.IndexByte(p[i+2:], '/'); j >= 0 {
			n = i + 2 + j + 1 // up to the third "/", included
		}
	}
	return maphash.String(rawSeed, p[:n])
}

// rawSeed seeds rawHash for the process.
var rawSeed = maphash.MakeSeed()

// segments returns the path's first two segments (without "/"), and
// whether it has more.
func segments(p string) (first, second string, deeper bool) {
	p = strings.TrimPrefix(p, "/")
	first, rest, ok := strings.Cut(p, "/")
	if !ok {
		return first, "", false
	}
	second, _, deeper = strings.Cut(rest, "/")
	return first, second, deeper
}

// idLike reports whether a path segment looks like an identifier rather
// than a name: a number, a long hex string or UUID, anything escaped, or
// anything long. "v1" is a name.
func idLike(seg string) bool {
	if seg == "" {
		return false
	}
	if len(seg) > 24 || strings.Contains(seg, "%") {
		return true
	}
	digits, hex := 0, true
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F', c == '-':
		default:
			hex = false
		}
	}
	return digits == len(seg) || hex && len(seg) >= 16 && digits > 0
}

// pattern returns the report's pattern of a path: "/rank",
// "/players/*", "/players/*/**".
func pattern(p string) string {
	first, second, deeper := segments(p)
	if idLike(first) {
		first = "*"
	}
	out := "/" + first
	if second != "" || deeper {
		if idLike(second) {
			second = "*"
		}
		out += "/" + second
	}
	if deeper {
		out += "/**"
	}
	return out
}

// patternHash is the FNV-1a hash of pattern(p), computed without building
// it; never 0.
func patternHash(p string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	mix := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h = (h ^ '/') * prime
	}
	first, second, deeper := segments(p)
	for _, seg := range []string{first, second} {
		if idLike(seg) {
			seg = "*"
		}
		mix(seg)
	}
	if deeper {
		mix("**")
	}
	return max(h, 1)
}

// ReportRow is one pattern or route of the cacheability report.
type ReportRow struct {
	// Pattern is the path pattern ("/players/*"), or the route's path
	// for a row of Routes.
	Pattern  string           `json:"pattern"`
	Requests int64            `json:"requests"`
	Answers  map[string]int64 `json:"answers"` // by X-Cache result
	// HitRatio is the share of the cacheable requests answered from the
	// cache (see HitRatios).
	HitRatio float64 `json:"hit_ratio"`
	// Reasons counts why requests not answered from the cache were not
	// (Cache-Status details), or why their answer was not stored.
	// MainReason is the most frequent, and MainReasonShare its share of
	// the row's requests: a reason of a few requests among many hits is
	// shown with its small share (see MainReasonText).
	Reasons         map[string]int64 `json:"reasons,omitempty"`
	MainReason      string           `json:"main_reason,omitempty"`
	MainReasonShare float64          `json:"main_reason_share,omitempty"`
	// Advice says what to do about MainReason.
	Advice string `json:"advice,omitempty"`
	// Warning, on a route, says its rule and its traffic disagree: a
	// route with cookies: ignore whose responses set cookies.
	Warning string `json:"warning,omitempty"`
}

// Report is the cacheability report of a Handler.
type Report struct {
	Patterns []ReportRow `json:"patterns"` // by requests, most first
	Routes   []ReportRow `json:"routes"`   // in the order of the route rules
}

// Report returns the cacheability report: the top patterns by traffic and
// every route rule.
func (h *Handler) Report(top int) Report {
	var out Report
	for i := range h.rep.slots {
		s := &h.rep.slots[i]
		if name := s.name.Load(); name != nil {
			out.Patterns = append(out.Patterns, row(*name, &s.counters))
		}
	}
	if o := row("other", &h.rep.other); o.Requests > 0 {
		out.Patterns = append(out.Patterns, o)
	}
	sort.SliceStable(out.Patterns, func(i, j int) bool { return out.Patterns[i].Requests > out.Patterns[j].Requests })
	if top > 0 && len(out.Patterns) > top {
		out.Patterns = out.Patterns[:top]
	}
	out.Routes = []ReportRow{}
	s := h.live.Load()
	for i, rt := range s.routes {
		r := row(rt.Path, s.counts[i])
		if n := s.counts[i].byReason[reasonSetCookie].Load(); rt.IgnoreCookies && n > 0 {
			r.Warning = fmt.Sprintf("cookies: ignore, but %d responses set a cookie and were not stored: "+
				"a response that sets a cookie is never stored; stop setting it on this route, or remove cookies: ignore", n)
		}
		out.Routes = append(out.Routes, r)
	}
	return out
}

func row(pattern string, c *counters) ReportRow {
	r := ReportRow{Pattern: pattern, Answers: map[string]int64{}}
	counts := make([]int64, len(labels))
	for i, l := range labels {
		if n := c.byLabel[i].Load(); n > 0 {
			counts[i] = n
			r.Answers[l] += n
			r.Requests += n
		}
	}
	r.HitRatio, _, _ = hitRatiosOf(counts)
	var best int64
	main := reasonNone
	for reason := range numReasons {
		n := c.byReason[reason].Load()
		if n == 0 {
			continue
		}
		if r.Reasons == nil {
			r.Reasons = map[string]int64{}
		}
		label := reason.String()
		r.Reasons[label] = n
		if n > best || n == best && label < r.MainReason {
			best, r.MainReason, main = n, label, reason
		}
	}
	if r.Requests > 0 {
		r.MainReasonShare = float64(best) / float64(r.Requests)
	}
	r.Advice = main.Advice(pattern) // a pattern is a route glob
	return r
}

// MainReasonText is the main reason with its share of the row's
// requests, "redis-timeout (2%)"; "" when there is none.
func (r ReportRow) MainReasonText() string {
	if r.MainReason == "" {
		return ""
	}
	pct := 100 * r.MainReasonShare
	if pct < 1 {
		return fmt.Sprintf("%s (<1%%)", r.MainReason)
	}
	return fmt.Sprintf("%s (%.0f%%)", r.MainReason, pct)
}
