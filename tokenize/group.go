package tokenize

import (
	"math/rand/v2"
	"slices"
)

// LengthGroupedOrder is an epoch's order of example indices that puts examples of
// similar length in the same batch, as HF's group_by_length sampler does: shuffle
// (seeded), cut into megabatches of 50 batches (fewer for small data), sort each
// megabatch longest first, and move the longest example of all to the front so a
// batch too big for memory fails at once. Consecutive runs of batchSize indices
// are the batches; the same seed gives the same order.
func LengthGroupedOrder(lengths []int, batchSize int, seed uint64) []int {
	batchSize = max(batchSize, 1)
	order := rand.New(rand.NewPCG(seed, 0)).Perm(len(lengths))
	mult := max(min(len(lengths)/(batchSize*4), 50), 1)
	mega := mult * batchSize
	maxAt := -1
	for from := 0; from < len(order); from += mega {
		mb := order[from:min(from+mega, len(order))]
		slices.SortStableFunc(mb, func(a, b int) int { return lengths[b] - lengths[a] })
		if maxAt < 0 || lengths[mb[0]] > lengths[order[maxAt]] {
			maxAt = from
		}
	}
	if maxAt > 0 {
		order[0], order[maxAt] = order[maxAt], order[0]
	}
	return order
}
