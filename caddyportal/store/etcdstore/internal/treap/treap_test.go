package treap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// check verifies the search-tree and heap orders of n and returns its keys
// in order and its depth.
func check(t *testing.T, n *Node[int]) (keys []string, depth int) {
	t.Helper()
	var walk func(n *Node[int], lo, hi *string) int
	walk = func(n *Node[int], lo, hi *string) int {
		if n == nil {
			return 0
		}
		if lo != nil && n.Key <= *lo || hi != nil && n.Key >= *hi {
			t.Fatalf("key %q out of search order", n.Key)
		}
		for _, c := range []*Node[int]{n.left, n.right} {
			if c != nil && above(c, n) {
				t.Fatalf("child %q above its parent %q in heap order", c.Key, n.Key)
			}
		}
		l := walk(n.left, lo, &n.Key)
		keys = append(keys, n.Key)
		r := walk(n.right, &n.Key, hi)
		return 1 + max(l, r)
	}
	depth = walk(n, nil, nil)
	return keys, depth
}

// contents returns the tree's key-value pairs, read through Get.
func contents(n *Node[int], keys []string) map[string]int {
	m := map[string]int{}
	for _, k := range keys {
		if g := Get(n, k); g != nil {
			m[k] = g.Value
		}
	}
	return m
}

// TestAgainstMap runs random puts and deletes against a map and checks,
// after each step, the orders, the contents, and that every earlier state
// is unchanged (the tree is persistent).
func TestAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var universe []string
	for i := range 300 {
		universe = append(universe, fmt.Sprintf("k/%03d", i))
	}
	type state struct {
		root *Node[int]
		want map[string]int
	}
	var history []state
	var root *Node[int]
	want := map[string]int{}
	for step := range 3000 {
		k := universe[rng.IntN(len(universe))]
		if rng.IntN(3) == 0 {
			var found bool
			before := root
			root, found = Delete(root, k)
			_, had := want[k]
			if found != had {
				t.Fatalf("step %d: Delete(%q) found = %v, want %v", step, k, found, had)
			}
			if !found && root != before {
				t.Fatalf("step %d: Delete of a missing key built a new tree", step)
			}
			delete(want, k)
		} else {
			root = Put(root, New(k, step))
			want[k] = step
		}
		if step%100 == 0 {
			history = append(history, state{root, maps.Clone(want)})
		}
	}
	keys, depth := check(t, root)
	if !slices.Equal(keys, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("keys %v, want %v", keys, slices.Sorted(maps.Keys(want)))
	}
	// Expected depth is about 3 ln n (some 17 here); 40 means unbalanced.
	if depth > 40 {
		t.Errorf("depth %d for %d keys: the tree is not balanced", depth, len(keys))
	}
	for i, h := range history {
		check(t, h.root)
		if got := contents(h.root, universe); !maps.Equal(got, h.want) {
			t.Fatalf("state %d changed after later writes: %v, want %v", i, got, h.want)
		}
	}
}

func TestPutReplaces(t *testing.T) {
	var root *Node[int]
	for i, k := range []string{"b", "a", "c"} {
		root = Put(root, New(k, i))
	}
	old := root
	root = Put(root, New("a", 9))
	if g := Get(root, "a"); g == nil || g.Value != 9 {
		t.Fatalf("Get(a) after replacing = %v, want 9", g)
	}
	if g := Get(old, "a"); g == nil || g.Value != 1 {
		t.Fatalf("old tree's a = %v, want 1", g)
	}
	if keys, _ := check(t, root); !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("keys %v after replacing", keys)
	}
	if Get(root, "z") != nil || Get[int](nil, "a") != nil {
		t.Fatal("Get of a missing key found a node")
	}
}

func TestAscend(t *testing.T) {
	var root *Node[int]
	for i, k := range []string{"s/1", "a", "s/3", "s/2", "t", "s/"} {
		root = Put(root, New(k, i))
	}
	var got []string
	all := Ascend(root, "s/", func(n *Node[int]) bool {
		got = append(got, n.Key)
		return true
	})
	if want := []string{"s/", "s/1", "s/2", "s/3", "t"}; !all || !slices.Equal(got, want) {
		t.Fatalf("Ascend from s/ = %v, %v; want %v, true", got, all, want)
	}
	got = nil
	all = Ascend(root, "s/15", func(n *Node[int]) bool {
		got = append(got, n.Key)
		return n.Key < "s/3"
	})
	if want := []string{"s/2", "s/3"}; all || !slices.Equal(got, want) {
		t.Fatalf("Ascend from s/15 stopping after s/3 = %v, %v; want %v, false", got, all, want)
	}
	if !Ascend(nil, "", func(*Node[int]) bool { t.Fatal("visited a node of the empty tree"); return true }) {
		t.Fatal("Ascend of the empty tree stopped")
	}
}
