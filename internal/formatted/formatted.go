// Package formatted caches header values formatted from numbers (a
// date's Unix seconds, a body's length), so that a response that sends
// one of the few values its cache's hot entries use allocates nothing for
// it. A value is a one-element slice, capped so that an append copies, as
// an http.Header holds it.
package formatted

import "sync/atomic"

// slots is the size of a Cache: 4,096 numbers, direct-mapped.
const slots = 4096

// A Cache holds the values of up to 4,096 numbers, one a slot, the slot
// of n being n modulo 4,096: a number whose slot another holds is
// formatted again (and takes the slot), which costs its formatting and
// two small allocations. Bounded: 32 KiB of slots and 4,096 values. Safe
// for concurrent use; the zero value is not (use New).
type Cache struct {
	format func(int64) string
	slot   [slots]atomic.Pointer[value]
}

// value is a number and its formatted value, never modified once in a
// slot.
type value struct {
	n int64
	v [1]string
}

// New returns a Cache of the values format makes.
func New(format func(int64) string) *Cache {
	return &Cache{format: format}
}

// Values returns the value of n: format(n) as a one-element slice with
// no room to append, shared with every caller asking for n.
func (c *Cache) Values(n int64) []string {
	s := &c.slot[uint64(n)%slots]
	if v := s.Load(); v != nil && v.n == n {
		return v.v[:]
	}
	v := &value{n: n}
	v.v[0] = c.format(n)
	s.Store(v)
	return v.v[:]
}
