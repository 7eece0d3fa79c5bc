package proxy

// Purges. A purge is a tiers.Selector; Handler.Purge is the one place
// that carries it out: alone (a ban in this instance's table) or, in a
// fleet, recorded for every instance by Options.Fleet. The admin API's
// DELETE /cache (PurgeAPI, in admin.go) and the invalidation after an
// unsafe request (RFC 9111 §4.4, origin.go) both call it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Fleet is what the Handler needs of the fleet of instances it is part
// of (shared.Fleet).
type Fleet interface {
	// Purge records sel for every instance, and waits for those that
	// may still serve what it names to confirm they applied it. baseKey,
	// for a URL, is its base cache key (Handler.Key), which the fleet
	// may delete from the shared tier at once to free memory. An error
	// means the purge was not recorded, or was recorded before Purge
	// returned, never after.
	Purge(ctx context.Context, sel tiers.Selector, baseKey string) (tiers.PurgeResult, error)
}

// PurgeResult is what Handler.Purge did.
type PurgeResult struct {
	tiers.PurgeResult
	// Fleet is false for a Handler without a Fleet: the purge was
	// this instance's alone, and Confirmed is Options.Instance.
	Fleet bool
}

// ErrPurgeNotRecorded wraps the error of a purge the fleet could not
// record: this instance dropped from its L1 what the purge names, but the
// other instances may not have heard of it.
var ErrPurgeNotRecorded = errors.New("the purge could not be recorded for the fleet")

// Purge removes what sel names. Without a Fleet it records a ban in
// this instance's table, with the next local sequence number. With one
// it records the purge for the fleet and waits for the instances (see
// Fleet.Purge); if that fails, this instance drops from its L1 what the
// purge names (dropNamed), and the error wraps ErrPurgeNotRecorded. A
// selector
// that is not valid (tiers.Selector.Validate) is an error and purges
// nothing.
func (h *Handler) Purge(ctx context.Context, sel tiers.Selector) (PurgeResult, error) {
	if err := sel.Validate(); err != nil {
		return PurgeResult{}, err
	}
	if h.o.Fleet == nil {
		b := h.purgeLocal(sel)
		return PurgeResult{PurgeResult: tiers.PurgeResult{Ban: b, Confirmed: []string{h.o.Instance}, Missing: []string{}}}, nil
	}
	var baseKey string
	if sel.Kind == tiers.BanURL {
		baseKey = h.Key(sel.Value)
	}
	res, err := h.o.Fleet.Purge(ctx, sel, baseKey)
	if err != nil {
		h.dropNamed(ctx, sel)
		return PurgeResult{}, fmt.Errorf("%w: %w", ErrPurgeNotRecorded, err)
	}
	if res.Confirmed == nil {
		res.Confirmed = []string{}
	}
	if res.Missing == nil {
		res.Missing = []string{}
	}
	return PurgeResult{PurgeResult: res, Fleet: true}, nil
}

// purgeLocal records a ban of sel in this instance's table, with the
// next local sequence number, and returns it.
func (h *Handler) purgeLocal(sel tiers.Selector) tiers.Ban {
	now := h.o.Now()
	b := tiers.Ban{Seq: h.o.Bans.Applied() + 1, Selector: sel, At: now}
	h.o.Bans.Apply(now, h.banRetention(), b)
	return b
}

// banRetention is how long a purge must be remembered: no entry filled
// before it can be alive after that.
// (h.o has its defaults: see Options.BanRetention.)
func (h *Handler) banRetention() time.Duration {
	return tiers.BanRetention(h.o.MaxTTL, h.o.FillTimeout)
}

// dropNamed drops from the local tier (L1) what sel names, as this
// instance alone can: it is what it does with a purge it could not record
// for the fleet. Without the fleet's sequence number a ban could not be
// ordered with the fleet's, so a local tier that can (localPurger) keeps
// a ban of its own, by time: every entry sel names, under any key, stored
// before now. Another tier drops a URL's keys (dropLocal), or else
// everything.
func (h *Handler) dropNamed(ctx context.Context, sel tiers.Selector) {
	if h.chain.purgeLocal(sel, h.o.Now()) {
		if sel.Kind == tiers.BanURL {
			// The URL's keys it can name go at once, not when next
			// read: their memory too.
			h.dropLocal(ctx, sel.Value)
		}
		return
	}
	if sel.Kind != tiers.BanURL || !h.dropLocal(ctx, sel.Value) {
		h.chain.clearLocal()
	}
}

// dropLocal removes from the local tier (L1) every entry of the canonical
// URL u it can name: its base key and the variants its Vary marker lists.
// It reports false if it could not (with Hosts a URL has a key per host):
// the caller then flushes L1. It is what an instance does alone with a
// URL purge it could not record for the fleet.
func (h *Handler) dropLocal(ctx context.Context, u string) bool {
	key := h.Key(u)
	if key == "" {
		return false
	}
	return h.chain.dropLocal(ctx, key)
}
