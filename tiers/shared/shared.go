// Package shared is the Redis cache tier (L2), shared by every proxy
// instance. Entries are stored with tiers.Encode under the keys the proxy
// gives, with a Redis TTL.
//
// The tier fails open: when Redis cannot be reached it says so once in the
// log, answers every call with ErrUnavailable without touching the network,
// and probes Redis in the background until it answers again. The proxy
// treats those errors as misses and carries on with L1 and the origin.
package shared

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/tiers"
)

const (
	defaultPrefix        = "cacheproxy"
	defaultTimeout       = 100 * time.Millisecond
	defaultRetryInterval = time.Second
)

// ErrUnavailable is returned, without any network call, while the tier
// considers Redis unreachable. Callers treat it as a miss.
var ErrUnavailable = errors.New("shared: redis unavailable")

// rediser lists the Redis commands the tier calls, so that a Client, a
// Ring or a ClusterClient all fit.
type rediser interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	MGet(ctx context.Context, keys ...string) *redis.SliceCmd
	ZRangeByScore(ctx context.Context, key string, opt *redis.ZRangeBy) *redis.StringSliceCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	Ping(ctx context.Context) *redis.StatusCmd
}

// Options configures a Tier. Exactly one of URL and Client must be set.
type Options struct {
	// URL locates Redis, in go-redis's URL forms for Mode (see
	// ParseDeployment): redis://[user:password@]host:port[/db] or
	// rediss:// for TLS, with optional query parameters such as
	// dial_timeout; ?master_name=NAME for Sentinel; addr= for more
	// addresses. The Tier creates the client and closes it on Close.
	// Context deadlines are enabled on it, and the client's own waits
	// are bounded by Timeout too (see boundClient), so Timeout bounds
	// every call, retries included.
	URL string

	// Mode is how the Redis of URL is deployed. If empty, ModeAuto.
	Mode Mode

	// TLSConfig, if set, is the TLS configuration of the connections to
	// URL's servers (a CA, a client certificate), and turns TLS on for a
	// redis:// URL too. If nil, rediss:// uses the system's roots.
	TLSConfig *tls.Config

	// Client is an existing client to use instead of URL, for tests or
	// when embedding: a *redis.Client (standalone or from
	// redis.NewFailoverClient) or a *redis.ClusterClient. The Tier does
	// not close it. It should have ContextTimeoutEnabled set; otherwise
	// its read and write timeouts, not Timeout, bound a call to a hung
	// server.
	Client redis.UniversalClient

	// Prefix namespaces the tier's keys and channels; it may not hold
	// '{' or '}' (see keys.go). If empty, "cacheproxy". Entry keys are
	// given by the caller, prefix included; the tier maps them to Redis
	// keys that keep each entry, its variants and its leases in one
	// Cluster slot, and the fleet's metadata in another.
	Prefix string

	// Timeout bounds each call to Redis on a request's path (Get, Set,
	// Lease, LeaseHeld, Delete): the whole call, waiting for a pipeline,
	// dialling, retrying and catching up with purges included. If zero,
	// 100ms.
	Timeout time.Duration

	// RetryInterval is how often an unreachable Redis is probed with
	// PING. If zero, 1s.
	RetryInterval time.Duration

	// Logger receives the tier's logs. If nil, slog.Default().
	Logger *slog.Logger

	// Bans, if set, is kept complete with the purges recorded in Redis
	// before any entry is returned: each Get reads the fleet's purge
	// sequence number with the entry (one round trip) and, if it is
	// ahead of Bans.Applied, loads the missing bans first, waiting at
	// most Timeout (a miss meanwhile; see catchUp). The caller checks
	// entries against Bans. Its bounds (Bans.Limits) are the bounds of
	// the ban log in Redis too. See Fleet.
	Bans *tiers.Bans

	// BanKeep is how long bans are remembered (see tiers.Bans.Apply):
	// tiers.BanRetention of the proxy's MaxTTL and FillTimeout. If zero,
	// that of their defaults.
	BanKeep time.Duration
}

// Tier is the Redis tier. It implements the proxy's Tier interface. All
// methods are safe for concurrent use.
type Tier struct {
	rdb    rediser
	client redis.UniversalClient
	owned  bool   // client was created by New and is closed by Close
	addr   string // the deployment, for logs
	// oneNode is set when every key lives on one server (not a
	// Cluster): a read may then take the entry and the fleet's
	// metadata in one MGET.
	oneNode bool
	health  *health
	nodes   nodes // a Cluster's masters found unreachable (nodes.go)
	prefix  string
	timeout time.Duration
	retry   time.Duration
	log     *slog.Logger

	down atomic.Bool
	// slow is set when a call timed out and cleared by the next call
	// Redis answers: meanwhile writes and leases are refused at once, so
	// that a request pays one timeout, not one per call.
	slow   atomic.Bool
	lastOK atomic.Int64 // unix nanos of the last call Redis answered, coarse
	// peers is the number of live instances of the fleet, this one
	// included, as of the last heartbeat; 0 if unknown (no Fleet).
	peers       atomic.Int64
	errs        atomic.Int64
	undecodable atomic.Int64

	// The purge log (purgelog.go): the ban table, its epoch, and whether
	// the table is complete enough to use L1. Every Get and Lease catch
	// up with it; a Fleet drives it.
	*purgeLog

	reads chan *read     // Gets waiting for a pipeline (batch.go)
	pipes sync.WaitGroup // the pipeline goroutines

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New returns a Tier configured by opts, or an error if opts is invalid.
// It does not fail when Redis is unreachable: it pings Redis once, logs
// the outcome, and if Redis did not answer starts in the unavailable
// state. The Tier owns a goroutine; call Close when done with it.
func New(opts Options) (*Tier, error) {
	t := &Tier{
		prefix:  opts.Prefix,
		timeout: opts.Timeout,
		retry:   opts.RetryInterval,
		log:     opts.Logger,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		reads:   make(chan *read),
		health:  newHealth(),
		oneNode: true,
	}
	switch {
	case t.timeout < 0:
		return nil, fmt.Errorf("shared: Options.Timeout must be >= 0, got %v", t.timeout)
	case t.timeout == 0:
		t.timeout = defaultTimeout
	}
	switch {
	case t.retry < 0:
		return nil, fmt.Errorf("shared: Options.RetryInterval must be >= 0, got %v", t.retry)
	case t.retry == 0:
		t.retry = defaultRetryInterval
	}
	if t.prefix == "" {
		t.prefix = defaultPrefix
	}
	if strings.ContainsAny(t.prefix, "{}") {
		return nil, fmt.Errorf("shared: Options.Prefix %q must not contain '{' or '}' (Redis Cluster hash tags)", t.prefix)
	}
	if t.log == nil {
		t.log = slog.Default()
	}

	switch {
	case opts.URL != "" && opts.Client != nil:
		return nil, errors.New("shared: set Options.URL or Options.Client, not both")
	case opts.Client != nil:
		t.client = opts.Client
		switch c := opts.Client.(type) {
		case *redis.Client:
			t.addr = c.Options().Addr
		case *redis.ClusterClient:
			t.addr = "cluster via " + strings.Join(c.Options().Addrs, ",")
			t.oneNode = false
		}
	case opts.URL != "":
		d, err := ParseDeployment(opts.URL, opts.Mode)
		if err != nil {
			return nil, fmt.Errorf("shared: invalid Options.URL: %w", err)
		}
		t.client = d.newClient(opts.TLSConfig, t.timeout)
		t.owned = true
		t.addr = d.String()
		t.oneNode = d.Mode != ModeCluster
	default:
		return nil, errors.New("shared: Options.URL or Options.Client is required")
	}
	t.rdb = t.client
	keep := opts.BanKeep
	if keep <= 0 {
		keep = tiers.BanRetention(tiers.DefaultMaxTTL, tiers.DefaultFillTimeout)
	}
	t.purgeLog = newPurgeLog(t.client, t.prefix, t.timeout, t.log, t.stop, opts.Bans, keep, t.fail)
	if c, ok := t.client.(*redis.ClusterClient); ok {
		t.nodes.cluster = c
	}

	// A slow first answer is not an unreachable Redis: as for calls
	// (see fail), only tripAfter without one is.
	if err := t.ping(context.Background(), max(t.timeout, tripAfter)); err != nil {
		if kind := replyKind(err); kind != "" {
			// Reachable, but refusing (WRONGPASS, NOAUTH, LOADING...):
			// reads fail, and say why.
			t.replyErrorAfter(purposeRead, kind, err, 1)
		} else {
			t.markDown(err)
		}
	} else {
		t.lastOK.Store(time.Now().UnixNano())
		t.log.Info("redis reachable", "addr", t.addr)
	}
	if _, ok := t.client.(*redis.ClusterClient); ok {
		t.oneNode = false
	}
	go t.watch()
	for range pipelines {
		t.pipes.Add(1)
		go t.pipeline()
	}
	return t, nil
}

// boundClient makes go-redis's own waits fit in the tier's per-call
// timeout, leaving those the URL set: left to its defaults, a call to a
// dead Redis dialled five times 100ms apart (the caller waiting for the
// last) and a call to a hung one could wait 5s for a pooled connection.
// Every call the tier makes has a context deadline, which go-redis obeys
// (ContextTimeoutEnabled); the read and write timeouts are only a
// backstop, at a second or more, since the fleet's own calls and the
// loading of purges take up to that.
func boundClient(o *redis.Options, timeout time.Duration) {
	o.ContextTimeoutEnabled = true
	if o.DialTimeout == 0 {
		o.DialTimeout = timeout
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1 // one attempt: the tier's circuit does the retrying
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = timeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = max(timeout, time.Second)
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = o.ReadTimeout
	}
	if o.MaxRetries == 0 {
		// One retry, at once: a pooled connection Redis closed (it
		// restarted) fails on its first use, and a fresh one answers.
		// A timeout is never retried (go-redis does not retry a
		// deadline), so a hung Redis costs one timeout.
		o.MaxRetries = 1
		o.MinRetryBackoff, o.MaxRetryBackoff = -1, -1
	}
}

// hideURL strips the URL, which may hold a password, from a url.Parse
// error.
func hideURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// Get returns the entry stored under key. A missing key, and a value that
// does not decode (written by another encoding version, or corrupt), are
// misses; the latter are counted by Undecodable. While Redis is
// unavailable Get returns ErrUnavailable at once.
//
// Concurrent Gets share pipelines (see batch.go). A Get waits for its
// pipeline's turn, then for its answer, then for any purges it must load
// first, all within one Timeout.
func (t *Tier) Get(ctx context.Context, key string) (*tiers.Entry, bool, error) {
	rk := t.redisKey(key)
	if t.down.Load() || t.blocked(purposeRead) || t.keyDown(ctx, rk) {
		t.errs.Add(1)
		return nil, false, ErrUnavailable
	}
	// One Timeout bounds the whole call. It is kept as a deadline, not
	// as a context derived from ctx: context.WithTimeout (a timer, and
	// the registration with the request's context and its removal) cost
	// about 7% of the proxy's CPU on an L2 hit. batchGet waits on a
	// reused timer; a context is made only if bans must be loaded.
	deadline := time.Now().Add(t.timeout)
	var have uint64
	if t.bans != nil {
		have = t.bans.Applied() // before the sequence is read
	}
	// The entry and the fleet's purge sequence and epoch in one round
	// trip.
	rd, err := t.batchGet(ctx, rk, deadline)
	if err != nil {
		return nil, false, t.fail(ctx, purposeRead, "get", err)
	}
	t.ok(purposeRead)
	if t.bans != nil {
		// Bans that cannot be loaded in time make a miss, never an
		// unreachable Redis: Redis did answer.
		if err := t.purgeLog.catchUp(ctx, deadline, have, rd.seq, rd.epoch); err != nil {
			t.errs.Add(1)
			return nil, false, fmt.Errorf("shared: get bans: %w", err)
		}
	}
	data, ok := rd.entry, rd.found
	if !ok {
		return nil, false, nil
	}
	// The entry's strings and body point into data: no copy.
	e, err := tiers.DecodeString(data)
	if err != nil {
		t.undecodable.Add(1)
		t.log.Debug("undecodable entry in redis, treated as a miss", "key", key, "err", err)
		return nil, false, nil
	}
	return e, true, nil
}

// Set stores e under key with a Redis TTL of ttl (millisecond precision).
// If ttl <= 0 nothing is stored. While Redis is unavailable Set returns
// ErrUnavailable at once.
func (t *Tier) Set(ctx context.Context, key string, e *tiers.Entry, ttl time.Duration) error {
	if e == nil {
		return errors.New("shared: Set of a nil entry")
	}
	if ttl <= 0 {
		return nil
	}
	rk := t.redisKey(key)
	if t.refuseKey(ctx, purposeWrite, rk) {
		return ErrUnavailable
	}
	// go-redis rounds a sub-millisecond TTL up to 1ms, with a log line;
	// do it quietly.
	ttl = max(ttl, time.Millisecond)
	// A lost write costs another origin fetch; a slow one would cost
	// the request that makes it (its client waits for the store).
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	err := t.rdb.Set(cctx, rk, tiers.Encode(e), ttl).Err()
	cancel()
	if err != nil {
		return t.fail(ctx, purposeWrite, "set", err)
	}
	t.ok(purposeWrite)
	return nil
}

// Delete removes the given keys. While Redis is unavailable it returns
// ErrUnavailable at once. Keys of different entries may live on
// different nodes of a Cluster: each is deleted on its own, in one
// pipeline.
func (t *Tier) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if t.refuse(purposeWrite) {
		return ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	var err error
	if len(keys) == 1 {
		err = t.rdb.Del(cctx, t.redisKey(keys[0])).Err()
	} else {
		_, err = t.client.Pipelined(cctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(cctx, t.redisKey(k))
			}
			return nil
		})
	}
	if err != nil {
		return t.fail(ctx, purposeWrite, "delete", err)
	}
	t.ok(purposeWrite)
	return nil
}

// Healthy reports whether Redis is considered reachable and answers every
// kind of call (see Problems).
func (t *Tier) Healthy() bool {
	return !t.down.Load() && !t.failing()
}

// Reachable reports whether Redis is considered reachable, whatever it
// answers.
func (t *Tier) Reachable() bool {
	return !t.down.Load()
}

// Errors returns the number of calls that returned an error, including
// those refused with ErrUnavailable.
func (t *Tier) Errors() int64 {
	return t.errs.Load()
}

// Undecodable returns the number of values Get found but could not
// decode, and so reported as misses.
func (t *Tier) Undecodable() int64 {
	return t.undecodable.Load()
}

// BanFloors returns how many times this instance found the purge log
// trimmed past the bans it had applied, and so treated every older entry
// as purged.
func (t *Tier) BanFloors() int64 {
	return t.floors.Load()
}

// Prefix returns the namespace for the tier's channels and metadata keys.
func (t *Tier) Prefix() string {
	return t.prefix
}

// Client returns the Redis client, so that other code (publish/subscribe,
// metadata) can share its connections. It is closed by Close if New
// created it.
func (t *Tier) Client() redis.UniversalClient {
	return t.client
}

// Close stops the background prober and, if New created the client,
// closes it. Calls after Close fail. Close may be called more than once.
func (t *Tier) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
		t.pipes.Wait()
		if t.owned {
			t.closeErr = t.client.Close()
		}
	})
	return t.closeErr
}

// refuse reports, counting it, whether a call other than a Get is to be
// refused at once: Redis is down, or the last call timed out and none has
// been answered since (a Get, which every request makes anyway, finds out
// when Redis answers again), or Redis answers errors to every call for p
// (see health.go).
func (t *Tier) refuse(p purpose) bool {
	if t.down.Load() || t.slow.Load() || t.blocked(p) {
		t.errs.Add(1)
		return true
	}
	return false
}

// fail counts a failed call for p, marks Redis down if the failure says
// it is unreachable, records an error reply (health.go), and returns the
// error to give the caller. ctx is the caller's context, without the
// per-call timeout.
func (t *Tier) fail(ctx context.Context, p purpose, op string, err error) error {
	t.errs.Add(1)
	if kind := replyKind(err); kind != "" {
		t.replyError(p, kind, err)
		return fmt.Errorf("shared: %s: %w", op, err)
	}
	if ctx.Err() == nil && isTimeout(err) {
		t.slow.Store(true)
	}
	if ctx.Err() == nil && unreachable(err) && !t.nodeFailed(ctx, err) {
		// A refused or broken connection trips the circuit at once; a
		// slow answer only when it keeps happening, so that a loaded
		// Redis (or a loaded machine) costs a few misses, not the tier.
		if !isTimeout(err) || time.Since(time.Unix(0, t.lastOK.Load())) > tripAfter {
			t.markDown(err)
		}
	}
	return fmt.Errorf("shared: %s: %w", op, err)
}

// tripAfter is how long calls must have gone unanswered before a timeout
// marks the tier unreachable.
const tripAfter = time.Second

// ok records a call for p that Redis answered. The time is stored at
// most every 50ms, so that concurrent hits do not all write one cache
// line.
func (t *Tier) ok(p purpose) {
	t.okFor(p)
	if t.slow.Load() {
		t.slow.Store(false)
	}
	now := time.Now().UnixNano()
	if now-t.lastOK.Load() > int64(50*time.Millisecond) {
		t.lastOK.Store(now)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// unreachable reports whether err means Redis could not be reached or did
// not answer in time, as opposed to an error reply from a live server or
// a closed client.
func unreachable(err error) bool {
	var rerr redis.Error
	return !errors.As(err, &rerr) && !errors.Is(err, redis.ErrClosed)
}

func (t *Tier) markDown(err error) {
	if t.down.CompareAndSwap(false, true) {
		t.log.Warn("redis unreachable: L2 skipped until it answers again", "addr", t.addr, "err", err)
	}
}

func (t *Tier) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return t.rdb.Ping(ctx).Err()
}

// watch probes Redis every RetryInterval while it is down, until Close.
func (t *Tier) watch() {
	defer close(t.done)
	tick := time.NewTicker(t.retry)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.probeNodes()
		if !t.down.Load() {
			continue
		}
		if err := t.ping(context.Background(), t.timeout); err != nil {
			if kind := replyKind(err); kind != "" {
				// It answers, with an error: reachable, and failing
				// reads say why (see health.go).
				t.replyErrorAfter(purposeRead, kind, err, 1)
				if t.down.CompareAndSwap(true, false) {
					t.log.Info("redis reachable again, but answering errors", "addr", t.addr, "err", err)
				}
				continue
			}
			t.log.Debug("redis still unreachable", "addr", t.addr, "err", err)
			continue
		}
		t.lastOK.Store(time.Now().UnixNano())
		if t.down.CompareAndSwap(true, false) {
			t.log.Info("redis reachable again", "addr", t.addr)
		}
	}
}
