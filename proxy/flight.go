package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// flightGroup collapses concurrent fills of one key into one, like
// golang.org/x/sync/singleflight, with two things singleflight does not
// do: the fill runs under its own context, detached from the first
// caller's, which is cancelled only when every caller waiting for it has
// gone; and the caller that started the fill (the leader) can be handed a
// result that is for it alone (a streamed body), which is closed if the
// leader has gone by the time it is ready.
//
// A caller that joins a fill waits for it at most lockTimeout from the
// fill's start, like nginx's proxy_cache_lock_timeout: it then gets
// errLockTimeout and fends for itself; and a fill older than lockTimeout
// is not joined at all: a request arriving after it starts a fill of its
// own, so an origin that hung on one request does not hold up the key once
// it answers again.
//
// The zero value is ready to use, and waits as long as the fill takes.
type flightGroup struct {
	lockTimeout time.Duration // zero: no limit

	mu sync.Mutex
	m  map[string]*flight // lazily initialized
}

// errLockTimeout is returned to a caller that waited lockTimeout for
// another caller's fill.
var errLockTimeout = errors.New("waited too long for a fill in progress")

// errFillTimeout is the cause of a fill's context ending after the fill
// timeout. It wraps context.DeadlineExceeded, so it maps to 504.
var errFillTimeout = fmt.Errorf("fill timed out: %w", context.DeadlineExceeded)

// flight is one fill in progress.
type flight struct {
	done   chan struct{} // closed when res is set
	res    *fillResult
	refs   int                // callers still waiting, guarded by flightGroup.mu
	cancel context.CancelFunc // cancels the fill's context
	start  time.Time

	leaderGone bool // the leader stopped waiting, guarded by flightGroup.mu
}

// do runs fill for key once for all concurrent callers and returns its
// result. leader reports whether this caller started the fill. The fill
// runs under a context detached from ctx, bounded by timeout, and
// cancelled early only if every waiting caller has left. A caller whose
// ctx ends first returns ctx.Err().
func (g *flightGroup) do(ctx context.Context, key string, timeout time.Duration, fill func(context.Context) *fillResult) (res *fillResult, leader bool, err error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	if f, ok := g.m[key]; ok && (g.lockTimeout <= 0 || time.Since(f.start) < g.lockTimeout) {
		f.refs++
		g.mu.Unlock()
		res, err := g.wait(ctx, f, key)
		return res, false, err
	}
	// The timeout bounds the fill, not a body it hands over to be
	// streamed: that lives as long as the leader's client reads it.
	fctx, cancelCause := context.WithCancelCause(context.WithoutCancel(ctx))
	f := &flight{done: make(chan struct{}), refs: 1, cancel: func() { cancelCause(context.Canceled) }, start: time.Now()}
	timer := time.AfterFunc(timeout, func() { cancelCause(errFillTimeout) })
	// A fill too old to join is replaced here; it goes on for the
	// callers already waiting for it.
	g.m[key] = f
	g.mu.Unlock()
	go func() {
		r := fill(fctx)
		timer.Stop()
		g.finish(f, key, r)
	}()
	select {
	case <-f.done:
		g.release(f, key, true)
		return f.res, true, nil
	case <-ctx.Done():
		g.mu.Lock()
		f.leaderGone = true
		g.mu.Unlock()
		g.release(f, key, true)
		return nil, true, ctx.Err()
	}
}

// wait waits, as a caller that joined it, for the fill f of key, at most
// until the lock timeout from its start.
func (g *flightGroup) wait(ctx context.Context, f *flight, key string) (*fillResult, error) {
	defer g.release(f, key, false)
	var expired <-chan time.Time
	if g.lockTimeout > 0 {
		t := time.NewTimer(g.lockTimeout - time.Since(f.start))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-f.done:
		return f.res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-expired:
		return nil, errLockTimeout
	}
}

// finish records r as the result of the fill f of key and wakes its
// callers. A stream is for the leader alone: closed if it has gone, else
// it owns the fill's context, which closing it cancels.
func (g *flightGroup) finish(f *flight, key string, r *fillResult) {
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	if r.stream != nil && f.leaderGone {
		r.stream.close()
		r.stream = nil
	}
	f.res = r
	g.mu.Unlock()
	if r.stream == nil {
		f.cancel()
	} else {
		r.stream.cancel = f.cancel
	}
	close(f.done)
}

// release drops one caller's interest in f. When the last caller leaves
// before the fill is done, the fill is cancelled and forgotten, so that a
// caller arriving next starts a fill of its own rather than waiting for
// one that can only fail. If the leader leaves after the fill handed it a
// stream, the stream is closed.
func (g *flightGroup) release(f *flight, key string, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f.refs--
	select {
	case <-f.done:
		if leader && f.leaderGone && f.res.stream != nil {
			f.res.stream.close()
			f.res.stream = nil
		}
	default:
		if f.refs == 0 {
			f.cancel()
			if g.m[key] == f {
				delete(g.m, key)
			}
		}
	}
}

// waiting returns how many callers wait for the fill of key. For tests.
func (g *flightGroup) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		return f.refs
	}
	return 0
}
