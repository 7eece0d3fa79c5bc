package tiers

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// banMap is a persistent map from a ban's name (a URL, a prefix or a tag)
// to the sequence number of its newest ban: a hash array mapped trie of
// 32-way nodes. set and del return a new map that shares every node but
// the few (about log32 n) on the path to the key, so a reader holding an
// older map is never disturbed and needs no lock, and a writer pays
// O(log n), not a copy of the table.
//
// A batch of changes may share an edit token: a node made under the token
// is not yet visible to any reader, so later changes under the same token
// change it in place rather than copy it again. Applying a page of bans
// thus copies each node at most once.
//
// The zero value is an empty map. Keys are hashed with the seed of the
// table that owns the map (banSnapshot.seed), so that nobody can choose
// names that collide.
type banMap struct {
	root *trieNode
	n    int // keys held
}

const (
	trieBits = 5
	trieMask = 1<<trieBits - 1
)

// trieNode holds a slot for each bit set in bitmap, in bit order.
type trieNode struct {
	bitmap uint32
	slots  []trieSlot
	edit   *editToken // the batch that made the node, which may change it
}

// editToken names one batch of changes (one Bans.Apply); nil is a batch
// of one change. It is not empty, so that each is a distinct pointer.
type editToken struct{ _ byte }

// trieSlot is a subtree or a leaf; exactly one is set.
type trieSlot struct {
	sub  *trieNode
	leaf *trieLeaf
}

// trieLeaf is one key. Keys whose 64-bit hashes are equal share a slot as
// a list.
type trieLeaf struct {
	hash uint64
	key  string
	seq  uint64
	next *trieLeaf
}

func hashName(seed maphash.Seed, key string) uint64 { return maphash.String(seed, key) }

// get returns the sequence number stored for key, whose hash is h.
func (m *banMap) get(h uint64, key string) (uint64, bool) {
	n := m.root
	for shift := uint(0); n != nil; shift += trieBits {
		bit := uint32(1) << ((h >> shift) & trieMask)
		if n.bitmap&bit == 0 {
			return 0, false
		}
		s := &n.slots[bits.OnesCount32(n.bitmap&(bit-1))]
		if s.leaf != nil {
			for l := s.leaf; l != nil; l = l.next {
				if l.hash == h && l.key == key {
					return l.seq, true
				}
			}
			return 0, false
		}
		n = s.sub
	}
	return 0, false
}

// set returns m with key (hash h) mapped to seq. Nodes made under edit
// may be changed in place.
func (m banMap) set(edit *editToken, h uint64, key string, seq uint64) banMap {
	root, added := setNode(edit, m.root, 0, &trieLeaf{hash: h, key: key, seq: seq})
	m.root = root
	if added {
		m.n++
	}
	return m
}

func setNode(edit *editToken, n *trieNode, shift uint, l *trieLeaf) (*trieNode, bool) {
	bit := uint32(1) << ((l.hash >> shift) & trieMask)
	if n == nil {
		return &trieNode{bitmap: bit, slots: []trieSlot{{leaf: l}}, edit: edit}, true
	}
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	mine := edit != nil && n.edit == edit
	if n.bitmap&bit == 0 {
		if mine {
			n.slots = slices.Insert(n.slots, i, trieSlot{leaf: l})
			n.bitmap |= bit
			return n, true
		}
		slots := make([]trieSlot, len(n.slots)+1)
		copy(slots, n.slots[:i])
		slots[i] = trieSlot{leaf: l}
		copy(slots[i+1:], n.slots[i:])
		return &trieNode{bitmap: n.bitmap | bit, slots: slots, edit: edit}, true
	}
	var ns trieSlot
	added := true
	switch s := n.slots[i]; {
	case s.sub != nil:
		ns.sub, added = setNode(edit, s.sub, shift+trieBits, l)
	case s.leaf.hash == l.hash:
		ns.leaf, added = setChain(s.leaf, l)
	default:
		// Two hashes share this slot: push the old leaf one level down
		// (the hashes differ, so they part within 64 bits).
		down := shift + trieBits
		sub := &trieNode{bitmap: 1 << ((s.leaf.hash >> down) & trieMask), slots: []trieSlot{{leaf: s.leaf}}, edit: edit}
		ns.sub, _ = setNode(edit, sub, down, l)
	}
	if mine {
		n.slots[i] = ns
		return n, added
	}
	slots := slices.Clone(n.slots)
	slots[i] = ns
	return &trieNode{bitmap: n.bitmap, slots: slots, edit: edit}, added
}

// setChain returns the list c with l's key mapped to l's seq.
func setChain(c, l *trieLeaf) (*trieLeaf, bool) {
	added := true
	out := l
	for x := c; x != nil; x = x.next {
		if x.key == l.key {
			added = false
			continue
		}
		out = &trieLeaf{hash: x.hash, key: x.key, seq: x.seq, next: out}
	}
	return out, added
}

// del returns m without key (hash h). Nodes made under edit may be
// changed in place.
func (m banMap) del(edit *editToken, h uint64, key string) banMap {
	root, found := delNode(edit, m.root, 0, h, key)
	if found {
		m.root = root
		m.n--
	}
	return m
}

func delNode(edit *editToken, n *trieNode, shift uint, h uint64, key string) (*trieNode, bool) {
	if n == nil {
		return nil, false
	}
	bit := uint32(1) << ((h >> shift) & trieMask)
	if n.bitmap&bit == 0 {
		return n, false
	}
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	var ns trieSlot
	switch s := n.slots[i]; {
	case s.sub != nil:
		sub, found := delNode(edit, s.sub, shift+trieBits, h, key)
		if !found {
			return n, false
		}
		switch {
		case sub == nil:
		case len(sub.slots) == 1 && sub.slots[0].leaf != nil:
			// A lone leaf moves up: lookups compare whole hashes, so
			// a leaf may sit at any depth its hash leads to.
			ns.leaf = sub.slots[0].leaf
		default:
			ns.sub = sub
		}
	default:
		chain, found := delChain(s.leaf, h, key)
		if !found {
			return n, false
		}
		ns.leaf = chain
	}
	mine := edit != nil && n.edit == edit
	if ns.sub == nil && ns.leaf == nil {
		if len(n.slots) == 1 {
			return nil, true
		}
		if mine {
			n.slots = slices.Delete(n.slots, i, i+1)
			n.bitmap &^= bit
			return n, true
		}
		slots := make([]trieSlot, len(n.slots)-1)
		copy(slots, n.slots[:i])
		copy(slots[i:], n.slots[i+1:])
		return &trieNode{bitmap: n.bitmap &^ bit, slots: slots, edit: edit}, true
	}
	if mine {
		n.slots[i] = ns
		return n, true
	}
	slots := slices.Clone(n.slots)
	slots[i] = ns
	return &trieNode{bitmap: n.bitmap, slots: slots, edit: edit}, true
}

// delChain returns the list c without key.
func delChain(c *trieLeaf, h uint64, key string) (*trieLeaf, bool) {
	found := false
	var out *trieLeaf
	for x := c; x != nil; x = x.next {
		if x.hash == h && x.key == key {
			found = true
			continue
		}
		out = &trieLeaf{hash: x.hash, key: x.key, seq: x.seq, next: out}
	}
	if !found {
		return c, false
	}
	return out, true
}
