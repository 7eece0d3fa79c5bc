package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/admin"
	"github.com/cacheproxy/cacheproxy/proxy"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// purgeResponse is the JSON answer of DELETE /cache.
type purgeResponse struct {
	Purge     purgeDesc `json:"purge"`
	Confirmed []string  `json:"confirmed"`
	Missing   []string  `json:"missing"`
	// MissingUntil gives, for each of Missing, the time by which it
	// serves nothing older than the purge (its L1 unused or flushed,
	// its fills in flight over), by Redis's clock.
	MissingUntil map[string]time.Time `json:"missing_until,omitempty"`
	// Fleet is false for a proxy without Redis: the purge was local.
	Fleet bool `json:"fleet"`
}

type purgeDesc struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	Seq   uint64 `json:"seq"`
}

type errorResponse struct {
	Error         string `json:"error"`
	LocalL1Purged bool   `json:"local_l1_purged,omitempty"`
}

// purgeSelector reads which entries a DELETE /cache names: exactly one of
// url, prefix, tag or all=true.
func purgeSelector(r *http.Request) (tiers.BanKind, string, error) {
	q := adminParams(r.URL.RawQuery)
	var kinds []string
	for _, k := range []string{"url", "prefix", "tag", "all"} {
		if q.Has(k) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		return 0, "", errors.New("give exactly one of url=/path?query, prefix=/path/, tag=name or all=true")
	}
	v := q.Get(kinds[0])
	switch kinds[0] {
	case "url":
		norm, err := proxy.CanonicalURL(v)
		return tiers.BanURL, norm, err
	case "prefix":
		norm, err := proxy.CanonicalPrefix(v)
		return tiers.BanPrefix, norm, err
	case "tag":
		if strings.TrimSpace(v) == "" || strings.ContainsAny(v, ", \t") {
			return 0, "", fmt.Errorf("tag %q must be one non-empty name without commas or spaces", v)
		}
		return tiers.BanTag, v, nil
	default:
		if v != "true" {
			return 0, "", fmt.Errorf("all=%q: want all=true", v)
		}
		return tiers.BanAll, "", nil
	}
}

// adminParams reads the query of an admin request. A url= or prefix=
// value that starts with "/" (or holds "://") was not escaped as a query
// value: its "%" escapes, "&" and "?" are the URL's own, so it is taken as
// sent, up to the next admin parameter ("url=/x%2Fy" names the path
// /x%2Fy, not /x/y; "url=/rank?b=2&a=1" the URL /rank?a=1&b=2). Any other value (the
// CLI sends "%2Fx%252Fy") is unescaped once, as query values are.
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
	for _, p := range []string{"url=", "prefix=", "tag=", "all="} {
		if strings.HasPrefix(rest, p) {
			return true
		}
	}
	return false
}

// servePurge is DELETE /cache: a purge, fleet-wide when there is Redis.
// 200 once every instance that may still serve what it names confirmed;
// 202 if some did not within -purge-wait, each named with the time by
// which it serves nothing older; 503 if Redis did not record it in time
// (not recorded, or recorded before this answer, never after: see
// shared.Fleet.Purge; this instance's L1 is dropped all the same); 400
// for a bad selector.
func (s *stack) servePurge(w http.ResponseWriter, r *http.Request) {
	kind, value, err := purgeSelector(r)
	if err == nil && len(value) > tiers.MaxBanValue {
		// Nothing longer is ever cached, nor can a ban name it.
		err = fmt.Errorf("%s is %d bytes in canonical form: at most %d (longer URLs are never cached)", kind, len(value), tiers.MaxBanValue)
	}
	if err != nil {
		admin.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error()})
		return
	}
	if s.fleet == nil {
		s.proxy.PurgeLocal(kind, value)
		admin.WriteJSON(w, http.StatusOK, purgeResponse{
			Purge:     purgeDesc{Kind: kind.String(), Value: value},
			Confirmed: []string{s.id}, Missing: []string{}, Fleet: false,
		})
		return
	}
	res, err := s.purgeFleet(r.Context(), kind, value)
	if err != nil {
		admin.WriteJSON(w, http.StatusServiceUnavailable, errorResponse{
			Error: "redis did not record the purge in time, the fleet could not be told " +
				"(if it was recorded, it was before this answer; this instance's L1 was purged): " + err.Error(),
			LocalL1Purged: true,
		})
		return
	}
	code := http.StatusOK
	if len(res.Missing) > 0 {
		code = http.StatusAccepted
	}
	admin.WriteJSON(w, code, res)
}

// purgeFleet records a purge for the fleet and waits for the live
// instances. If the fleet cannot be told, this instance drops from its L1
// what it can name of the purge: the entries of a URL (its key and listed
// variants), else everything; without the fleet's sequence a ban could
// not be ordered with the others.
func (s *stack) purgeFleet(ctx context.Context, kind tiers.BanKind, value string) (purgeResponse, error) {
	var baseKey string
	if kind == tiers.BanURL {
		baseKey = s.proxy.Key(value)
	}
	res, err := s.fleet.Purge(ctx, kind, value, baseKey)
	if err != nil {
		// A URL purge drops that URL's entries here; any other drops
		// the whole L1.
		if kind != tiers.BanURL || !s.proxy.DropLocal(ctx, value) {
			s.flushLocal()
		}
		return purgeResponse{}, err
	}
	out := purgeResponse{
		Purge:     purgeDesc{Kind: kind.String(), Value: value, Seq: res.Ban.Seq},
		Confirmed: res.Confirmed, Missing: res.Missing, MissingUntil: res.MissingUntil, Fleet: true,
	}
	if out.Confirmed == nil {
		out.Confirmed = []string{}
	}
	if out.Missing == nil {
		out.Missing = []string{}
	}
	return out, nil
}

// purgeAfterUnsafe is the proxy's Purge hook: the invalidation that
// follows a successful unsafe request, for the whole fleet.
func (s *stack) purgeAfterUnsafe(ctx context.Context, kind tiers.BanKind, value string) error {
	res, err := s.purgeFleet(ctx, kind, value)
	if err != nil {
		return err
	}
	if len(res.Missing) > 0 {
		return fmt.Errorf("not confirmed by %s", strings.Join(res.Missing, ", "))
	}
	return nil
}

// serveInspect is GET /cache?url=: what the tiers hold for one URL.
func (s *stack) serveInspect(w http.ResponseWriter, r *http.Request) {
	raw := adminParams(r.URL.RawQuery).Get("url")
	if raw == "" {
		admin.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: "give url=/path?query"})
		return
	}
	hdr := r.Header.Clone()
	hdr.Del("Authorization")
	in, err := s.proxy.Inspect(r.Context(), raw, hdr)
	if err != nil {
		admin.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error()})
		return
	}
	if in == nil {
		admin.WriteJSON(w, http.StatusNotFound, errorResponse{Error: "not cached"})
		return
	}
	admin.WriteJSON(w, http.StatusOK, in)
}
