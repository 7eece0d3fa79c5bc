package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// keyGen yields the key of each successive request. A keyGen built by
// newKeyGen from the same arguments yields the same sequence, which is what
// lets -simulate replay exactly the trace that a run sent. Not safe for
// concurrent use.
type keyGen interface {
	Uint64() uint64
}

// newKeyGen returns the generator of distribution dist over keys 0..n-1:
//
//	seq      0, 1, …, n-1, 0, 1, … (warm-up: touches every key once per round)
//	uniform  uniformly random ("uniform-hot": a small n makes every key hot)
//	zipf     rank k drawn with probability ∝ 1/(k+1)^s; key 0 is the hottest
func newKeyGen(dist string, n uint64, s float64, seed uint64) (keyGen, error) {
	if n == 0 {
		return nil, fmt.Errorf("-keys must be at least 1")
	}
	// PCG with a fixed second word: the seed alone picks the sequence.
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	switch dist {
	case "seq":
		return &seqGen{n: n}, nil
	case "uniform", "uniform-hot":
		return uniformGen{r: r, n: n}, nil
	case "zipf":
		// math/rand/v2 needs s > 1; s ≈ 1.01 is the classic web-cache
		// workload and is allowed.
		if s <= 1 {
			return nil, fmt.Errorf("-zipf-s must be greater than 1, got %g", s)
		}
		return rand.NewZipf(r, s, 1, n-1), nil
	}
	return nil, fmt.Errorf("-dist: want seq, uniform or zipf, got %q", dist)
}

type seqGen struct{ i, n uint64 }

func (g *seqGen) Uint64() uint64 {
	k := g.i % g.n
	g.i++
	return k
}

type uniformGen struct {
	r *rand.Rand
	n uint64
}

func (g uniformGen) Uint64() uint64 { return g.r.Uint64N(g.n) }

// urlTemplate is a URL with an optional {key} placeholder, split once so
// that building a request URL is a concatenation.
type urlTemplate struct {
	before, after string
	hasKey        bool
}

func parseTemplate(s string) urlTemplate {
	before, after, found := strings.Cut(s, "{key}")
	return urlTemplate{before: before, after: after, hasKey: found}
}

func (t urlTemplate) expand(key uint64) string {
	if !t.hasKey {
		return t.before
	}
	return t.before + strconv.FormatUint(key, 10) + t.after
}
