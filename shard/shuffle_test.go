package shard

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestOrder(t *testing.T) {
	a := Order(1000, 7, 3, 2)
	if !reflect.DeepEqual(a, Order(1000, 7, 3, 2)) {
		t.Fatal("same (seed, epoch, shard), different order")
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
			t.Fatal("a different epoch, shard or seed gave the same order")
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

// TestEpochResume: an epoch visits a shard's records in Order, reading each
// by random access exactly as the sequential reader does, and an epoch
// resumed at Done continues identically.
func TestEpochResume(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, gen := range []func(*rand.Rand, int) dataset{genCSV, genSQuAD, genCoNLL} {
		ds := gen(rng, 120)
		path := writeFile(t, ds.file, ds.data)
		plan, err := Split(ds.spec, path, 3)
		if err != nil {
			t.Fatal(err)
		}
		sh := plan.Shards[1]
		seq := readShard(t, ds.spec, sh)
		ix, err := OpenIndex(ds.spec, sh)
		if err != nil {
			t.Fatal(err)
		}
		if ix.Len() != len(seq) || ix.Len() != sh.Records {
			t.Fatalf("%s: index of %d records, shard has %d", ds.name, ix.Len(), len(seq))
		}
		order := Order(ix.Len(), 99, 5, sh.Index)
		full := drain(t, ix.Epoch(99, 5, 0))
		for i, r := range full {
			if !reflect.DeepEqual(r, seq[order[i]]) {
				t.Fatalf("%s: epoch record %d is %+v, want %+v", ds.name, i, r, seq[order[i]])
			}
		}
		ep := ix.Epoch(99, 5, 0)
		var rec Record
		for range len(full) / 2 {
			if err := ep.Next(&rec); err != nil {
				t.Fatal(err)
			}
		}
		rest := drain(t, ix.Epoch(99, 5, ep.Done()))
		if !same(rest, full[len(full)/2:]) {
			t.Fatalf("%s: resumed epoch differs", ds.name)
		}
		ix.Close()
	}
}
