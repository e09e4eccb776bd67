package shard

import (
	"reflect"
	"slices"
	"testing"
)

func TestOrder(t *testing.T) {
	a := Order(1000, 7, 3, 2)
	if !reflect.DeepEqual(a, Order(1000, 7, 3, 2)) {
		t.Fatal("same (seed, epoch, stream), different order")
	}
	sorted := slices.Clone(a)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatalf("not a permutation: %d at %d", v, i)
		}
	}
	for _, other := range [][]int{Order(1000, 7, 4, 2), Order(1000, 7, 3, 3), Order(1000, 8, 3, 2)} {
		if reflect.DeepEqual(a, other) {
			t.Fatal("a different epoch, stream or seed gave the same order")
		}
	}
	if slices.IsSorted(a) {
		t.Fatal("not shuffled")
	}
	// Pinned: checkpoints resume by position in this order, so it must never
	// change, with the Go version or otherwise.
	if got, want := Order(10, 1, 0, 0), []int{3, 4, 2, 0, 1, 9, 5, 7, 6, 8}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Order(10, 1, 0, 0) = %v, was %v", got, want)
	}
}
