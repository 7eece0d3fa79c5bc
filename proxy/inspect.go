package proxy

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cacheproxy/cacheproxy/tiers"
)

// Inspection describes what the tiers hold for one URL.
type Inspection struct {
	Key              string      `json:"key"`
	URL              string      `json:"url"`
	Tiers            []string    `json:"tiers"`
	Status           int         `json:"status"`
	StoredAt         time.Time   `json:"stored_at"`
	AgeSeconds       float64     `json:"age_seconds"`
	RemainingSeconds float64     `json:"remaining_seconds"`
	Size             int         `json:"size"`
	Tags             []string    `json:"tags"`
	Vary             []string    `json:"vary"`
	Seq              uint64      `json:"seq"`
	Header           http.Header `json:"headers"`
	// StaleIfErrorSeconds and StaleWhileRevalidateSeconds are the stale
	// windows in force for the entry: its Cache-Control's, else those the
	// configuration recorded on it when it was stored (route or
	// default). Zero: none.
	StaleIfErrorSeconds         float64 `json:"stale_if_error_seconds"`
	StaleWhileRevalidateSeconds float64 `json:"stale_while_revalidate_seconds"`
	// Variants lists, for a URL whose responses vary, every variant
	// cached, with the request header values that select each; the
	// fields above describe the one the inspecting request selects, if
	// any (Status is 0 when it selects none).
	Variants []Variant `json:"variants,omitempty"`
}

// Variant is one cached variant of a URL that varies.
type Variant struct {
	// Select gives the request header values that select it; a header
	// absent from the request is "(absent)".
	Select           map[string]string `json:"select"`
	Key              string            `json:"key"`
	Tiers            []string          `json:"tiers"`
	Status           int               `json:"status"`
	AgeSeconds       float64           `json:"age_seconds"`
	RemainingSeconds float64           `json:"remaining_seconds"`
	Size             int               `json:"size"`
}

// Inspect reports what the tiers hold for the URL raw, selecting among
// Vary variants with hdr (the inspecting request's headers). It returns
// nil if neither tier holds a live entry.
func (h *Handler) Inspect(ctx context.Context, raw string, hdr http.Header) (*Inspection, error) {
	t, err := parseTarget(raw)
	if err != nil {
		return nil, err
	}
	norm := t.url()
	// The variants are selected as for a client request with hdr.
	r := &http.Request{Header: hdr, Host: h.inspectHost(raw), RemoteAddr: "", URL: &url.URL{Path: "/"}}
	key := baseKey(h.o.KeyPrefix, h.keyHost(r), t)
	now := h.o.Now()
	var in *Inspection
	var variants []Variant
	for _, t := range []namedTier{{tierL1, h.chain.local}, {tierL2, h.chain.shared}} {
		if t.tier == nil {
			continue
		}
		variants = h.listVariants(ctx, t, key, variants)
		e, _ := h.chain.get(ctx, t.tier, key, r)
		if e == nil || h.o.Bans.Dead(e) {
			continue // not held, or purged: as if not held
		}
		if in == nil {
			in = inspection(e, norm, now)
			in.Key = key
			if len(e.Vary()) > 0 {
				in.Key = h.variantKey(key, e.Vary(), r)
			}
		}
		in.Tiers = append(in.Tiers, t.name)
	}
	if len(variants) > 0 {
		if in == nil {
			in = &Inspection{Key: key, URL: norm, Tiers: []string{}, Tags: []string{}, Header: http.Header{}}
		}
		in.Variants = variants
		for _, v := range variants {
			for name := range v.Select {
				if !slices.Contains(in.Vary, name) {
					in.Vary = append(in.Vary, name)
				}
			}
		}
	}
	return in, nil
}

// inspection describes e, stored for the canonical URL norm, at now.
func inspection(e *tiers.Entry, norm string, now time.Time) *Inspection {
	swr, sie := staleWindows(e)
	return &Inspection{
		URL: norm, Status: e.Status, StoredAt: e.StoredAt.Time(),
		AgeSeconds:       e.Age(now).Seconds(),
		RemainingSeconds: e.Remaining(now).Seconds(),
		Size:             e.Size(), Tags: e.Tags(), Vary: e.Vary(), Seq: e.Seq, Header: e.Header.Clone(),

		StaleIfErrorSeconds:         max(sie, 0).Seconds(),
		StaleWhileRevalidateSeconds: max(swr, 0).Seconds(),
	}
}

// namedTier is a tier with its name in an Inspection (tierL1, tierL2).
type namedTier struct {
	name string
	tier Tier
}

// listVariants adds to vs the live variants the Vary marker under key in
// nt lists, noting the tier's name on those already in vs.
func (h *Handler) listVariants(ctx context.Context, nt namedTier, key string, vs []Variant) []Variant {
	t, name := nt.tier, nt.name
	m, ok, err := t.Get(ctx, key)
	if err != nil || !ok || m.Kind != tiers.KindVary || h.o.Bans.Dead(m) {
		return vs
	}
	now := h.o.Now()
next:
	for _, suffix := range m.Header.Values(variantField) {
		vk := tiers.VariantKey(key, suffix)
		e, ok, err := t.Get(ctx, vk)
		if err != nil || !ok || e.Kind != tiers.KindResponse || h.o.Bans.Dead(e) {
			continue
		}
		for i := range vs {
			if vs[i].Key == vk {
				vs[i].Tiers = append(vs[i].Tiers, name)
				continue next
			}
		}
		vs = append(vs, Variant{Select: parseVariant(suffix), Key: vk, Tiers: []string{name}, Status: e.Status,
			AgeSeconds: e.Age(now).Seconds(), RemainingSeconds: e.Remaining(now).Seconds(), Size: e.Size()})
	}
	return vs
}

// parseVariant reads the header values of a variant key's suffix (see
// variantKey): "Name:value" lines, "Name\x01" for an absent header.
func parseVariant(suffix string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(suffix, "\n"), "\n") {
		if name, absent := strings.CutSuffix(line, "\x01"); absent {
			out[name] = "(absent)"
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		out[name] = value
	}
	return out
}

// inspectHost returns the host an inspected URL is looked up for: with
// Hosts, the host of an absolute URL, or the first configured one.
func (h *Handler) inspectHost(raw string) string {
	if h.hosts == nil {
		return ""
	}
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	first := ""
	for hn := range h.hosts {
		if first == "" || hn < first {
			first = hn
		}
	}
	return first
}
