package stream

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/shard"
)

// orderPlan is a plan of n labeltext records in blocks of br, a fifth held out.
func orderPlan(t testing.TB, n, br int) *Plan {
	t.Helper()
	var b strings.Builder
	for i := range n {
		b.WriteString([]string{"a", "b"}[i%2] + " text\n")
	}
	return build(t, dataset{"order", shard.Spec{Format: shard.LabelText}, writeFile(t, "o.txt", b.String())}, Options{BlockRecords: br, EvalSplit: 0.2})
}

func trainIDs(p *Plan) []int32 {
	var ids []int32
	for i := range p.Records {
		if !p.IsHeldOut(i) {
			ids = append(ids, int32(i))
		}
	}
	return ids
}

func TestOrderIsPermutationOfTrainingRecords(t *testing.T) {
	for _, c := range [][3]int{{2, 1, 1}, {50, 1, 3}, {100, 7, 1}, {100, 7, 4}, {1000, 16, 5}, {1000, 1000, 2}, {997, 32, 100}} {
		p := orderPlan(t, c[0], c[1])
		got := slices.Clone(p.Order(42, 3, c[2]))
		slices.Sort(got)
		if want := trainIDs(p); !slices.Equal(got, want) {
			t.Fatalf("n=%d blocks of %d, window %d: not a permutation of the %d training records", c[0], c[1], c[2], len(want))
		}
	}
}

// TestOrderGolden pins the order, so a change of generator, Go version or definition
// cannot go unnoticed: nodes of different builds must agree.
func TestOrderGolden(t *testing.T) {
	p := orderPlan(t, 40, 4)
	got := p.Order(7, 2, 3)
	want := []int32{39, 31, 10, 11, 28, 9, 37, 36, 29, 7, 21, 22, 16, 20, 5, 4, 6, 19, 18, 17, 26, 1, 25, 27, 34, 32, 35, 3, 2, 33, 14, 12, 15}
	if !slices.Equal(got, want) {
		t.Fatalf("order changed:\n got %#v\nwant %#v", got, want)
	}
	if !slices.Equal(p.Order(7, 2, 3), got) {
		t.Fatal("the order differs between two calls")
	}
}

// TestOrderIsThePackageDoc follows the package doc's definition step by step.
func TestOrderIsThePackageDoc(t *testing.T) {
	for _, c := range [][3]int{{40, 4, 3}, {300, 7, 2}, {300, 300, 1}, {1000, 9, 1}} {
		p := orderPlan(t, c[0], c[1])
		seed, epoch, w := int64(c[0]), c[1], c[2]
		var want []int32
		perm := shard.Order(len(p.Blocks), uint64(seed), epoch, -1)
		for win := 0; win*w < len(perm); win++ {
			var l []int32
			for _, b := range perm[win*w : min((win+1)*w, len(perm))] {
				for id := b * c[1]; id < min((b+1)*c[1], c[0]); id++ {
					if !HeldOut(id, 0.2) {
						l = append(l, int32(id))
					}
				}
			}
			for _, q := range shard.Order(len(l), uint64(seed), epoch, win) {
				want = append(want, l[q])
			}
		}
		if got := p.Order(seed, epoch, w); !slices.Equal(got, want) {
			t.Fatalf("%v: the order is not the documented one", c)
		}
	}
}

func TestOrderDependsOnSeedAndEpoch(t *testing.T) {
	p := orderPlan(t, 500, 10)
	base := p.Order(1, 0, 4)
	for _, o := range [][]int32{p.Order(2, 0, 4), p.Order(1, 1, 4), p.Order(1, 0, 3)} {
		if slices.Equal(o, base) {
			t.Fatal("another seed, epoch or window gives the same order")
		}
	}
	// A plan read back from JSON orders alike (nodes order what the coordinator planned).
	q := roundTrip(t, p)
	if !slices.Equal(q.Order(1, 0, 4), base) {
		t.Fatal("the plan orders differently after JSON")
	}
}

// TestOrderLocality: each window of the order draws from windowBlocks blocks only.
func TestOrderLocality(t *testing.T) {
	p := orderPlan(t, 2000, 25)
	for _, w := range []int{1, 2, 5} {
		e := p.Epoch(5, 1, w)
		order := p.Order(5, 1, w)
		start := 0
		for _, end := range e.ends {
			blocks := map[int]bool{}
			for _, id := range order[start:end] {
				blocks[p.BlockOf(int(id))] = true
			}
			if len(blocks) > w {
				t.Fatalf("window of %d blocks: positions %d..%d read %d blocks", w, start, end, len(blocks))
			}
			start = end
		}
		// And records of one block are spread over its window, not kept in file order.
		if w > 1 && slices.IsSorted(order[:e.ends[0]]) {
			t.Fatalf("window %d: first window in file order", w)
		}
	}
}

// TestEpochBatchesMatchOrder: the windowed Epoch gives the order's batches.
func TestEpochBatchesMatchOrder(t *testing.T) {
	p := orderPlan(t, 1500, 13)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, w := range []int{1, 3, 200} {
		order := p.Order(11, 4, w)
		e := p.Epoch(11, 4, w)
		if e.Len() != len(order) {
			t.Fatalf("Len %d, order of %d", e.Len(), len(order))
		}
		for range 200 {
			pos, size := rng.IntN(len(order)+1), 1+rng.IntN(300)
			if got := e.Batch(pos, size); !slices.Equal(got, Batch(order, pos, size)) {
				t.Fatalf("window %d: batch %d at %d differs", w, size, pos)
			}
		}
	}
}

func TestPiece(t *testing.T) {
	batch := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	var got [][]int32
	for r := range 4 {
		got = append(got, Piece(batch, 4, r))
	}
	if want := [][]int32{{0, 1, 2}, {3, 4, 5}, {6, 7}, {8, 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pieces %v, want %v", got, want)
	}
	if p := Piece(batch[:2], 3, 2); len(p) != 0 {
		t.Fatalf("a rank beyond a short batch got %v", p)
	}
}

// TestElastic is the central property: for any number of ranks, the pieces of every
// batch concatenate to the batch and an epoch covers every training record exactly
// once; and ranks changing mid-epoch (survivors resume at the same position) still
// cover every record exactly once.
func TestElastic(t *testing.T) {
	p := orderPlan(t, 1000, 16)
	order := p.Order(3, 0, 4)
	want := trainIDs(p)
	check := func(what string, seen []int32) {
		t.Helper()
		slices.Sort(seen)
		if !slices.Equal(seen, want) {
			t.Fatalf("%s: %d records seen, want each of %d once", what, len(seen), len(want))
		}
	}
	for _, size := range []int{1, 7, 32, 100, len(order) + 5} {
		for n := 1; n <= 5; n++ {
			var seen []int32
			for pos := 0; pos < len(order); {
				batch := Batch(order, pos, size)
				var cat []int32
				for r := range n {
					piece := Piece(batch, n, r)
					if d := len(piece) - len(batch)/n; d < 0 || d > 1 {
						t.Fatalf("piece of %d from a batch of %d among %d", len(piece), len(batch), n)
					}
					cat = append(cat, piece...)
				}
				if !slices.Equal(cat, batch) {
					t.Fatalf("n=%d: pieces do not concatenate to the batch", n)
				}
				seen = append(seen, cat...)
				pos += len(batch)
			}
			check("fixed ranks", seen)
		}
	}
	// Ranks change at random batches; each generation's ranks read with Epoch, as
	// nodes that do not hold the whole order do.
	rng := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		var seen []int32
		n := 1 + rng.IntN(5)
		e := p.Epoch(3, 0, 4)
		for pos := 0; pos < e.Len(); {
			if rng.IntN(4) == 0 {
				n = 1 + rng.IntN(5)
			}
			batch := e.Batch(pos, 24)
			for r := range n {
				seen = append(seen, Piece(batch, n, r)...)
			}
			pos += len(batch)
		}
		check("changing ranks", seen)
	}
}

func roundTrip(t testing.TB, p *Plan) *Plan {
	t.Helper()
	b, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := q.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	return &q
}

func TestWeightedPiece(t *testing.T) {
	batch := make([]int32, 100)
	for i := range batch {
		batch[i] = int32(i)
	}
	for _, ws := range [][]float64{{1, 1, 1}, {2, 1, 1}, {1, 3}, {0.5, 0.25, 0.25, 1e-9}, {1}, {1, 0}} {
		var got []int32
		var sizes []int
		for r := range ws {
			p := WeightedPiece(batch, ws, r)
			got = append(got, p...)
			sizes = append(sizes, len(p))
		}
		if len(got) != len(batch) {
			t.Fatalf("weights %v: pieces of %v make %d of %d", ws, sizes, len(got), len(batch))
		}
		for i, id := range got {
			if id != int32(i) {
				t.Fatalf("weights %v: pieces out of order at %d", ws, i)
			}
		}
		if ws[0] == 2 && (sizes[0] != 50 || sizes[1] != 25) {
			t.Fatalf("weights %v: sizes %v", ws, sizes)
		}
	}
	if p := WeightedPiece(batch, []float64{1, 0}, 0); len(p) != 50 {
		t.Fatalf("a zero weight should fall back to an even cut, got %d", len(p))
	}
}
