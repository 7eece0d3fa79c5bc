package tiers

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestBanMapAgainstMap checks the trie against a Go map through random
// sets and deletes, with hashes drawn from a small space so that keys
// share slots, split nodes deep down and collide outright; and checks
// that every older version of the map is left as it was, though the
// changes of a batch (one edit token) change its own new nodes in place.
func TestBanMapAgainstMap(t *testing.T) {
	for _, hashSpace := range []uint64{1, 7, 1 << 10, 1 << 62} {
		t.Run(strconv.FormatUint(hashSpace, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, hashSpace))
			hashes := map[string]uint64{}
			hashOf := func(k string) uint64 {
				h, ok := hashes[k]
				if !ok {
					// Shift the small spaces to the high bits, so
					// that hashes agree on their low bits and
					// splits go all the way down the trie.
					h = rng.Uint64N(hashSpace) << (64 - bits.Len64(hashSpace))
					hashes[k] = h
				}
				return h
			}
			type version struct {
				m    banMap
				want map[string]uint64
			}
			var m banMap
			want := map[string]uint64{}
			var versions []version
			edit := new(editToken)
			for i := range 5000 {
				k := "k" + strconv.Itoa(rng.IntN(300))
				if rng.IntN(3) == 0 {
					m = m.del(edit, hashOf(k), k)
					delete(want, k)
				} else {
					m = m.set(edit, hashOf(k), k, uint64(i))
					want[k] = uint64(i)
				}
				if i%250 == 0 {
					snap := make(map[string]uint64, len(want))
					for k, v := range want {
						snap[k] = v
					}
					versions = append(versions, version{m, snap})
					// A new batch; every other one copies each
					// change, as with no token.
					edit = new(editToken)
					if i%500 == 0 {
						edit = nil
					}
				}
			}
			versions = append(versions, version{m, want})
			for vi, v := range versions {
				if v.m.n != len(v.want) {
					t.Fatalf("version %d: n = %d, want %d", vi, v.m.n, len(v.want))
				}
				for j := range 300 {
					k := "k" + strconv.Itoa(j)
					got, ok := v.m.get(hashOf(k), k)
					w, wok := v.want[k]
					if ok != wok || got != w {
						t.Fatalf("version %d: get(%s) = %d, %v; want %d, %v", vi, k, got, ok, w, wok)
					}
				}
			}
			for k := range want {
				m = m.del(nil, hashOf(k), k)
			}
			if m.n != 0 || m.root != nil {
				t.Errorf("emptied map: n = %d, root = %v", m.n, m.root)
			}
		})
	}
}
