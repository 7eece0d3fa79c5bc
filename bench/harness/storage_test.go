package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// heapInUse reads the Go collector's gauge from a Prometheus text page,
// in the float form client_golang writes, and says when it is missing.
func TestHeapInUse(t *testing.T) {
	page := "# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.\n" +
		"# TYPE go_memstats_heap_inuse_bytes gauge\n" +
		"go_memstats_heap_inuse_bytes 1.1534336e+08\n" +
		"go_memstats_heap_inuse_bytes_total 7\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, page)
	}))
	defer srv.Close()
	got, err := heapInUse(&server{admin: srv.URL})
	if err != nil || got != 115_343_360 {
		t.Fatalf("heapInUse = %d, %v; want 115343360", got, err)
	}
	page = "go_memstats_heap_alloc_bytes 5\n"
	if got, err := heapInUse(&server{admin: srv.URL}); err == nil {
		t.Errorf("heapInUse of a page without the gauge = %d, want an error", got)
	}
}
