package api

import (
	"math/rand/v2"
	"testing"
)

// TestWorkDoneRanges: units marked done in any order, some twice, read back as a
// bitmap would: IsDone and NextUndone agree with one, and the ranges stay sorted,
// disjoint and apart.
func TestWorkDoneRanges(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 3))
		w := NewWork(1000+r.IntN(5000), 64)
		done := make([]bool, w.Units)
		for range r.IntN(3 * w.Units) {
			i := r.IntN(w.Units)
			w.SetDone(i)
			done[i] = true
		}
		for i, d := range done {
			next := i
			for next < w.Units && done[next] {
				next++
			}
			if w.IsDone(i) != d || w.NextUndone(i) != next {
				t.Fatalf("seed %d: unit %d: IsDone %v, NextUndone %d; want %v, %d", seed, i, w.IsDone(i), w.NextUndone(i), d, next)
			}
		}
		for k, rg := range w.Done {
			if rg[0] > rg[1] || k > 0 && w.Done[k-1][1]+1 >= rg[0] {
				t.Fatalf("seed %d: ranges %v", seed, w.Done)
			}
		}
		if w.UnitRecords(w.Units-1) != w.Records-64*(w.Units-1) {
			t.Fatalf("seed %d: the last unit of %d records has %d", seed, w.Records, w.UnitRecords(w.Units-1))
		}
	}
}

// TestWorkLeases: leases stay sorted by unit; one dropped is gone.
func TestWorkLeases(t *testing.T) {
	w := NewWork(100, 10)
	for _, i := range []int{5, 2, 8, 2} {
		w.AddLease(i).Node = "n"
	}
	if len(w.Leases) != 3 || w.Leases[0].Unit != 2 || w.Leases[2].Unit != 8 || w.Lease(5) == nil || w.Lease(3) != nil {
		t.Fatalf("leases %+v", w.Leases)
	}
	w.DropLease(5)
	if w.Lease(5) != nil || len(w.Leases) != 2 {
		t.Fatalf("leases %+v after dropping 5", w.Leases)
	}
}
