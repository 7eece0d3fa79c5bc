package origintest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string, hdr ...string) (http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Header, string(b)
}

func TestOrigin(t *testing.T) {
	o := New(t, Options{})
	if h, body := get(t, o.URL+"/a"); body != "v1 /a" || h.Get("Cache-Control") != "max-age=300" {
		t.Errorf("GET /a = %q %q", body, h.Get("Cache-Control"))
	}
	o.Version.Store(2)
	get(t, o.URL+"/b")
	if _, body := get(t, o.URL+"/a"); body != "v2 /a" {
		t.Errorf("GET /a after the version changed = %q", body)
	}
	if o.Requests("/a") != 2 || o.Requests("/b") != 1 || o.Total() != 3 {
		t.Errorf("counted /a %d, /b %d, total %d; want 2, 1, 3", o.Requests("/a"), o.Requests("/b"), o.Total())
	}

	// A held request has read the version when it is announced.
	release := o.Hold("/held")
	done := make(chan string)
	go func() { _, body := get(t, o.URL+"/held"); done <- body }()
	if p := <-o.Arrived(); p != "/held" {
		t.Errorf("arrived %q", p)
	}
	o.Version.Store(3)
	o.Unhold("/held")
	if _, body := get(t, o.URL+"/held"); body != "v3 /held" {
		t.Errorf("GET /held after Unhold = %q", body)
	}
	close(release)
	if body := <-done; body != "v2 /held" {
		t.Errorf("held GET = %q, want the version read on arrival", body)
	}
}

func TestBodies(t *testing.T) {
	o := New(t, Options{CacheControl: "max-age=60", Body: Content})
	if h, body := get(t, o.URL+"/x"); body != "content of /x" || h.Get("Cache-Control") != "max-age=60" {
		t.Errorf("Content: %q %q", body, h.Get("Cache-Control"))
	}
	e := New(t, Options{Body: func(w http.ResponseWriter, r *http.Request, _ int64) { WriteRequest(w, r) }})
	_, body := get(t, e.URL+"/p?q=%41", "X-B", "2", "X-A", "1")
	lines := strings.Split(body, "\n")
	if lines[0] != "GET /p?q=%41" || !strings.HasPrefix(lines[1], "Host: 127.0.0.1:") {
		t.Errorf("WriteRequest: %q", body)
	}
	if !strings.Contains(body, "X-A: 1\nX-B: 2\n") {
		t.Errorf("WriteRequest: headers not sorted one a line: %q", body)
	}
}
