package main

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// The dashboard: GET /ui/ on the admin listener serves a page, a script
// and a style sheet embedded in the binary (no build step, nothing loaded
// from elsewhere). The script reads the labels it shows from /vocabulary
// once, then polls /stats, /readyz, /report, /purges, /history and, for
// its inspect box, /cache?url= every 2 s, sending the admin token as a
// bearer token like any other client.
//
// The three files hold no data, so they are served without the token: a
// browser cannot send an Authorization header when it navigates to a page,
// so behind the admin handler's token check the page could not be opened
// at all. Everything the page shows comes from the admin API, with the
// token. The user gives it once, in the URL fragment (/ui/#token=...,
// never sent to the server; the page removes it from the address bar) or
// in the page's token field, and the page keeps it in sessionStorage,
// which the tab forgets when it is closed.

//go:embed ui
var uiFiles embed.FS

// uiCSP lets the page run its own script and style sheet and talk to its
// own origin, nothing else: no inline script, no other site, no framing.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// withDashboard returns adm with the dashboard in front of it: GET and
// HEAD of /ui and /ui/... are answered with the embedded files, without
// the admin token; every other request goes to adm.
func withDashboard(adm http.Handler) http.Handler {
	static, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != "/ui" && !strings.HasPrefix(p, "/ui/") || r.Method != http.MethodGet && r.Method != http.MethodHead {
			adm.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if p == "/ui" {
			// Relative, so that it works behind a proxy adding a path
			// prefix; the browser keeps the fragment (the token).
			loc := "ui/"
			if r.URL.RawQuery != "" {
				loc += "?" + r.URL.RawQuery
			}
			h.Set("Location", loc)
			w.WriteHeader(http.StatusFound)
			return
		}
		name := strings.TrimPrefix(p, "/ui/")
		if name == "" {
			name = "index.html"
		}
		body, err := fs.ReadFile(static, name)
		if err != nil { // not a file of the dashboard, or a directory
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}
