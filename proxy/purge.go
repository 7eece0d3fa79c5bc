package proxy

import (
	"context"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// PurgeLocal purges, in this instance only, the entries a ban of kind and
// value names: it records a ban with the next local sequence number. It
// is the purge of a proxy that is not part of a fleet.
func (h *Handler) PurgeLocal(kind tiers.BanKind, value string) {
	now := h.o.Now()
	h.o.Bans.Apply(now, h.BanRetention(), tiers.Ban{Seq: h.o.Bans.Applied() + 1, Kind: kind, Value: value, At: now})
}

// BanRetention is how long a purge must be remembered: no entry filled
// before it can be alive after that.
func (h *Handler) BanRetention() time.Duration {
	return h.o.MaxTTL + h.o.FillTimeout + time.Minute
}

// NormalizeURL returns the canonical form of a URL ("/path?query") that
// entries record and URL purges name. It is CanonicalURL.
func NormalizeURL(raw string) (string, error) { return CanonicalURL(raw) }

// DropLocal removes from the local tier (L1) every entry of the canonical
// URL u it can name: its base key and the variants its Vary marker lists.
// It reports false if it could not (with Hosts a URL has a key per host):
// the caller then flushes L1. It is what an instance does alone with a
// URL purge it could not record for the fleet.
func (h *Handler) DropLocal(ctx context.Context, u string) bool {
	key := h.Key(u)
	if key == "" {
		return false
	}
	if h.o.Local == nil {
		return true
	}
	keys := []string{key}
	if m, ok, err := h.o.Local.Get(ctx, key); err == nil && ok && m.Kind == tiers.KindVary {
		if m.Header.Get(unlistedField) != "" {
			return false // some variant is not listed
		}
		for _, v := range m.Header.Values(variantField) {
			keys = append(keys, key+"#"+v)
		}
	}
	return h.o.Local.Delete(ctx, keys...) == nil
}
