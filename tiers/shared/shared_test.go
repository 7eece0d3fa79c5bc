package shared

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
	"github.com/cacheproxy/cacheproxy/tiers"
)

// logBuffer collects a Tier's logs.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), "msg=\""+msg+"\"")
}

func newTier(t testing.TB, opts Options) (*Tier, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tier, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier, logs
}

func entry(body string) *tiers.Entry {
	e := &tiers.Entry{
		Kind:     tiers.KindResponse,
		Status:   http.StatusOK,
		Header:   tiers.MakeHeader(http.Header{"Content-Type": {"text/plain"}}),
		StoredAt: tiers.At(time.Unix(1_700_000_000, 0)),
		Lifetime: time.Minute,
		URL:      "/x",
	}
	e.SetBody([]byte(body))
	e.SetExtra(tiers.Extra{Tags: []string{"t1"}})
	return e
}

func TestSetGetMiss(t *testing.T) {
	srv := redistest.Start(t)
	tier, logs := newTier(t, Options{URL: srv.URL()})
	ctx := context.Background()
	if !tier.Healthy() {
		t.Fatal("not Healthy with Redis up")
	}
	if logs.count("redis reachable") != 1 {
		t.Error("New did not log that Redis answered")
	}

	e := entry("hello")
	if err := tier.Set(ctx, "cacheproxy:k", e, time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got, ok, err := tier.Get(ctx, "cacheproxy:k")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v; want a hit", ok, err)
	}
	if !bytes.Equal(got.AppendBody(nil), e.AppendBody(nil)) || got.Status != e.Status || got.Tags()[0] != "t1" ||
		got.StoredAt != e.StoredAt {
		t.Errorf("Get returned %+v, want %+v", got, e)
	}
	// The key is stored under its hash tag, with the encoded entry as
	// its value.
	raw, err := srv.Client().Get(ctx, "cacheproxy:{k}").Bytes()
	if err != nil || !bytes.Equal(raw, tiers.Encode(e)) {
		t.Errorf("raw value = %q, %v; want the encoded entry", raw, err)
	}

	got, ok, err = tier.Get(ctx, "cacheproxy:absent")
	if err != nil || ok || got != nil {
		t.Errorf("Get(absent) = %v, %v, %v; want a miss", got, ok, err)
	}
	if tier.Errors() != 0 {
		t.Errorf("Errors = %d, want 0", tier.Errors())
	}
}

func TestTTL(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	ctx := context.Background()
	rdb := srv.Client()

	for _, ttl := range []time.Duration{30 * time.Second, 1500 * time.Millisecond} {
		key := "ttl:" + ttl.String()
		if err := tier.Set(ctx, key, entry("v"), ttl); err != nil {
			t.Fatalf("Set: %v", err)
		}
		pttl, err := rdb.PTTL(ctx, tier.redisKey(key)).Result()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		if pttl <= 0 || pttl > ttl {
			t.Errorf("PTTL after Set with ttl %v = %v", ttl, pttl)
		}
	}

	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := tier.Set(ctx, "ttl:none", entry("v"), ttl); err != nil {
			t.Fatalf("Set with ttl %v: %v", ttl, err)
		}
		if n, _ := rdb.Exists(ctx, tier.redisKey("ttl:none")).Result(); n != 0 {
			t.Errorf("Set with ttl %v stored the key", ttl)
		}
	}
}

func TestUndecodableIsMiss(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	ctx := context.Background()

	future := tiers.Encode(entry("v"))
	future[1] = 99 // another encoding version
	values := map[string][]byte{
		"future":    future,
		"corrupt":   []byte("not an entry"),
		"truncated": tiers.Encode(entry("v"))[:10],
	}
	for k, v := range values {
		if err := srv.Client().Set(ctx, tier.redisKey(k), v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for k := range values {
		e, ok, err := tier.Get(ctx, k)
		if e != nil || ok || err != nil {
			t.Errorf("Get(%s) = %v, %v, %v; want a miss", k, e, ok, err)
		}
	}
	if n := tier.Undecodable(); n != int64(len(values)) {
		t.Errorf("Undecodable = %d, want %d", n, len(values))
	}
	if tier.Errors() != 0 || !tier.Healthy() {
		t.Errorf("Errors, Healthy = %d, %v; want 0, true", tier.Errors(), tier.Healthy())
	}
}

func TestDelete(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		if err := tier.Set(ctx, k, entry(k), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := tier.Delete(ctx, "a", "b", "absent"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := tier.Delete(ctx); err != nil {
		t.Fatalf("Delete(): %v", err)
	}
	for k, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok, err := tier.Get(ctx, k); ok != want || err != nil {
			t.Errorf("Get(%s) = %v, %v; want %v, nil", k, ok, err, want)
		}
	}
}

func TestKillAndRestart(t *testing.T) {
	srv := redistest.Start(t)
	tier, logs := newTier(t, Options{URL: srv.URL(), RetryInterval: 100 * time.Millisecond})
	ctx := context.Background()
	if err := tier.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	start := time.Now()
	_, ok, err := tier.Get(ctx, "k")
	if err == nil || ok {
		t.Fatalf("Get with Redis killed = %v, %v; want an error", ok, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get with Redis killed took %v", d)
	}
	// Calls that keep failing for tripAfter mark the tier down.
	await.Until(t, 10*time.Second, "the tier to be marked down", func() bool {
		tier.Get(ctx, "k")
		return !tier.Healthy()
	})

	// While down, every call fails at once without the network.
	for range 100 {
		start := time.Now()
		if _, _, err := tier.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get while down: err = %v, want ErrUnavailable", err)
		}
		if err := tier.Set(ctx, "k", entry("v"), time.Minute); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Set while down: err = %v, want ErrUnavailable", err)
		}
		if err := tier.Delete(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Delete while down: err = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("calls while down took %v", d)
		}
	}
	if n := tier.Errors(); n < 301 {
		t.Errorf("Errors = %d, want at least 301", n)
	}
	if n := logs.count("redis unreachable: L2 skipped until it answers again"); n != 1 {
		t.Errorf("logged unreachable %d times, want once", n)
	}

	srv.Restart()
	await.Until(t, 10*time.Second, "tier to be Healthy after restart", tier.Healthy)
	await.Until(t, 10*time.Second, "Set and Get to work after restart", func() bool {
		if err := tier.Set(ctx, "k2", entry("v2"), time.Minute); err != nil {
			return false
		}
		_, ok, err := tier.Get(ctx, "k2")
		return ok && err == nil
	})
	if n := logs.count("redis reachable again"); n != 1 {
		t.Errorf("logged reachable again %d times, want once", n)
	}
}

func TestUnreachableAtStart(t *testing.T) {
	// A port that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	start := time.Now()
	tier, logs := newTier(t, Options{URL: "redis://" + addr + "/0"})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("New with Redis unreachable took %v", d)
	}
	if tier.Healthy() {
		t.Error("Healthy with nothing listening")
	}
	if _, _, err := tier.Get(context.Background(), "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get: err = %v, want ErrUnavailable", err)
	}
	if logs.count("redis unreachable: L2 skipped until it answers again") != 1 {
		t.Error("New did not log that Redis is unreachable")
	}
}

func TestUnreachableAtStartThenUp(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill()
	tier, _ := newTier(t, Options{URL: srv.URL(), RetryInterval: 100 * time.Millisecond})
	if tier.Healthy() {
		t.Fatal("Healthy with Redis killed")
	}
	srv.Restart()
	await.Until(t, 10*time.Second, "tier to be Healthy once Redis is up", tier.Healthy)
	ctx := context.Background()
	if err := tier.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, ok, err := tier.Get(ctx, "k"); !ok || err != nil {
		t.Fatalf("Get = %v, %v; want a hit", ok, err)
	}
}

func TestPausedRedisTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL(), RetryInterval: 100 * time.Millisecond})
	ctx := context.Background()
	if err := tier.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	start := time.Now()
	_, ok, err := tier.Get(ctx, "k")
	if err == nil || ok {
		t.Fatalf("Get with Redis paused = %v, %v; want an error", ok, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("Get with Redis paused: %v (not a deadline error)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get with Redis paused took %v, want about Timeout", d)
	}
	await.Until(t, 10*time.Second, "the tier to be marked down", func() bool {
		tier.Get(ctx, "k")
		return !tier.Healthy()
	})

	srv.Resume()
	await.Until(t, 10*time.Second, "Get to work after resume", func() bool {
		_, ok, err := tier.Get(ctx, "k")
		return ok && err == nil
	})
}

func TestCallerCancelDoesNotTrip(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := tier.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: err = %v, want context.Canceled", err)
	}
	if !tier.Healthy() {
		t.Error("a caller's cancellation marked Redis down")
	}
}

func TestClientOption(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	tier, err := New(Options{Client: rdb, Prefix: "p", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := tier.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if tier.Client() != rdb || tier.Prefix() != "p" {
		t.Error("Client or Prefix not as given")
	}
	if err := tier.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tier.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The tier does not close a client it was given.
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Errorf("given client unusable after Close: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"nothing", Options{}, "URL"},
		{"both", Options{URL: srv.URL(), Client: srv.Client()}, "URL"},
		{"scheme", Options{URL: "http://127.0.0.1:1/0"}, "URL"},
		{"port", Options{URL: "redis://user:s3cret@127.0.0.1:notaport/0"}, "URL"},
		{"timeout", Options{URL: srv.URL(), Timeout: -1}, "Timeout"},
		{"retry", Options{URL: srv.URL(), RetryInterval: -1}, "RetryInterval"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tier, err := New(tt.opts)
			if err == nil {
				tier.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	if tier.Prefix() != "cacheproxy" || tier.timeout != 100*time.Millisecond || tier.retry != time.Second {
		t.Errorf("defaults: prefix %q, timeout %v, retry %v", tier.Prefix(), tier.timeout, tier.retry)
	}
}

func BenchmarkGet(b *testing.B) {
	srv := redistest.Start(b)
	tier, _ := newTier(b, Options{URL: srv.URL(), Timeout: time.Second})
	ctx := context.Background()
	e := entry(strings.Repeat("x", 1024))
	const nkeys = 64
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = "cacheproxy:GET:/players/" + strconv.Itoa(i)
		if err := tier.Set(ctx, keys[i], e, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := tier.Get(ctx, keys[i%nkeys]); !ok || err != nil {
			b.Fatalf("Get = %v, %v", ok, err)
		}
		i++
	}
}

// TestSlowAnswerDoesNotTrip: a call that times out while Redis answered
// recently costs that call, not the tier.
func TestSlowAnswerDoesNotTrip(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL(), RetryInterval: 100 * time.Millisecond})
	ctx := context.Background()
	if err := tier.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	_, _, err := tier.Get(ctx, "k")
	srv.Resume()
	if err == nil {
		t.Fatal("Get with Redis paused succeeded")
	}
	if !tier.Healthy() {
		t.Error("one slow answer marked the tier down")
	}
	if _, ok, err := tier.Get(ctx, "k"); !ok || err != nil {
		t.Errorf("Get after resume: %v %v", ok, err)
	}
}

// Concurrent Gets share pipelines; each gets its own key's answer.
func TestConcurrentGets(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL(), Bans: new(tiers.Bans), Timeout: 5 * time.Second})
	ctx := context.Background()
	const keys = 50
	for i := range keys {
		if err := tier.Set(ctx, "k"+strconv.Itoa(i), entry("v"+strconv.Itoa(i)), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				i := (g*7 + j) % (keys + 10) // keys+: absent
				e, ok, err := tier.Get(ctx, "k"+strconv.Itoa(i))
				switch {
				case err != nil:
					t.Errorf("Get(k%d): %v", i, err)
				case i >= keys && ok:
					t.Errorf("Get(k%d) hit an absent key: %q", i, e.AppendBody(nil))
				case i < keys && (!ok || string(e.AppendBody(nil)) != "v"+strconv.Itoa(i)):
					t.Errorf("Get(k%d) = %v, %v; want v%d", i, e, ok, i)
				}
			}
		}()
	}
	wg.Wait()
}

// One pipeline answers each read of a batch with its own key's value,
// a missing key as not found, and the purge sequence and epoch with
// each: as a GET per read and one MGET of the metadata per batch, on one
// node as in a Cluster, and as one MGET for a batch of one on one node.
func TestSendBatch(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL(), Bans: new(tiers.Bans)})
	ctx := context.Background()
	cl := srv.Client()
	if err := cl.Set(ctx, "a", "A", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cl.Set(ctx, "c", "C", 0)
	cl.Set(ctx, tier.seqKey(), "7", 0)
	cl.Set(ctx, tier.epochKey(), "e1", 0)
	want := []struct {
		v     string
		found bool
	}{{"A", true}, {"", false}, {"C", true}}
	for _, oneNode := range []bool{true, false} {
		tier.oneNode = oneNode
		for _, n := range []int{1, 3} {
			batch := []*read{{key: "a"}, {key: "b"}, {key: "c"}}[:n]
			var b batchCmds
			tier.sendBatch(batch, &b)
			for i, rd := range batch {
				b.result(i, rd)
				if rd.err != nil || rd.entry != want[i].v || rd.found != want[i].found || rd.seq != "7" || rd.epoch != "e1" {
					t.Errorf("oneNode %v, read %d of %d (%s): %+v; want %v 7 e1", oneNode, i, n, rd.key, rd, want[i])
				}
			}
		}
	}
	srv.Kill()
	for _, oneNode := range []bool{true, false} {
		tier.oneNode = oneNode
		batch := []*read{{key: "a"}, {key: "b"}, {key: "c"}}
		var b batchCmds
		tier.sendBatch(batch, &b)
		for i, rd := range batch {
			if b.result(i, rd); rd.err == nil {
				t.Errorf("oneNode %v, read %d with Redis killed: no error", oneNode, i)
			}
		}
	}
}

// TestBatchReadsSequenceOnce: on one node, a batch of three reads costs
// Redis three GETs and one MGET of the purge sequence and epoch, not an
// MGET of them per read; a batch of one, one MGET.
func TestBatchReadsSequenceOnce(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL(), Bans: new(tiers.Bans)})
	ctx := context.Background()
	cl := srv.Client()
	calls := func(cmd string) int {
		info, err := cl.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
		if !ok {
			return 0
		}
		n, _, _ := strings.Cut(rest, ",")
		v, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("commandstats %s: %q", cmd, n)
		}
		return v
	}
	for _, c := range []struct{ reads, gets, mgets int }{{3, 3, 1}, {1, 0, 1}} {
		if err := cl.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		batch := []*read{{key: "a"}, {key: "b"}, {key: "c"}}[:c.reads]
		var b batchCmds
		tier.sendBatch(batch, &b)
		if g, m := calls("get"), calls("mget"); g != c.gets || m != c.mgets {
			t.Errorf("a batch of %d: %d GET and %d MGET; want %d and %d", c.reads, g, m, c.gets, c.mgets)
		}
	}
}

// TestGetBoundedWithoutContextTimeouts: Timeout bounds every Get, the
// wait for the batch in flight included, even with a given client whose
// reads obey only its own ReadTimeout (no ContextTimeoutEnabled): each
// reader stops waiting at its own deadline, whatever the pipeline is
// stuck in.
func TestGetBoundedWithoutContextTimeouts(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	t.Cleanup(func() { rdb.Close() })
	tier, _ := newTier(t, Options{Client: rdb, Timeout: time.Second, Bans: new(tiers.Bans)})
	ctx := context.Background()
	if _, _, err := tier.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume() // before the tier's Close, which waits for the pipeline
	const gets = 3
	var wg sync.WaitGroup
	errs, took := make([]error, gets), make([]time.Duration, gets)
	for i := range gets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, _, errs[i] = tier.Get(ctx, "k"+strconv.Itoa(i))
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i := range gets {
		if !errors.Is(errs[i], context.DeadlineExceeded) || took[i] > 10*time.Second {
			t.Errorf("Get %d with Redis paused: %v after %v; want a deadline error after about 1s", i, errs[i], took[i])
		}
	}
}

// TestHolds: Holds sees an entry and a fill lease under a key, and
// nothing else.
func TestHolds(t *testing.T) {
	srv := redistest.Start(t)
	tier, _ := newTier(t, Options{URL: srv.URL()})
	ctx := context.Background()
	if held, err := tier.Holds(ctx, "cacheproxy:k"); err != nil || held {
		t.Fatalf("empty: Holds = %v, %v; want false", held, err)
	}
	if err := tier.Set(ctx, "cacheproxy:k", entry("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if held, err := tier.Holds(ctx, "cacheproxy:k"); err != nil || !held {
		t.Errorf("entry: Holds = %v, %v; want true", held, err)
	}
	// A lease alone (as another instance's fill holds it), in its key.
	if err := srv.Client().Set(ctx, tier.leaseKey("cacheproxy:l"), "token", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if held, err := tier.Holds(ctx, "cacheproxy:l"); err != nil || !held {
		t.Errorf("lease: Holds = %v, %v; want true", held, err)
	}
	if held, _ := tier.Holds(ctx, "cacheproxy:k#Accept:x\n"); held {
		t.Error("a variant key nothing is stored under: held")
	}
}

// TestClusterBrokenConnectionIsNotTheTier: on a Cluster, a call whose
// connection a master broke (io.EOF, naming no node) is a miss; it does
// not mark the whole tier down (the other masters' slots go on). On one
// server it does.
func TestClusterBrokenConnectionIsNotTheTier(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.StartCluster(t)
	tier, _ := newTier(t, Options{URL: cluster.URL()})
	if err := tier.Set(ctx, "k", entry("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	tier.fail(ctx, purposeRead, "get", io.EOF)
	if tier.down.Load() {
		t.Error("a Cluster tier marked down by one broken connection")
	}
	if _, ok, err := tier.Get(ctx, "k"); err != nil || !ok {
		t.Errorf("Get after a broken connection = %v, %v; want a hit", ok, err)
	}
	one, _ := newTier(t, Options{URL: redistest.Start(t).URL()})
	one.fail(ctx, purposeRead, "get", io.EOF)
	if !one.down.Load() {
		t.Error("one server's broken connection did not mark it down")
	}
}
