package proxy

import (
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
