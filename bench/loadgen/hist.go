package main

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: 2^subBits values are recorded
// exactly, and above that every power of two is cut into 2^(subBits-1)
// buckets, so a reported value is within 1/2^subBits (0.8%) of the truth.
// That is the HdrHistogram idea in a few lines, without its dependency.
const subBits = 7

const (
	subCount = 1 << subBits       // exact values below this
	halfSub  = 1 << (subBits - 1) // buckets per power of two above it
	nBuckets = subCount + (64-subBits)*halfSub
)

// hist is a latency histogram of durations in nanoseconds. The zero value
// is empty and ready to use. Not safe for concurrent use: each worker keeps
// its own and they are merged at the end.
type hist struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      float64 // for the mean
	min, max int64
}

// bucketOf returns the index of the bucket holding v (v ≥ 0). Indexes grow
// with v.
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // ≥ 1: the bits dropped
	m := int(uint64(v) >> e)             // in [halfSub, subCount)
	return e*halfSub + m
}

// bucketRange returns the smallest and largest values of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	e := i/halfSub - 1
	m := int64(i%halfSub + halfSub)
	return m << e, (m+1)<<e - 1
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100): the
// smallest recorded value such that at least p% of the values are at or
// below it, to the histogram's precision (the middle of its bucket, never
// beyond the extremes seen). It returns 0 for an empty histogram.
func (h *hist) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// The tolerance keeps float error from pushing an exact rank up by one:
	// 99.9% of 10,000 must be 9,990, not 9,991.
	r := p / 100 * float64(h.n)
	rank := uint64(math.Ceil(r - r*1e-12))
	rank = max(rank, 1)
	rank = min(rank, h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
