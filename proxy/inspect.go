package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
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
	for _, t := range []struct {
		name string
		tier Tier
	}{{"l1", h.o.Local}, {"l2", h.o.Shared}} {
		if t.tier == nil {
			continue
		}
		e, _ := h.chain.get(ctx, t.tier, key, r)
		if e == nil {
			continue
		}
		if in == nil {
			in = &Inspection{
				Key: key, URL: norm, Status: e.Status, StoredAt: e.StoredAt,
				AgeSeconds:       e.Age(now).Seconds(),
				RemainingSeconds: e.Remaining(now).Seconds(),
				Size:             e.Size(), Tags: e.Tags, Vary: e.Vary, Seq: e.Seq, Header: e.Header.Clone(),
			}
			if len(e.Vary) > 0 {
				in.Key = h.variantKey(key, e.Vary, r)
			}
		}
		in.Tiers = append(in.Tiers, t.name)
	}
	return in, nil
}

// Key returns the base cache key of a canonical URL (see CanonicalURL):
// the key of its entry, or of the Vary marker that leads to its variants.
// With Hosts, a URL has one key per host: Key returns "" (purges rely on
// their ban alone).
func (h *Handler) Key(canonicalURL string) string {
	if h.hosts != nil {
		return ""
	}
	p, q, _ := strings.Cut(canonicalURL, "?")
	return baseKey(h.o.KeyPrefix, "", target{path: p, query: q})
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
