// Package origintest is the fake origin the tests put behind a proxy: a
// real HTTP server on a loopback port (httptest) that answers every
// request with a body built from a version the test changes and the
// request, counts its requests by path, and can hold a path's requests
// until the test releases them.
package origintest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Options configure an Origin; the zero value is an origin answering
// "v<version> <path>" cacheable for five minutes, at once.
type Options struct {
	// CacheControl is the Cache-Control of every response (Body may
	// change it). If empty, "max-age=300".
	CacheControl string
	// Delay is how long each request waits, after the version is read,
	// before it is answered.
	Delay time.Duration
	// Body writes the response to r, given the version read when r
	// arrived; it may set headers first. If nil, Versioned.
	Body func(w http.ResponseWriter, r *http.Request, version int64)
}

// Origin is a fake origin server. Its methods are safe for concurrent use.
type Origin struct {
	*httptest.Server
	// Version is the version the next request reads; it starts at 1.
	Version atomic.Int64

	opts    Options
	total   atomic.Int64
	mu      sync.Mutex
	count   map[string]int
	holds   map[string]chan struct{}
	arrived chan string
}

// New starts an Origin, closed at the end of the test.
func New(t testing.TB, opts Options) *Origin {
	t.Helper()
	if opts.CacheControl == "" {
		opts.CacheControl = "max-age=300"
	}
	if opts.Body == nil {
		opts.Body = Versioned
	}
	o := &Origin{opts: opts, count: map[string]int{}, holds: map[string]chan struct{}{}, arrived: make(chan string, 16)}
	o.Version.Store(1)
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	return o
}

func (o *Origin) serve(w http.ResponseWriter, r *http.Request) {
	o.total.Add(1)
	o.mu.Lock()
	o.count[r.URL.Path]++
	hold := o.holds[r.URL.Path]
	o.mu.Unlock()
	v := o.Version.Load()
	if hold != nil {
		o.arrived <- r.URL.Path
		<-hold
	}
	time.Sleep(o.opts.Delay)
	w.Header().Set("Cache-Control", o.opts.CacheControl)
	o.opts.Body(w, r, v)
}

// Requests returns how many requests for path the origin has received.
func (o *Origin) Requests(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count[path]
}

// Total returns how many requests the origin has received.
func (o *Origin) Total() int64 { return o.total.Load() }

// Hold makes the requests for path that arrive from now on wait, once
// they have read the version and been announced on Arrived, until the
// returned channel is closed.
func (o *Origin) Hold(path string) chan struct{} {
	ch := make(chan struct{})
	o.mu.Lock()
	o.holds[path] = ch
	o.mu.Unlock()
	return ch
}

// Unhold makes the requests for path that arrive from now on answer at
// once; those already held still wait for their channel.
func (o *Origin) Unhold(path string) {
	o.mu.Lock()
	delete(o.holds, path)
	o.mu.Unlock()
}

// Arrived receives the path of each held request as it arrives (up to 16
// unread).
func (o *Origin) Arrived() <-chan string { return o.arrived }

// Versioned is the default Body: "v<version> <path>".
func Versioned(w http.ResponseWriter, r *http.Request, version int64) {
	fmt.Fprintf(w, "v%d %s", version, r.URL.Path)
}

// Content is a Body that ignores the version: "content of <path>".
func Content(w http.ResponseWriter, r *http.Request, _ int64) {
	io.WriteString(w, "content of "+r.URL.Path)
}

// WriteRequest writes what r was received as: its method, raw request
// target and Host on the first two lines, then every header, one a line,
// sorted by name, values joined by ", ".
func WriteRequest(w io.Writer, r *http.Request) {
	fmt.Fprintf(w, "%s %s\nHost: %s\n", r.Method, r.RequestURI, r.Host)
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "%s: %s\n", k, strings.Join(r.Header[k], ", "))
	}
}
