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
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

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
	// URL locates Redis, in the form accepted by redis.ParseURL:
	// redis://[user:password@]host:port[/db] or rediss:// for TLS, with
	// optional query parameters such as dial_timeout. The Tier creates
	// the client and closes it on Close. Context deadlines are enabled
	// on it, so Timeout bounds every call.
	URL string

	// Client is an existing client to use instead of URL, for tests or
	// when embedding. The Tier does not close it. It should have
	// ContextTimeoutEnabled set; otherwise its read and write timeouts,
	// not Timeout, bound a call to a hung server.
	Client redis.UniversalClient

	// Prefix namespaces the tier's own channels and metadata keys. If
	// empty, "cacheproxy". Entry keys are stored exactly as given: the
	// caller includes the prefix.
	Prefix string

	// Timeout bounds each call to Redis. If zero, 100ms.
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

	// BanKeep is how long bans are remembered (see tiers.Bans.Apply).
	// If zero, 25h.
	BanKeep time.Duration
}

// Tier is the Redis tier. It implements the proxy's Tier interface. All
// methods are safe for concurrent use.
type Tier struct {
	rdb     rediser
	client  redis.UniversalClient
	owned   bool // client was created by New and is closed by Close
	addr    string
	prefix  string
	timeout time.Duration
	retry   time.Duration
	log     *slog.Logger

	down   atomic.Bool
	lastOK atomic.Int64 // unix nanos of the last call Redis answered, coarse
	// peers is the number of live instances of the fleet, this one
	// included, as of the last heartbeat; 0 if unknown (no Fleet).
	peers       atomic.Int64
	errs        atomic.Int64
	undecodable atomic.Int64

	bans    *tiers.Bans
	banKeep time.Duration
	syncs   singleflight.Group     // the one loading of bans (loadBans)
	floors  atomic.Int64           // all-bans applied at the log's floor
	onFloor atomic.Pointer[func()] // a Fleet's Flush, called after one
	seq     string                 // seqKey(), built once: every Get reads it

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
		bans:    opts.Bans,
		banKeep: opts.BanKeep,
		reads:   make(chan *read),
	}
	if t.banKeep <= 0 {
		t.banKeep = 25 * time.Hour
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
	t.seq = t.prefix + ":purge:seq"
	if t.log == nil {
		t.log = slog.Default()
	}

	switch {
	case opts.URL != "" && opts.Client != nil:
		return nil, errors.New("shared: set Options.URL or Options.Client, not both")
	case opts.Client != nil:
		t.client = opts.Client
		if c, ok := opts.Client.(*redis.Client); ok {
			t.addr = c.Options().Addr
		}
	case opts.URL != "":
		ropts, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("shared: invalid Options.URL: %w", hideURL(err))
		}
		ropts.ContextTimeoutEnabled = true
		t.client = redis.NewClient(ropts)
		t.owned = true
		t.addr = ropts.Addr
	default:
		return nil, errors.New("shared: Options.URL or Options.Client is required")
	}
	t.rdb = t.client

	// A slow first answer is not an unreachable Redis: as for calls
	// (see fail), only tripAfter without one is.
	if err := t.ping(context.Background(), max(t.timeout, tripAfter)); err != nil {
		t.markDown(err)
	} else {
		t.lastOK.Store(time.Now().UnixNano())
		t.log.Info("redis reachable", "addr", t.addr)
	}
	go t.watch()
	for range pipelines {
		t.pipes.Add(1)
		go t.pipeline()
	}
	return t, nil
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
// pipeline's turn and then for its answer, each bounded by Timeout.
func (t *Tier) Get(ctx context.Context, key string) (*tiers.Entry, bool, error) {
	if t.down.Load() {
		t.errs.Add(1)
		return nil, false, ErrUnavailable
	}
	// The entry and the fleet's purge sequence in one round trip.
	vals, err := t.batchGet(ctx, key)
	if err != nil {
		return nil, false, t.fail(ctx, "get", err)
	}
	t.ok()
	if t.bans != nil {
		// Bans that cannot be loaded in time make a miss, never an
		// unreachable Redis: Redis did answer.
		if err := t.catchUp(ctx, vals[1]); err != nil {
			t.errs.Add(1)
			return nil, false, fmt.Errorf("shared: get bans: %w", err)
		}
	}
	data, ok := vals[0].(string)
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
	if t.down.Load() {
		t.errs.Add(1)
		return ErrUnavailable
	}
	// go-redis rounds a sub-millisecond TTL up to 1ms, with a log line;
	// do it quietly.
	ttl = max(ttl, time.Millisecond)
	// A write gets more time than a read: a lost write means the next
	// request (on any instance) goes to the origin again, while the
	// response it stores is already in hand.
	cctx, cancel := context.WithTimeout(ctx, 5*t.timeout)
	err := t.rdb.Set(cctx, key, tiers.Encode(e), ttl).Err()
	cancel()
	if err != nil {
		return t.fail(ctx, "set", err)
	}
	t.ok()
	return nil
}

// Delete removes the given keys. While Redis is unavailable it returns
// ErrUnavailable at once.
func (t *Tier) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if t.down.Load() {
		t.errs.Add(1)
		return ErrUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	err := t.rdb.Del(cctx, keys...).Err()
	cancel()
	if err != nil {
		return t.fail(ctx, "delete", err)
	}
	return nil
}

// Healthy reports whether Redis is considered reachable.
func (t *Tier) Healthy() bool {
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

// fail counts a failed call, marks Redis down if the failure says it is
// unreachable, and returns the error to give the caller. ctx is the
// caller's context, without the per-call timeout.
func (t *Tier) fail(ctx context.Context, op string, err error) error {
	t.errs.Add(1)
	if ctx.Err() == nil && unreachable(err) {
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

// ok records a call that Redis answered. The time is stored at most every
// 50ms, so that concurrent hits do not all write one cache line.
func (t *Tier) ok() {
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
		t.log.Warn("redis unreachable, serving from L1 and origin", "addr", t.addr, "err", err)
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
		if !t.down.Load() {
			continue
		}
		if err := t.ping(context.Background(), t.timeout); err != nil {
			t.log.Debug("redis still unreachable", "addr", t.addr, "err", err)
			continue
		}
		t.lastOK.Store(time.Now().UnixNano())
		if t.down.CompareAndSwap(true, false) {
			t.log.Info("redis reachable again", "addr", t.addr)
		}
	}
}

// seqKey holds the fleet's purge sequence number: the Seq of the last ban
// recorded.
func (t *Tier) seqKey() string { return t.seq }

// bansKey is a sorted set of the recorded bans (tiers.Ban.String), scored
// by Seq.
func (t *Tier) bansKey() string { return t.prefix + ":purge:bans" }

// floorKey holds the floor of the ban log: the Seq of the newest ban
// trimmed from it to keep it within its bounds (see purgeScript).
func (t *Tier) floorKey() string { return t.prefix + ":purge:floor" }

// bytesKey holds what the bans in the log are counted to cost (see
// purgeScript).
func (t *Tier) bytesKey() string { return t.prefix + ":purge:bytes" }

// Bans are loaded from Redis a page at a time: at most banPage bans and,
// but for the first, banPageBytes bytes of them.
const (
	banPage      = 1000
	banPageBytes = 1 << 20
)

// errBansLoading is the read path's answer while the ban table is too far
// behind the fleet's to use an entry: a miss, not a sign that Redis is
// unreachable.
var errBansLoading = errors.New("purge bans still loading")

// catchUp loads the bans Bans has not applied if seq, the fleet's purge
// sequence number as read from Redis (a string, or nil if no purge was
// ever recorded), is ahead of it. It waits at most Timeout for them, and
// not at all when more than a page is missing (a new instance, or one
// back from an outage): the loading goes on in the background, and the
// entry is a miss meanwhile.
func (t *Tier) catchUp(ctx context.Context, seq any) error {
	s, ok := seq.(string)
	if !ok {
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("purge sequence %q: %w", s, err)
	}
	have := t.bans.Applied()
	if n <= have {
		return nil
	}
	if n-have > banPage {
		t.syncs.DoChan("sync", t.loadBans)
		return fmt.Errorf("%w: have %d of %d", errBansLoading, have, n)
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.loadUpTo(ctx, n)
}

// syncBans applies every ban recorded in Redis up to the fleet's purge
// sequence number as it reads it now. pageTimeout bounds each call to
// Redis; ctx, the whole.
func (t *Tier) syncBans(ctx context.Context, pageTimeout time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, pageTimeout)
	s, err := t.rdb.Get(cctx, t.seqKey()).Result()
	cancel()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("purge sequence %q: %w", s, err)
	}
	return t.loadUpTo(ctx, n)
}

// loadUpTo waits, until ctx ends, for Bans to have applied every ban up
// to n. The loading itself (loadBans) runs on its own, shared by every
// caller: one that gives up leaves it going for the next, and what it has
// applied stays applied.
func (t *Tier) loadUpTo(ctx context.Context, n uint64) error {
	// A load already under way may end before the ban numbered n was
	// recorded: then load again.
	for range 3 {
		if n <= t.bans.Applied() {
			return nil
		}
		select {
		case r := <-t.syncs.DoChan("sync", t.loadBans):
			if r.Err != nil {
				return r.Err
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: have %d of %d: %w", errBansLoading, t.bans.Applied(), n, ctx.Err())
		}
	}
	if n <= t.bans.Applied() {
		return nil
	}
	return fmt.Errorf("purge bans up to %d not found (have %d)", n, t.bans.Applied())
}

// loadBans applies the bans recorded in Redis after Bans.Applied, a page
// at a time, until the end of the log. Each page has its own timeout, the
// larger of Timeout and a second, and is applied before the next is read.
func (t *Tier) loadBans() (any, error) {
	start, from := time.Now(), t.bans.Applied()
	pages := 0
	for {
		select {
		case <-t.stop:
			return nil, redis.ErrClosed
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(t.timeout, time.Second))
		more, err := t.loadPage(ctx)
		cancel()
		pages++
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	if pages > 1 {
		t.log.Info("purge bans loaded", "from", from, "to", t.bans.Applied(), "pages", pages,
			"held", t.bans.Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	return nil, nil
}

// pageScript returns the floor of the ban log (KEYS[2], see purgeScript),
// whether more bans follow this page ("1" or "0"), and the page: the bans
// after Seq ARGV[1], at most ARGV[2] of them and, but for the first, at
// most ARGV[3] bytes. It reads the log 64 bans at a time, so that a page
// of long bans does not read far past its end. Floor and page are read
// together, so that no trim can fall between.
var pageScript = redis.NewScript(`
local limit, maxBytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {redis.call('GET', KEYS[2]) or '0', '0'}
local n, bytes = 0, 0
while true do
  local chunk = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', n, 64)
  for _, m in ipairs(chunk) do
    if n == limit or (n > 0 and bytes + #m > maxBytes) then
      out[2] = '1'
      return out
    end
    bytes = bytes + #m
    n = n + 1
    out[#out + 1] = m
  end
  if #chunk < 64 then return out end
end
`)

// loadPage applies one page of the bans recorded after Bans.Applied and
// reports whether more may follow. If the log was trimmed past Applied
// (it holds no ban at or below its floor), the bans missed are gone: it
// applies an all-ban at the floor instead, which kills every entry they
// killed, and flushes the local tier (a Fleet's Flush).
func (t *Tier) loadPage(ctx context.Context) (more bool, err error) {
	from := t.bans.Applied()
	res, err := pageScript.Run(ctx, t.client, []string{t.bansKey(), t.floorKey()},
		from, banPage, banPageBytes).StringSlice()
	if err != nil {
		return false, err
	}
	if len(res) < 2 {
		return false, fmt.Errorf("ban page: %d values", len(res))
	}
	floor, err := strconv.ParseUint(res[0], 10, 64)
	if err != nil {
		return false, fmt.Errorf("ban log floor %q: %w", res[0], err)
	}
	now := time.Now()
	bans := make([]tiers.Ban, 0, len(res)-1)
	if floor > from {
		bans = append(bans, tiers.Ban{Seq: floor, Kind: tiers.BanAll, At: now, ID: "floor"})
	}
	for _, m := range res[2:] {
		b, err := tiers.ParseBan(m)
		if err != nil {
			t.log.Warn("ignoring malformed ban in redis", "ban", m, "err", err)
			continue
		}
		bans = append(bans, b)
	}
	t.bans.Apply(now, t.banKeep, bans...)
	if floor > from && t.bans.Applied() >= floor {
		t.floors.Add(1)
		t.log.Warn("purge log trimmed past this instance's bans: every entry older than the floor is treated as purged",
			"had", from, "floor", floor)
		if f := t.onFloor.Load(); f != nil {
			(*f)()
		}
	}
	return res[1] == "1", nil
}
