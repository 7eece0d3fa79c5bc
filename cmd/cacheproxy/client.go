package main

// The client side of the admin API: cacheproxy purge, inspect and stats
// call a running instance's admin listener (DELETE /cache, GET /cache,
// GET /stats) and print its answer as text, or as JSON with -json.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/cacheproxy/cacheproxy/proxy"
)

// defaultAdmin is the admin API called when neither -admin nor
// CACHEPROXY_ADMIN is set: the server's default -admin-listen.
const defaultAdmin = "http://127.0.0.1:9090"

// maxAnswerBytes bounds how much of an admin answer the client reads.
const maxAnswerBytes = 16 << 20

// requestKinds returns the X-Cache results in the order stats prints them
// (the outcome table's); any other kind the server reports follows, sorted.
func requestKinds() []string {
	var out []string
	for _, o := range proxy.Outcomes() {
		out = append(out, o.Label)
	}
	return out
}

const purgeSynopsis = `Usage:
  cacheproxy purge -url /path?query | -prefix /path/ | -tag name | -all [flags]

Purges cached entries through the admin API (DELETE /cache): on every live
instance of the fleet, or on the instance alone when it runs without Redis.
-url purges every Vary variant of one URL. With -soft, what is named is
marked stale instead of removed: clients get the stale copy while one
refresh per key runs for the whole fleet.

Exit status: 0 when every live instance confirmed the purge, 1 when some
did not within the server's -purge-wait or on error, 2 for a bad command
line.

Flags:
`

const inspectSynopsis = `Usage:
  cacheproxy inspect [flags] /path?query
  cacheproxy inspect -url /path?query [flags]

Shows what the cache holds for one URL (GET /cache): tiers, status, age,
remaining freshness, size, tags, Vary and the stored headers. When the
response varies, -H selects the variant: only the headers given with -H are
sent.

Exit status: 0 when the URL is cached, 1 when it is not or on error, 2 for
a bad command line.

Flags:
`

const statsSynopsis = `Usage:
  cacheproxy stats [flags]

Shows an instance's counters (GET /stats) and the members of its fleet.
With -watch, refreshes them every -interval, with the rates over the last
interval, until Ctrl-C.

Exit status: 0 on success, 1 on error, 2 for a bad command line.

Flags:
`

// clientCmd is what purge, inspect and stats share: the common flags, the
// admin API they designate, and where to write.
type clientCmd struct {
	name     string // "purge", "inspect" or "stats"
	synopsis string
	fs       *flag.FlagSet
	stdout   io.Writer
	stderr   io.Writer

	admin   string // -admin as given
	token   string
	json    bool
	timeout time.Duration
	base    *url.URL // the parsed -admin, set by parse
}

// newClientCmd returns the command name with the common flags defined;
// the caller adds its own before calling parse.
func newClientCmd(name, synopsis string, getenv func(string) string, stdout, stderr io.Writer) *clientCmd {
	c := &clientCmd{name: name, synopsis: synopsis, stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet("cacheproxy "+name, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard) // parse prints errors and usage itself
	admin := getenv(envPrefix + "ADMIN")
	if admin == "" {
		admin = defaultAdmin
	}
	c.fs.StringVar(&c.admin, "admin", admin, "admin API base URL, or host:port (env "+envPrefix+"ADMIN)")
	// The token is not the flag's default: usage must not print it.
	c.token = getenv(envPrefix + "ADMIN_TOKEN")
	c.fs.Func("token", "bearer `token` of the admin API (default: env "+envPrefix+"ADMIN_TOKEN, the server's -admin-token)",
		func(v string) error { c.token = v; return nil })
	c.fs.BoolVar(&c.json, "json", false, "print the server's JSON answer, indented, instead of text")
	c.fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	return c
}

// parse parses args, allowing flags after positional arguments, and
// returns the positional ones. When ok is false the command must exit with
// code: 0 after -help, 2 after a bad command line.
func (c *clientCmd) parse(args []string) (pos []string, code int, ok bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.usage(c.stdout)
				return nil, 0, false
			}
			return nil, c.usageError("%v", err), false
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if c.timeout <= 0 {
		return nil, c.usageError("-timeout must be greater than 0"), false
	}
	c.token = strings.TrimSpace(c.token)
	for _, r := range c.token {
		if r <= ' ' || r == 0x7f {
			return nil, c.usageError("the admin token must not contain spaces or control characters"), false
		}
	}
	base, err := parseAdminURL(c.admin)
	if err != nil {
		return nil, c.usageError("invalid -admin %q: %v", c.admin, err), false
	}
	c.base = base
	return pos, 0, true
}

// parseAdminURL parses the admin API's base URL; a bare host:port means
// http://host:port.
func parseAdminURL(v string) (*url.URL, error) {
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("want http://host:port, https://host:port or host:port")
	}
	if u.Host == "" {
		return nil, errors.New("missing host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	return u, nil
}

// usage writes the command's usage to w.
func (c *clientCmd) usage(w io.Writer) {
	fmt.Fprint(w, c.synopsis)
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
}

// usageError reports a bad command line and returns exit status 2.
func (c *clientCmd) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "cacheproxy %s: %s\n\n", c.name, fmt.Sprintf(format, a...))
	c.usage(c.stderr)
	return 2
}

// fail reports a failure and returns exit status 1.
func (c *clientCmd) fail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "cacheproxy %s: %s\n", c.name, fmt.Sprintf(format, a...))
	return 1
}

// call sends one request to the admin API and returns the answer's status
// and body. hdr, if not nil, is the request's whole header but for
// Authorization: nothing else is added, not even an implicit
// Accept-Encoding or User-Agent, as inspect's headers select a variant.
// With -json, a JSON body is printed on stdout whatever the status.
func (c *clientCmd) call(ctx context.Context, method, path string, query url.Values, hdr http.Header) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return 0, nil, err
	}
	if hdr != nil {
		req.Header = hdr.Clone()
		if _, ok := req.Header["User-Agent"]; !ok {
			req.Header["User-Agent"] = []string{""} // sends none
		}
	} else {
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "cacheproxy-"+c.name)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableCompression = true
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return 0, nil, err
	}
	if c.json && json.Valid(body) {
		var buf bytes.Buffer
		json.Indent(&buf, bytes.TrimSpace(body), "", "  ") // cannot fail: body is valid
		buf.WriteByte('\n')
		c.stdout.Write(buf.Bytes())
	}
	return resp.StatusCode, body, nil
}

// unreachable reports a request that got no answer and returns 1.
func (c *clientCmd) unreachable(err error) int {
	addr := c.base.Redacted()
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err // without the request's URL
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return c.fail("cannot reach the admin API at %s: connection refused (is cacheproxy running with -admin-listen there? set -admin or %sADMIN)",
			addr, envPrefix)
	case errors.Is(err, context.DeadlineExceeded):
		return c.fail("no answer from the admin API at %s within %v (-timeout)", addr, c.timeout)
	case errors.Is(err, context.Canceled):
		return c.fail("interrupted while waiting for the admin API at %s", addr)
	}
	return c.fail("cannot reach the admin API at %s: %v", addr, err)
}

// failStatus reports an answer the command does not handle itself and
// returns 1.
func (c *clientCmd) failStatus(code int, body []byte) int {
	msg := serverError(body)
	if msg == "" {
		msg = "(empty body)"
	}
	switch code {
	case http.StatusUnauthorized:
		if c.token == "" {
			return c.fail("unauthorized: set %sADMIN_TOKEN (or -token) to the server's -admin-token", envPrefix)
		}
		return c.fail("unauthorized: the admin API at %s refused the token; set %sADMIN_TOKEN (or -token) to the server's -admin-token",
			c.base.Redacted(), envPrefix)
	case http.StatusServiceUnavailable:
		if json.Valid(body) {
			return c.fail("%s", msg) // the server says what is unavailable
		}
	case http.StatusBadRequest:
		return c.fail("refused by the admin API: %s", msg)
	}
	return c.fail("unexpected answer from the admin API at %s: %d %s: %s", c.base.Redacted(), code, http.StatusText(code), msg)
}

// serverError returns the "error" of a JSON error answer, or else the
// start of the body.
func serverError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	return s
}
