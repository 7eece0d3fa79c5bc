package main

import (
	"container/heap"
	"container/list"
)

// simResult is what -simulate prints: the hit ratios that reference caches
// would reach on the very trace a run sends (same distribution, keys, seed
// and request count).
type simResult struct {
	Requests uint64 `json:"requests"`
	Distinct uint64 `json:"distinct"`
	// Unbounded is the hit ratio of a cache that never evicts: every
	// request but the first for each key hits.
	Unbounded float64  `json:"unbounded_hit_ratio"`
	LFU       []lfuHit `json:"lfu"`
	// LRU holds, for the same capacities, the hit ratio of a cache that
	// evicts the least recently used key, as Varnish and nginx do.
	LRU []lfuHit `json:"lru"`
}

type lfuHit struct {
	Capacity int     `json:"capacity_objects"`
	HitRatio float64 `json:"hit_ratio"`
}

// simulate replays n requests of gen through an unbounded cache and through
// an ideal LFU cache of each capacity (in objects).
func simulate(gen keyGen, n uint64, capacities []int) simResult {
	trace := make([]uint64, n)
	for i := range trace {
		trace[i] = gen.Uint64()
	}
	seen := make(map[uint64]struct{})
	for _, k := range trace {
		seen[k] = struct{}{}
	}
	res := simResult{Requests: n, Distinct: uint64(len(seen))}
	if n > 0 {
		res.Unbounded = float64(n-res.Distinct) / float64(n)
	}
	for _, c := range capacities {
		hits := lfuHits(trace, c)
		r := lfuHit{Capacity: c}
		if n > 0 {
			r.HitRatio = float64(hits) / float64(n)
		}
		res.LFU = append(res.LFU, r)
		r = lfuHit{Capacity: c}
		if n > 0 {
			r.HitRatio = float64(lruHits(trace, c)) / float64(n)
		}
		res.LRU = append(res.LRU, r)
	}
	return res
}

// lfuHits counts the hits of a "perfect" LFU cache of capacity objects on
// trace: it counts every access to every key, cached or not, and holds the
// keys with the highest counts so far. A missed key is admitted when there
// is room or when its count now exceeds the smallest count held, which it
// then evicts. This is the usual upper reference for frequency-based
// caches such as TinyLFU (ristretto), which approximate these counts.
func lfuHits(trace []uint64, capacity int) uint64 {
	if capacity <= 0 {
		return 0
	}
	freq := make(map[uint64]uint64)
	h := &lfuHeap{pos: make(map[uint64]int)}
	var hits uint64
	for _, k := range trace {
		freq[k]++
		f := freq[k]
		if i, ok := h.pos[k]; ok {
			hits++
			h.items[i].freq = f
			heap.Fix(h, i)
			continue
		}
		switch {
		case h.Len() < capacity:
			heap.Push(h, lfuItem{key: k, freq: f})
		case f > h.items[0].freq:
			delete(h.pos, h.items[0].key)
			h.items[0] = lfuItem{key: k, freq: f}
			h.pos[k] = 0
			heap.Fix(h, 0)
		}
	}
	return hits
}

type lfuItem struct {
	key, freq uint64
}

// lfuHeap is a min-heap of cached keys by count, tracking each key's index
// so that a hit can fix its position.
type lfuHeap struct {
	items []lfuItem
	pos   map[uint64]int
}

func (h *lfuHeap) Len() int           { return len(h.items) }
func (h *lfuHeap) Less(i, j int) bool { return h.items[i].freq < h.items[j].freq }
func (h *lfuHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i].key] = i
	h.pos[h.items[j].key] = j
}
func (h *lfuHeap) Push(x any) {
	it := x.(lfuItem)
	h.pos[it.key] = len(h.items)
	h.items = append(h.items, it)
}
func (h *lfuHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.pos, it.key)
	return it
}

// lruHits counts the hits of an LRU cache of capacity objects on trace:
// every miss is admitted, evicting the key used least recently.
func lruHits(trace []uint64, capacity int) uint64 {
	if capacity <= 0 {
		return 0
	}
	order := list.New() // front: most recently used
	at := make(map[uint64]*list.Element, capacity)
	var hits uint64
	for _, k := range trace {
		if el, ok := at[k]; ok {
			hits++
			order.MoveToFront(el)
			continue
		}
		if order.Len() >= capacity {
			old := order.Back()
			delete(at, old.Value.(uint64))
			order.Remove(old)
		}
		at[k] = order.PushFront(k)
	}
	return hits
}
