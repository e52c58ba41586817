// Package treap is an immutable balanced search tree over string keys, the
// etcd store's mirror: every change copies the path from the root
// (a persistent tree), so a reader that holds a root sees one state for as
// long as it likes without any lock, while a writer builds the next one.
//
// It is a treap: a binary search tree by key and a heap by priority, where
// a node's priority is a seeded hash of its key. Random priorities keep the
// expected depth logarithmic, and deriving them from the key keeps the
// shape a function of the key set alone.
package treap

import "hash/maphash"

// seed makes the priorities unpredictable from outside, so that no chosen
// set of keys can unbalance the tree.
var seed = maphash.MakeSeed()

// Node is one key of a tree, and the tree it roots; nil is the empty tree.
// Nodes in a tree must not be changed.
type Node[V any] struct {
	Key   string
	Value V

	prio        uint64
	left, right *Node[V]
}

// New returns a fresh node for Put.
func New[V any](key string, v V) *Node[V] {
	return &Node[V]{Key: key, Value: v, prio: maphash.String(seed, key)}
}

// above reports whether a belongs above b in the heap order of the treap.
// Ties on priority are broken by key so the order is strict.
func above[V any](a, b *Node[V]) bool {
	return a.prio > b.prio || a.prio == b.prio && a.Key < b.Key
}

// Put returns the tree n with nn inserted or replacing the node with the
// same key; n is unchanged. nn must come fresh from New and becomes part of
// the result.
func Put[V any](n, nn *Node[V]) *Node[V] {
	if n == nil {
		return nn
	}
	if nn.Key == n.Key {
		nn.left, nn.right = n.left, n.right
		return nn
	}
	// The priority is a hash of the key, so if nn's key is in the subtree,
	// every node on the way to it is above nn and this split never sees it.
	if above(nn, n) {
		nn.left, nn.right = split(n, nn.Key)
		return nn
	}
	c := *n
	if nn.Key < n.Key {
		c.left = Put(n.left, nn)
	} else {
		c.right = Put(n.right, nn)
	}
	return &c
}

// split returns the keys of n below k and above k (k is not in n).
func split[V any](n *Node[V], k string) (*Node[V], *Node[V]) {
	if n == nil {
		return nil, nil
	}
	c := *n
	if n.Key < k {
		var r *Node[V]
		c.right, r = split(n.right, k)
		return &c, r
	}
	var l *Node[V]
	l, c.left = split(n.left, k)
	return l, &c
}

// Delete returns n without key k, and whether k was there; n is unchanged.
func Delete[V any](n *Node[V], k string) (*Node[V], bool) {
	if n == nil {
		return nil, false
	}
	if k == n.Key {
		return merge(n.left, n.right), true
	}
	c := *n
	var found bool
	if k < n.Key {
		c.left, found = Delete(n.left, k)
	} else {
		c.right, found = Delete(n.right, k)
	}
	if !found {
		return n, false
	}
	return &c, true
}

// merge joins a and b, every key of a being below every key of b.
func merge[V any](a, b *Node[V]) *Node[V] {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if above(a, b) {
		c := *a
		c.right = merge(a.right, b)
		return &c
	}
	c := *b
	c.left = merge(a, b.left)
	return &c
}

// Get returns the node of k in n, or nil.
func Get[V any](n *Node[V], k string) *Node[V] {
	for n != nil {
		switch {
		case k < n.Key:
			n = n.left
		case k > n.Key:
			n = n.right
		default:
			return n
		}
	}
	return nil
}

// Ascend calls fn for the nodes with keys at or after from, in key order,
// until fn returns false. It returns false if fn did.
func Ascend[V any](n *Node[V], from string, fn func(*Node[V]) bool) bool {
	for n != nil {
		if n.Key < from {
			n = n.right
			continue
		}
		if !Ascend(n.left, from, fn) || !fn(n) {
			return false
		}
		n = n.right
	}
	return true
}
