package main

import (
	"fmt"
	"net/http"
	"strconv"
)

// maxProfileSeconds is the longest CPU profile or execution trace the
// admin listener takes: each holds the profiler, and a connection, for
// its whole duration.
const maxProfileSeconds = 60

// limitSeconds answers 400 to a profile or trace request whose seconds
// parameter is not a number of seconds from 0 to maxProfileSeconds, and
// hands the others to h (which defaults an absent or zero value).
func limitSeconds(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("seconds"); v != "" {
			sec, err := strconv.ParseFloat(v, 64)
			if err != nil || !(sec >= 0 && sec <= maxProfileSeconds) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "seconds must be a number from 0 to %d\n", maxProfileSeconds)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
