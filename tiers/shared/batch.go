package shared

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reads are batched. Each Get hands its key to the pipeline goroutine,
// which takes every read waiting at that moment (up to maxBatch) and sends
// them to Redis in one pipeline: one write, one read, the replies parsed
// one after another. Under load this divides the system calls, wake-ups
// and Redis's own per-command work by the batch size; with one request at
// a time it costs one goroutine hand-off. No read waits for a batch to
// fill: a batch is whatever queued while the previous one was in flight
// ("natural" batching), so the slower Redis answers, the larger the
// batches, as with one pipelined connection.
//
// One pipeline in flight, not several, and the pipeline goroutine yields
// once before it cuts a batch, so that requests ready to run get to queue
// their reads first: without the yield, on one CPU (GOMAXPROCS=1), the
// batches were mostly single reads, since the round trip to a Redis on
// the same CPU left no time for others to queue. With 64 wrk clients of
// 100 hot keys, proxy and Redis pinned to one CPU, an L2 hit cost 50 µs
// of CPU (proxy and Redis together) with the yield, 100-112 µs without
// it; four pipelines without the yield served fewer hits still.
const (
	// pipelines is how many batches may be in flight at once.
	pipelines = 1
	// maxBatch bounds the reads of one pipeline.
	maxBatch = 128
)

// read is one Get waiting for its batch.
type read struct {
	key string // the Redis key (redisKey)
	// done receives one value when the fields below are set. It is
	// buffered, so that the pipeline goroutine never blocks on a
	// reader that gave up.
	done       chan struct{}
	entry      string // the value, if found
	found      bool
	seq, epoch any // the purge sequence and epoch, as MGET returns them
	err        error
	// timer ends the reader's wait at its deadline. It is stopped
	// whenever the read is idle in readPool, and reused with it.
	timer *time.Timer
}

var readPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &read{done: make(chan struct{}, 1), timer: t}
}}

// readResult is what a read found.
type readResult struct {
	entry      string
	found      bool
	seq, epoch any
}

// batchGet reads key (and the purge sequence and epoch) in the next
// pipeline. It returns ctx's error if ctx ends first, and
// context.DeadlineExceeded at deadline: Get's one Timeout covers the wait
// for the batch in flight and the read's own.
func (t *Tier) batchGet(ctx context.Context, key string, deadline time.Time) (readResult, error) {
	if err := ctx.Err(); err != nil {
		return readResult{}, err
	}
	rd := readPool.Get().(*read)
	rd.key = key
	rd.timer.Reset(time.Until(deadline))
	select {
	case t.reads <- rd:
	case <-ctx.Done():
		rd.timer.Stop()
		readPool.Put(rd)
		return readResult{}, ctx.Err()
	case <-rd.timer.C:
		readPool.Put(rd)
		return readResult{}, context.DeadlineExceeded
	case <-t.stop:
		rd.timer.Stop()
		readPool.Put(rd)
		return readResult{}, redis.ErrClosed
	}
	select {
	case <-rd.done:
		rd.timer.Stop()
		res, err := readResult{entry: rd.entry, found: rd.found, seq: rd.seq, epoch: rd.epoch}, rd.err
		rd.entry, rd.found, rd.seq, rd.epoch, rd.err = "", false, nil, nil, nil
		readPool.Put(rd)
		return res, err
	case <-ctx.Done():
		// The pipeline goroutine still owns rd: leave it to the
		// collector rather than to the pool.
		rd.timer.Stop()
		return readResult{}, ctx.Err()
	case <-rd.timer.C:
		return readResult{}, context.DeadlineExceeded
	}
}

// pipeline sends batches of reads until Close.
func (t *Tier) pipeline() {
	defer t.pipes.Done()
	batch := make([]*read, 0, maxBatch)
	var b batchCmds
	for {
		batch = batch[:0]
		select {
		case rd := <-t.reads:
			batch = append(batch, rd)
		case <-t.stop:
			return
		}
		// Let the goroutines that are ready to run (requests about to
		// read) queue their reads before the batch is cut.
		runtime.Gosched()
	more:
		for len(batch) < maxBatch {
			select {
			case rd := <-t.reads:
				batch = append(batch, rd)
			default:
				break more
			}
		}
		t.sendBatch(batch, &b)
		for i, rd := range batch {
			b.result(i, rd)
			rd.done <- struct{}{}
			batch[i] = nil
		}
		b.reset()
	}
}

// batchCmds are the commands of one batch. Each read is a GET of its key
// and the batch reads the purge sequence and epoch once, after them, with
// one MGET (none if the tier keeps no bans). In a Cluster the entries and
// the fleet's metadata live in different slots: go-redis sends each node
// its part of the pipeline. A batch of one read on one node (oneNode) is
// a single MGET of its key, the sequence and epoch (or of its key alone),
// without a pipeline. Either way the sequence is read after every read of
// the batch was asked for, which is what the purge guarantee needs: a
// purge that answered before a Get began is recorded before the sequence
// the Get sees was read. (One MGET per read, as before, made Redis look up
// and send the sequence and epoch, and go-redis parse them, once per read
// instead of once per batch.)
type batchCmds struct {
	mgets []*redis.SliceCmd
	gets  []*redis.StringCmd
	meta  *redis.SliceCmd
}

func (b *batchCmds) reset() {
	clear(b.mgets)
	clear(b.gets)
	b.mgets, b.gets, b.meta = b.mgets[:0], b.gets[:0], nil
}

// result sets the i-th read's outcome in rd.
func (b *batchCmds) result(i int, rd *read) {
	if len(b.mgets) > 0 {
		vals, err := b.mgets[i].Val(), b.mgets[i].Err()
		if rd.err = err; err == nil && len(vals) > 0 {
			rd.entry, rd.found = vals[0].(string)
			if len(vals) == 3 {
				rd.seq, rd.epoch = vals[1], vals[2]
			}
		}
		return
	}
	g := b.gets[i]
	switch err := g.Err(); {
	case err == redis.Nil:
	case err != nil:
		rd.err = err
		return
	default:
		rd.entry, rd.found = g.Val(), true
	}
	if b.meta != nil {
		if err := b.meta.Err(); err != nil {
			rd.err, rd.entry, rd.found = err, "", false
			return
		}
		if vals := b.meta.Val(); len(vals) == 2 {
			rd.seq, rd.epoch = vals[0], vals[1]
		}
	}
}

// sendBatch queues the batch's commands (see batchCmds) in one pipeline
// and runs it. Every command carries its own result or error.
func (t *Tier) sendBatch(batch []*read, b *batchCmds) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	if t.oneNode && len(batch) == 1 {
		// No pipeline for one command: the same round trip, less work.
		if t.bans == nil {
			b.mgets = append(b.mgets, t.rdb.MGet(ctx, batch[0].key))
		} else {
			b.mgets = append(b.mgets, t.rdb.MGet(ctx, batch[0].key, t.seq, t.epochK))
		}
		return
	}
	p := t.client.Pipeline()
	for _, rd := range batch {
		b.gets = append(b.gets, p.Get(ctx, rd.key))
	}
	if t.bans != nil {
		b.meta = p.MGet(ctx, t.seq, t.epochK)
	}
	// Exec's error is also each failed command's.
	p.Exec(ctx)
}
