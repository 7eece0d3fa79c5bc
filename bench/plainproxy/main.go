// Command plainproxy is httputil.ReverseProxy and nothing else: no cache,
// no middleware. The benchmarks use it to show what a Go reverse proxy
// costs by itself, so that cacheproxy's overhead can be told apart from the
// overhead of proxying at all.
//
// Usage:
//
//	plainproxy -listen 127.0.0.1:8081 -origin http://127.0.0.1:9000
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "listen address")
	originFlag := flag.String("origin", "", "origin base URL (required)")
	flag.Parse()
	origin, err := url.Parse(*originFlag)
	if err != nil || origin.Host == "" {
		log.Fatalf("-origin: want a URL such as http://127.0.0.1:9000, got %q", *originFlag)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The default of 2 idle connections per host would make a proxy under
	// hundreds of client connections open and close origin connections
	// on almost every request, which measures the kernel, not the proxy.
	tr.MaxIdleConns = 4096
	tr.MaxIdleConnsPerHost = 4096
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(origin)
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
