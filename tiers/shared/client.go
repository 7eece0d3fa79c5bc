package shared

// Deployments: the client the tier builds from a URL, for a standalone
// server, a master watched by Sentinel, or a Cluster.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is how Redis is deployed, and so which client the tier builds.
type Mode string

const (
	// ModeAuto reads the mode from the URL: ?master_name= is Sentinel,
	// addr= (more than one address) without it a Cluster, one address a
	// standalone server.
	ModeAuto Mode = "auto"
	// ModeStandalone is one server (or a proxy in front of several).
	ModeStandalone Mode = "standalone"
	// ModeSentinel is a master found, and followed across failovers,
	// through Sentinel: the URL's addresses are the sentinels'.
	ModeSentinel Mode = "sentinel"
	// ModeCluster is a Redis Cluster: the URL's addresses are seed nodes.
	// A single seed needs ModeCluster, since it looks like a standalone
	// server.
	ModeCluster Mode = "cluster"
)

// ParseMode returns the Mode named s ("" is ModeAuto).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeStandalone, ModeSentinel, ModeCluster:
		return m, nil
	}
	return "", errors.New("want auto, standalone, sentinel or cluster")
}

// Deployment is what a Redis URL says, once parsed for its mode.
type Deployment struct {
	// Mode is the mode resolved (never ModeAuto).
	Mode Mode
	// TLS is set when the URL is rediss://.
	TLS bool
	// Addrs are the server's address, the sentinels' or the seed
	// nodes'.
	Addrs []string
	// MasterName is Sentinel's name of the master.
	MasterName string

	simple   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// ParseDeployment parses a Redis URL in go-redis's forms for mode:
// redis.ParseURL for a standalone server, redis.ParseFailoverURL for
// Sentinel (?master_name=NAME; the address and every addr= are
// sentinels, the user and password in the URL the sentinels', password=
// and username= the master's), redis.ParseClusterURL for a Cluster (the
// address and every addr= are seed nodes). Its errors never contain the
// URL, which may hold a password.
func ParseDeployment(rawURL string, mode Mode) (Deployment, error) {
	if mode == "" {
		mode = ModeAuto
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return Deployment{}, errors.New("not a valid URL")
	}
	q := u.Query()
	master, addrs := q.Get("master_name"), q["addr"]
	if mode == ModeAuto {
		switch {
		case q.Has("master_name"):
			mode = ModeSentinel
		case len(addrs) > 0:
			mode = ModeCluster
		default:
			mode = ModeStandalone
		}
	}
	d := Deployment{Mode: mode, TLS: u.Scheme == "rediss"}
	hide := func(err error) error {
		return errors.New(strings.ReplaceAll(hideURL(err).Error(), rawURL, u.Redacted()))
	}
	switch mode {
	case ModeStandalone:
		switch {
		case q.Has("master_name"):
			return d, errors.New("master_name= names a Sentinel master: use -redis-mode sentinel (or auto)")
		case len(addrs) > 0:
			return d, errors.New("addr= gives more addresses, which only a Cluster or Sentinel takes: use -redis-mode cluster (or auto)")
		}
		if d.simple, err = redis.ParseURL(rawURL); err != nil {
			return d, hide(err)
		}
		d.Addrs = []string{d.simple.Addr}
	case ModeSentinel:
		if master == "" {
			return d, errors.New("sentinel mode needs the master's name: ?master_name=NAME")
		}
		if u.Scheme == "unix" {
			return d, errors.New("want a redis:// or rediss:// URL of a sentinel")
		}
		if d.failover, err = redis.ParseFailoverURL(rawURL); err != nil {
			return d, hide(err)
		}
		d.Addrs, d.MasterName = d.failover.SentinelAddrs, master
	case ModeCluster:
		if q.Has("master_name") {
			return d, errors.New("master_name= names a Sentinel master, not a Cluster: use -redis-mode sentinel (or auto)")
		}
		if f := strings.Trim(u.Path, "/"); f != "" && f != "0" {
			return d, fmt.Errorf("a Cluster has only database 0, not %q", f)
		}
		u2 := *u
		u2.Path = ""
		if d.cluster, err = redis.ParseClusterURL(u2.String()); err != nil {
			return d, hide(err)
		}
		d.Addrs = d.cluster.Addrs
	default:
		return d, fmt.Errorf("unknown mode %q", mode)
	}
	return d, nil
}

// String describes the deployment for logs: no password.
func (d Deployment) String() string {
	switch d.Mode {
	case ModeSentinel:
		return fmt.Sprintf("sentinel master %q via %s", d.MasterName, strings.Join(d.Addrs, ","))
	case ModeCluster:
		return "cluster via " + strings.Join(d.Addrs, ",")
	}
	return strings.Join(d.Addrs, ",")
}

// newClient builds the deployment's client. tlsConf, if set, replaces
// the URL's TLS settings (keeping its server name if tlsConf has none),
// and turns TLS on for a redis:// URL too. Every client gets context
// deadlines and waits bounded by timeout (see boundClient).
func (d Deployment) newClient(tlsConf *tls.Config, timeout time.Duration) redis.UniversalClient {
	merge := func(from *tls.Config) *tls.Config {
		if tlsConf == nil {
			return from
		}
		c := tlsConf.Clone()
		if c.ServerName == "" && from != nil {
			c.ServerName = from.ServerName
		}
		if c.MinVersion == 0 {
			c.MinVersion = tls.VersionTLS12
		}
		return c
	}
	switch d.Mode {
	case ModeSentinel:
		o := *d.failover
		o.TLSConfig = merge(o.TLSConfig)
		b := bounds{&o.ContextTimeoutEnabled, &o.DialTimeout, &o.DialerRetries, &o.PoolTimeout, &o.ReadTimeout,
			&o.WriteTimeout, &o.MaxRetries, &o.MinRetryBackoff, &o.MaxRetryBackoff}
		b.apply(timeout)
		return redis.NewFailoverClient(&o)
	case ModeCluster:
		o := *d.cluster
		o.TLSConfig = merge(o.TLSConfig)
		b := bounds{&o.ContextTimeoutEnabled, &o.DialTimeout, &o.DialerRetries, &o.PoolTimeout, &o.ReadTimeout,
			&o.WriteTimeout, &o.MaxRetries, &o.MinRetryBackoff, &o.MaxRetryBackoff}
		b.apply(timeout)
		return redis.NewClusterClient(&o)
	}
	o := *d.simple
	o.TLSConfig = merge(o.TLSConfig)
	boundClient(&o, timeout)
	return redis.NewClient(&o)
}

// bounds points at the fields of any go-redis options that boundClient
// sets.
type bounds struct {
	contextTimeout                   *bool
	dial                             *time.Duration
	dialerRetries                    *int
	pool, read, write                *time.Duration
	maxRetries                       *int
	minRetryBackoff, maxRetryBackoff *time.Duration
}

// apply is boundClient for any options.
func (b bounds) apply(timeout time.Duration) {
	o := redis.Options{DialTimeout: *b.dial, DialerRetries: *b.dialerRetries, PoolTimeout: *b.pool,
		ReadTimeout: *b.read, WriteTimeout: *b.write, MaxRetries: *b.maxRetries,
		MinRetryBackoff: *b.minRetryBackoff, MaxRetryBackoff: *b.maxRetryBackoff}
	boundClient(&o, timeout)
	*b.contextTimeout = o.ContextTimeoutEnabled
	*b.dial, *b.dialerRetries, *b.pool, *b.read, *b.write = o.DialTimeout, o.DialerRetries, o.PoolTimeout, o.ReadTimeout, o.WriteTimeout
	*b.maxRetries, *b.minRetryBackoff, *b.maxRetryBackoff = o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff
}
