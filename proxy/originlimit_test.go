package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cacheproxy/cacheproxy/internal/await"
)

// TestMaxOriginConns: with every origin request slot held by requests
// the origin has not answered, a fill and a pass-through each wait
// OriginQueueWait, then get 503 with Retry-After, counted; once the
// origin answers, the slots are given back, whether the response was
// stored, streamed or passed through.
func TestMaxOriginConns(t *testing.T) {
	release := make(chan struct{})
	var inside atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hang" {
			inside.Add(1)
			<-release
		}
		switch r.URL.Query().Get("cc") {
		case "":
			w.Header().Set("Cache-Control", "max-age=60")
		default:
			w.Header().Set("Cache-Control", r.URL.Query().Get("cc"))
		}
		io.WriteString(w, "ok "+r.URL.String())
	})
	s := newStack(t, o, func(o *Options) {
		o.MaxOriginConns = 2
		o.OriginQueueWait = 2 * time.Second
	})
	// The slots are given back: more requests one after the other than
	// there are slots, of every kind.
	for i := range 3 {
		for _, c := range []struct{ method, path string }{
			{"GET", "/stored?i=" + string(rune('a'+i))},
			{"GET", "/streamed?cc=no-store"},
			{"HEAD", "/head?i=" + string(rune('a'+i))},
			{"POST", "/posted"},
		} {
			if r := s.do(t, c.method, c.path); r.status != 200 {
				t.Fatalf("%s %s: %d %q", c.method, c.path, r.status, r.body)
			}
		}
	}

	var wg sync.WaitGroup
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer func() {
		open()
		wg.Wait()
	}()
	for _, m := range []string{"GET", "POST"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(m, s.srv.URL+"/hang?cc=no-store", strings.NewReader("x"))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	await.Until(t, 10*time.Second, "two requests at the origin", func() bool { return inside.Load() == 2 })
	for _, c := range []struct{ method, path string }{{"GET", "/miss"}, {"POST", "/posted"}} {
		start := time.Now()
		r := s.do(t, c.method, c.path)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s with no slot free: %d (Retry-After %q) %q", c.method, c.path, r.status, r.header.Get("Retry-After"), r.body)
		}
		if !strings.Contains(r.header.Get("Cache-Status"), "detail=origin-busy") || r.header.Get("X-Cache") != "ERROR" {
			t.Errorf("%s %s: X-Cache %q, Cache-Status %q", c.method, c.path, r.header.Get("X-Cache"), r.header.Get("Cache-Status"))
		}
		if took := time.Since(start); took < 1800*time.Millisecond {
			t.Errorf("%s %s answered after %v, before the queue wait", c.method, c.path, took)
		}
	}
	if got := s.h.Stats().OriginBusy; got != 2 {
		t.Errorf("OriginBusy = %d, want 2", got)
	}
	if !s.h.Stats().OriginUp {
		t.Error("a busy origin was reported down")
	}
	// A request that waits gets the first slot given back.
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.srv.URL+"/queued", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	await.Until(t, 10*time.Second, "a request waiting for a slot", func() bool { return s.h.Stats().OriginWaiting == 1 })
	open()
	wg.Wait()
	if r := <-done; r.status != 200 {
		t.Errorf("queued request: %d %q", r.status, r.body)
	}
}

// TestRequestBuffering: a request body of at most RequestBuffering bytes
// is read whole before the origin is asked, so that a client sending it
// slowly holds no origin request slot meanwhile; a longer one streams,
// and reaches the origin whole.
func TestRequestBuffering(t *testing.T) {
	type got struct {
		path, body string
		length     int64
	}
	bodies := make(chan got, 10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("origin reading %s: %v", r.URL.Path, err)
		}
		bodies <- got{r.URL.Path, string(b), r.ContentLength}
		io.WriteString(w, "ok")
	})
	s := newStack(t, o, func(o *Options) {
		o.RequestBuffering = 1 << 10
		o.MaxOriginConns = 1
		o.OriginQueueWait = 2 * time.Second
	})
	// A client that sends half its body and waits.
	c, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
	// Meanwhile the one origin slot is free for others.
	for range 3 {
		r := s.do(t, "POST", "/fast")
		if r.status != 200 {
			t.Fatalf("a POST beside a slow body: %d %q", r.status, r.body)
		}
		if g := <-bodies; g.path != "/fast" {
			t.Fatalf("the origin got %s before the slow body ended", g.path)
		}
	}
	io.WriteString(c, "56789")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := <-bodies; resp.StatusCode != 200 || g.body != "0123456789" || g.length != 10 {
		t.Errorf("slow body: %d, origin got %+v", resp.StatusCode, g)
	}

	// Longer than the bound, or chunked: streamed, whole at the origin.
	long := strings.Repeat("abcdefgh", 512) // 4 KiB
	for _, body := range []io.Reader{strings.NewReader(long), io.MultiReader(strings.NewReader(long))} {
		req, _ := http.NewRequest("PUT", s.srv.URL+"/long", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if g := <-bodies; resp.StatusCode != 200 || g.body != long {
			t.Errorf("long body: %d, origin got %d bytes", resp.StatusCode, len(g.body))
		}
	}
	// A short chunked body reaches the origin with its length.
	req, _ := http.NewRequest("POST", s.srv.URL+"/chunked", io.MultiReader(strings.NewReader("short")))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := <-bodies; g.body != "short" || g.length != 5 {
		t.Errorf("chunked body: origin got %+v", g)
	}
}

// TestRequestBufferingTimeout: a body buffered but never finished gets
// 408 after the body timeout, and never reaches the origin.
func TestRequestBufferingTimeout(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	})
	s := newStack(t, o, func(o *Options) {
		o.RequestBuffering = 1 << 10
		o.BodyTimeout = 300 * time.Millisecond
	})
	c, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("the origin got %d requests", n)
	}
}
