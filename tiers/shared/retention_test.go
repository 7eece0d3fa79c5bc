package shared

import (
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// TestBanRetentionOneDefinition: a tier given no BanKeep keeps bans as
// long as the proxy does with its defaults (tiers.BanRetention of the
// default MaxTTL and FillTimeout), not a figure of its own.
func TestBanRetentionOneDefinition(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL(), Bans: new(tiers.Bans)})
	want := tiers.BanRetention(tiers.DefaultMaxTTL, tiers.DefaultFillTimeout)
	if got := tier.retention(); got != want {
		t.Errorf("retention %v, want %v", got, want)
	}
	if want != 25*time.Hour { // docs/consistency.md, point 7
		t.Errorf("default retention %v, want 25h", want)
	}
}
