package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The word embeddings' gradient is sparse on the CPU and adds into the flat gradient: two
// backward passes of one batch from one seed accumulate twice one pass's gradient, in
// the rows of the batch's real tokens and nowhere else.
func TestWordEmbeddingGradientAccumulates(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0.1), Options{Task: Classify, NumLabels: 2}, 3)
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 16, []int{16, 9})
	grad := func(passes int) []float32 {
		m.Params.ZeroGrad()
		for range passes {
			ManualSeed(5)
			if _, err := m.Backward(b, 1); err != nil {
				t.Fatal(err)
			}
		}
		return slices.Clone(m.Params.GradSlice())
	}
	one, two := grad(1), grad(2)
	for i := range one {
		if d := math.Abs(float64(two[i] - 2*one[i])); d > 1e-6*max(1e-3, math.Abs(float64(one[i]))) {
			t.Fatalf("gradient %d: %v after two passes, %v after one", i, two[i], one[i])
		}
	}
	word := m.Params.Get("bert.embeddings.word_embeddings.weight")
	used := map[int64]bool{} // padding reaches no output, so its rows get no gradient
	for i, id := range b.InputIDs {
		used[id] = used[id] || b.AttentionMask[i] == 1 && id != int64(m.Config.PadTokenID)
	}
	h := word.Shape[1]
	for row := range word.Shape[0] {
		g := one[word.Offset+row*h : word.Offset+(row+1)*h]
		if nonzero := slices.ContainsFunc(g, func(x float32) bool { return x != 0 }); nonzero != used[row] {
			t.Fatalf("word embedding row %d: gradient non-zero %v, a real token of the batch %v", row, nonzero, used[row])
		}
	}
}
