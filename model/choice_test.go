package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Multiple choice's loss is the cross-entropy of each example's choice scores (the
// scores inference gives, in rows of Batch.Choices), and backward gives its derivative.
func TestChoiceLossAndGradient(t *testing.T) {
	lockThread(t)
	m := newModel(t, smallConfig(0), Options{Task: Choice}, 7)
	r := rand.New(rand.NewPCG(7, 8))
	b := randomBatch(r, m, 12, []int{12, 5, 9, 3, 7, 11})
	b.Choices, b.Labels = 3, []int64{2, 0} // two examples of three choices
	labels := b.Labels
	b.Labels = nil
	scores, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	b.Labels = labels
	var want float64
	for e, l := range labels {
		row := scores[3*e : 3*e+3]
		var z float64
		for _, s := range row {
			z += math.Exp(float64(s))
		}
		want += (math.Log(z) - float64(row[l])) / 2
	}
	if got := evalLoss(t, m, b); math.Abs(got-want) > 1e-5 {
		t.Fatalf("loss %v, from the scores %v", got, want)
	}
	checkGradient(t, m, b, bertProbes, 12)

	b.Choices = 4 // 6 sequences are not examples of 4
	if _, err := m.Forward(b, true, false); err == nil {
		t.Error("a batch that is not whole examples trained")
	}
}
