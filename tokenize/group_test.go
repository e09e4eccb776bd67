package tokenize

import (
	"slices"
	"testing"
)

func TestLengthGroupedOrder(t *testing.T) {
	tk := bert(t, true)
	var lengths []int
	for _, s := range sst2Sentences(t, "dev.tsv") {
		e, err := tk.Encode(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		lengths = append(lengths, e.Len())
	}
	const batch = 32
	order := LengthGroupedOrder(lengths, batch, 7)

	if sorted := slices.Sorted(slices.Values(order)); !slices.Equal(sorted, perm(len(lengths))) {
		t.Fatal("not a permutation")
	}
	if !slices.Equal(order, LengthGroupedOrder(lengths, batch, 7)) {
		t.Error("same seed, different order")
	}
	if slices.Equal(order, LengthGroupedOrder(lengths, batch, 8)) {
		t.Error("different seeds, same order")
	}
	if lengths[order[0]] != slices.Max(lengths) {
		t.Errorf("first example has length %d, the longest is %d", lengths[order[0]], slices.Max(lengths))
	}
	// Within each megabatch of 50 batches (bar the swapped first element) lengths fall.
	for from := 0; from < len(order); from += 50 * batch {
		mb := order[from+1 : min(from+50*batch, len(order))]
		if !slices.IsSortedFunc(mb, func(a, b int) int { return lengths[b] - lengths[a] }) {
			t.Fatalf("megabatch at %d is not sorted by length", from)
		}
	}
	// The point of it: far less padding than batches in random order.
	random := LengthGroupedOrder(make([]int, len(lengths)), batch, 7)
	grouped, shuffled := padding(lengths, order, batch), padding(lengths, random, batch)
	t.Logf("padding tokens per epoch: grouped %d, random %d", grouped, shuffled)
	if grouped*5 > shuffled {
		t.Errorf("grouped batches pad %d tokens, random ones %d", grouped, shuffled)
	}
}

func TestLengthGroupedOrderSmall(t *testing.T) {
	if got := LengthGroupedOrder(nil, 4, 1); len(got) != 0 {
		t.Errorf("empty: %v", got)
	}
	got := LengthGroupedOrder([]int{3, 9, 1}, 8, 1)
	if got[0] != 1 || !slices.Equal(slices.Sorted(slices.Values(got)), []int{0, 1, 2}) {
		t.Errorf("small: %v", got)
	}
}

func perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// padding counts the pad tokens of dynamic padding over batches cut from order.
func padding(lengths, order []int, batch int) int {
	pad := 0
	for from := 0; from < len(order); from += batch {
		b := order[from:min(from+batch, len(order))]
		longest := 0
		for _, i := range b {
			longest = max(longest, lengths[i])
		}
		for _, i := range b {
			pad += longest - lengths[i]
		}
	}
	return pad
}
