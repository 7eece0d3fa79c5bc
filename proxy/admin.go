package proxy

// The admin API's cache routes, for the admin listener to mount: DELETE
// /cache (PurgeAPI) and GET /cache (InspectAPI), whose arguments name URLs
// in the same canonical form as keys and routes; and GET /vocabulary
// (VocabularyAPI).

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// PurgeAnswer is the JSON answer of DELETE /cache.
type PurgeAnswer struct {
	Purge     PurgeDesc `json:"purge"`
	Confirmed []string  `json:"confirmed"`
	Missing   []string  `json:"missing"`
	// MissingUntil gives, for each of Missing, the time by which it
	// serves nothing older than the purge (its L1 unused or flushed,
	// its fills in flight over), by Redis's clock.
	MissingUntil map[string]time.Time `json:"missing_until,omitempty"`
	// UnknownUntil, if set, is the time (by Redis's clock) until which
	// an instance the fleet cannot know of may serve what the purge
	// names: Redis restarted empty or was flushed less than the fleet's
	// window (-l1-ttl + fill timeout + heartbeats) before the purge, and
	// lost its record of the instances with its data
	// (tiers.PurgeResult.UnknownUntil).
	UnknownUntil time.Time `json:"unknown_until,omitzero"`
	// Fleet is false for a proxy without Redis: the purge was local.
	Fleet bool `json:"fleet"`
}

// PurgeDesc is the purge as recorded: its selector and, in a fleet, its
// sequence number.
type PurgeDesc struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	Seq   uint64 `json:"seq"`
}

// ErrorAnswer is the JSON answer of an admin request that failed.
type ErrorAnswer struct {
	Error string `json:"error"`
	// LocalL1Purged is true when the purge could not be recorded for
	// the fleet but this instance's L1 dropped what it names.
	LocalL1Purged bool `json:"local_l1_purged,omitempty"`
}

// PurgeAPI returns the handler of DELETE /cache?url=|prefix=|tag=|all=true:
// a purge (Purge), fleet-wide when there is a Fleet. It answers 200 once
// every instance that may still serve what it names confirmed; 202 if
// some did not within the fleet's wait, each named with the time by which
// it serves nothing older, or if Redis lost its record of the instances
// too recently to know them all (with the time until which one it does
// not know may serve); 503 if the fleet could not record it (not
// recorded, or recorded before this answer, never after; this instance's
// L1 is dropped all the same); 400 for a selector that is not valid.
func (h *Handler) PurgeAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sel, err := ParseSelector(r.URL.RawQuery)
		if err != nil {
			admin.WriteJSON(w, http.StatusBadRequest, ErrorAnswer{Error: err.Error()})
			return
		}
		res, err := h.Purge(r.Context(), sel)
		switch {
		case errors.Is(err, ErrPurgeNotRecorded):
			admin.WriteJSON(w, http.StatusServiceUnavailable, ErrorAnswer{
				Error: "redis did not record the purge in time, the fleet could not be told " +
					"(if it was recorded, it was before this answer; this instance's L1 was purged): " + err.Error(),
				LocalL1Purged: true,
			})
			return
		case err != nil:
			admin.WriteJSON(w, http.StatusBadRequest, ErrorAnswer{Error: err.Error()})
			return
		}
		code := http.StatusOK
		if !res.Complete() {
			code = http.StatusAccepted
		}
		desc := PurgeDesc{Kind: sel.Kind.String(), Value: sel.Value}
		if res.Fleet {
			desc.Seq = res.Ban.Seq
		}
		admin.WriteJSON(w, code, PurgeAnswer{Purge: desc, Confirmed: res.Confirmed, Missing: res.Missing,
			MissingUntil: res.MissingUntil, UnknownUntil: res.UnknownUntil, Fleet: res.Fleet})
	})
}

// InspectAPI returns the handler of GET /cache?url=: what the tiers hold
// for one URL (Inspect), 404 if nothing.
func (h *Handler) InspectAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := adminParams(r.URL.RawQuery).Get("url")
		if raw == "" {
			admin.WriteJSON(w, http.StatusBadRequest, ErrorAnswer{Error: "give url=/path?query"})
			return
		}
		hdr := r.Header.Clone()
		hdr.Del("Authorization")
		in, err := h.Inspect(r.Context(), raw, hdr)
		if err != nil {
			admin.WriteJSON(w, http.StatusBadRequest, ErrorAnswer{Error: err.Error()})
			return
		}
		if in == nil {
			admin.WriteJSON(w, http.StatusNotFound, ErrorAnswer{Error: "not cached"})
			return
		}
		admin.WriteJSON(w, http.StatusOK, in)
	})
}

// VocabularyAPI returns the handler of GET /vocabulary: the proxy's
// vocabulary (Vocab) as JSON, the X-Cache results and Cache-Status
// details with what each means. The dashboard reads its labels from it.
func VocabularyAPI() http.Handler {
	v := Vocab()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.WriteJSON(w, http.StatusOK, v)
	})
}

// ParseSelector reads the selector of a purge from the query of a DELETE
// /cache: exactly one of url=, prefix=, tag= or all=true, a URL or prefix
// put in canonical form, and valid (tiers.Selector.Validate); soft=1, in
// any place, makes it a soft purge (tiers.Selector.Soft).
func ParseSelector(rawQuery string) (tiers.Selector, error) {
	q := adminParams(rawQuery)
	var kinds []tiers.BanKind
	for _, k := range tiers.BanKinds {
		if q.Has(k.String()) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		return tiers.Selector{}, errors.New("give exactly one of url=/path?query, prefix=/path/, tag=name or all=true")
	}
	sel := tiers.Selector{Kind: kinds[0]}
	v := q.Get(sel.Kind.String())
	var err error
	switch sel.Kind {
	case tiers.BanURL:
		sel.Value, err = CanonicalURL(v)
	case tiers.BanPrefix:
		sel.Value, err = CanonicalPrefix(v)
	case tiers.BanTag:
		sel.Value = v
	default:
		if v != "true" {
			return tiers.Selector{}, fmt.Errorf("all=%q: want all=true", v)
		}
	}
	if err != nil {
		return tiers.Selector{}, err
	}
	if q.Has("soft") {
		switch v := q.Get("soft"); v {
		case "1", "true":
			sel.Soft = true
		case "0", "false":
		default:
			return tiers.Selector{}, fmt.Errorf("soft=%q: want soft=1 (mark stale) or soft=0", v)
		}
	}
	return sel, sel.Validate()
}

// adminParams reads the query of an admin request. A url= or prefix=
// value that starts with "/" (or holds "://") was not escaped as a query
// value: its "%" escapes, "&" and "?" are the URL's own, so it is taken as
// sent, up to the next admin parameter ("url=/x%2Fy" names the path
// /x%2Fy, not /x/y; "url=/rank?b=2&a=1" the URL /rank?a=1&b=2). Any other
// value (the CLI sends "%2Fx%252Fy") is unescaped once, as query values
// are.
func adminParams(rawQuery string) url.Values {
	out := url.Values{}
	rest := rawQuery
	for rest != "" {
		var kv string
		kv, rest, _ = strings.Cut(rest, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k, err := url.QueryUnescape(k); err == nil && (k == "url" || k == "prefix") &&
			(strings.HasPrefix(v, "/") || strings.Contains(v, "://")) {
			// The URL's own "&"s run up to the next admin parameter.
			for rest != "" && !isAdminParam(rest) {
				var more string
				more, rest, _ = strings.Cut(rest, "&")
				v += "&" + more
			}
			out.Add(k, v)
			continue
		}
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 == nil && err2 == nil {
			out.Add(k, v)
		}
	}
	return out
}

// isAdminParam reports whether a query's remainder starts with one of the
// admin API's parameters.
func isAdminParam(rest string) bool {
	if strings.HasPrefix(rest, "soft=") {
		return true
	}
	for _, k := range tiers.BanKinds {
		if strings.HasPrefix(rest, k.String()+"=") {
			return true
		}
	}
	return false
}
