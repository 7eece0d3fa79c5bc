// Package admin is the HTTP handler of cacheproxy's admin listener: liveness
// (/healthz), readiness (/readyz), counters (/stats) and Prometheus metrics
// (/metrics), behind an optional bearer token.
//
// The package knows nothing of the proxy or the tiers: main hands it
// functions that report on them. More routes (purge, inspect) are added
// with Handler.Handle and get the same authentication.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Options configures a Handler. Every field is optional.
type Options struct {
	// Token is the bearer token that every request but GET /healthz must
	// present as "Authorization: Bearer <token>". Empty means no
	// authentication, which is only sensible on a loopback listener;
	// then every request whose Host is not a loopback name (localhost,
	// 127.0.0.0/8 or ::1, with any port) is refused with 403, so that a
	// web page cannot reach the API by rebinding its own DNS name to
	// 127.0.0.1.
	Token string

	// Stats returns the value served as JSON by GET /stats. If nil,
	// /stats is not served.
	Stats func() any

	// Ready reports readiness for GET /readyz: 200 when ok, else 503,
	// with detail as the JSON body. If nil, /readyz always answers 200
	// {"status":"ok"}.
	Ready func() (ok bool, detail any)

	// Metrics serves GET /metrics, e.g. promhttp.HandlerFor(registry,
	// promhttp.HandlerOpts{}). If nil, /metrics is not served.
	Metrics http.Handler
}

// CheckToken reports whether tok can be sent in an Authorization header.
func CheckToken(tok string) error {
	for _, r := range tok {
		if r <= ' ' || r == 0x7f {
			return errors.New("must not contain spaces or control characters")
		}
	}
	return nil
}

// Handler is the admin http.Handler. It is safe for concurrent use,
// including calls to Handle while it serves.
type Handler struct {
	mux       *http.ServeMux
	tokenHash [sha256.Size]byte
	auth      bool
}

// New returns a Handler serving the routes that opts enables. It fails if
// the token cannot be sent in an Authorization header.
func New(opts Options) (*Handler, error) {
	if err := CheckToken(opts.Token); err != nil {
		return nil, fmt.Errorf("admin: token %w", err)
	}
	h := &Handler{
		mux:       http.NewServeMux(),
		tokenHash: sha256.Sum256([]byte(opts.Token)),
		auth:      opts.Token != "",
	}
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	ready := opts.Ready
	if ready == nil {
		ready = func() (bool, any) { return true, map[string]string{"status": "ok"} }
	}
	h.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, detail := ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		WriteJSON(w, code, detail)
	})
	if opts.Stats != nil {
		h.mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, opts.Stats())
		})
	}
	if opts.Metrics != nil {
		h.mux.Handle("GET /metrics", opts.Metrics)
	}
	return h, nil
}

// Handle registers handler for pattern, in the syntax of http.ServeMux
// ("GET /cache/{key}", "POST /purge"). The handler is reached only by
// requests that pass the token check. Like http.ServeMux.Handle, it panics
// if pattern is invalid or conflicts with a registered one.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	h.mux.Handle(pattern, handler)
}

// ServeHTTP answers GET /healthz to anyone and everything else, including
// unknown paths, only to requests carrying the token. Without a token, it
// answers only requests for a loopback Host.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !h.auth && !loopbackHost(r.Host) {
		WriteJSON(w, http.StatusForbidden, map[string]string{"error": "without an admin token, only requests for localhost, 127.0.0.0/8 or ::1 are answered"})
		return
	}
	if r.URL.Path != "/healthz" && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cacheproxy-admin"`)
		WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	h.mux.ServeHTTP(w, r)
}

// loopbackHost reports whether a request's Host names this machine's
// loopback interface: localhost, an address of 127.0.0.0/8 or ::1, with
// or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authorized reports whether r carries the token, comparing in constant
// time (hashes of equal length, so the token's length does not leak).
func (h *Handler) authorized(r *http.Request) bool {
	if !h.auth {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

// WriteJSON writes v as an indented JSON body with status code. It is for
// handlers added with Handle, so that every admin answer looks alike.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		body, _ = json.Marshal(map[string]string{"error": "encoding response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
}
