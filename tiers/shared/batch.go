package shared

import (
	"context"
	"runtime"
	"sync"

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
	key string
	// done receives one value when vals and err are set. It is
	// buffered, so that the pipeline goroutine never blocks on a
	// reader that gave up.
	done chan struct{}
	vals []any // the entry, the purge sequence and epoch, as MGET returns them
	err  error
}

var readPool = sync.Pool{New: func() any { return &read{done: make(chan struct{}, 1)} }}

// batchGet reads key (and the purge sequence and epoch) in the next
// pipeline. It returns ctx's error if ctx ends first: Get's one Timeout
// covers the wait for the batch in flight and the read's own.
func (t *Tier) batchGet(ctx context.Context, key string) ([]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rd := readPool.Get().(*read)
	rd.key = key
	select {
	case t.reads <- rd:
	case <-ctx.Done():
		readPool.Put(rd)
		return nil, ctx.Err()
	case <-t.stop:
		readPool.Put(rd)
		return nil, redis.ErrClosed
	}
	select {
	case <-rd.done:
		vals, err := rd.vals, rd.err
		rd.vals, rd.err = nil, nil
		readPool.Put(rd)
		return vals, err
	case <-ctx.Done():
		// The pipeline goroutine still owns rd: leave it to the
		// collector rather than to the pool.
		return nil, ctx.Err()
	}
}

// pipeline sends batches of reads until Close.
func (t *Tier) pipeline() {
	defer t.pipes.Done()
	batch := make([]*read, 0, maxBatch)
	cmds := make([]*redis.SliceCmd, 0, maxBatch)
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
		cmds = t.sendBatch(batch, cmds[:0])
		for i, rd := range batch {
			rd.vals, rd.err = cmds[i].Val(), cmds[i].Err()
			rd.done <- struct{}{}
			batch[i], cmds[i] = nil, nil
		}
	}
}

// sendBatch queues an MGET of each read's key, the purge sequence and
// epoch (of the key alone if there are no bans to keep) in one pipeline
// and runs it. Every command carries its own result or error.
func (t *Tier) sendBatch(batch []*read, cmds []*redis.SliceCmd) []*redis.SliceCmd {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	defer cancel()
	if len(batch) == 1 {
		// No pipeline for one command: the same round trip, less work.
		return append(cmds, t.mget(ctx, t.rdb, batch[0].key))
	}
	p := t.client.Pipeline()
	for _, rd := range batch {
		cmds = append(cmds, t.mget(ctx, p, rd.key))
	}
	// Exec's error is also each failed command's.
	p.Exec(ctx)
	return cmds
}

// mget reads key and, if the tier keeps bans, the purge sequence and
// epoch.
func (t *Tier) mget(ctx context.Context, c interface {
	MGet(ctx context.Context, keys ...string) *redis.SliceCmd
}, key string) *redis.SliceCmd {
	if t.bans == nil {
		return c.MGet(ctx, key)
	}
	return c.MGet(ctx, key, t.seq, t.epochK)
}
