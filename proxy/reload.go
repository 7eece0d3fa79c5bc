package proxy

// Reload applies the options of opts that may change while the Handler
// serves: Routes, DefaultTTL, ClientNoCache, StripHeaders, TagHeaders,
// MaxObjectBytes and BodyTimeout. It is atomic: a request already being
// served keeps the routes, TTL and no-cache policy it started with; the
// next one sees the new ones. The cached entries, the tiers and the fleet
// are kept. The other fields of opts are ignored: changing them takes a
// new Handler. If opts is not valid, Reload returns the error New would
// and changes nothing. Safe for concurrent use.
func (h *Handler) Reload(opts Options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	h.live.Store(newSettings(opts.withDefaults(), h.live.Load()))
	return nil
}

// Validate reports, as New would, the first option of o that is not
// valid. It makes nothing and connects to nothing: it is what a
// configuration check runs.
func (o Options) Validate() error { return o.validate() }
