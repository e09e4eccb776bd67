package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// logitsOf runs b in eval mode and returns the logits of sequence i: its row (sequence
// tasks) or its first n positions (token tasks), flattened.
func logitsOf(t *testing.T, m *Model, b *Batch, i, n int) []float32 {
	t.Helper()
	logits, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	row := len(logits) / b.B
	if m.Opts.Task == NER || m.Opts.Task == QA {
		return logits[i*row : i*row+n*row/b.L]
	}
	return logits[i*row : (i+1)*row]
}

// A sequence's logits do not depend on the batch it is in, nor on how much padding
// (with arbitrary ids under it) follows it.
func TestPaddingInvariance(t *testing.T) {
	for _, tc := range taskCases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			m := newModel(t, smallConfig(0.1), tc.opts, 1)
			r := rand.New(rand.NewPCG(1, 2))
			lens := []int{20, 7, 33}
			batch := randomBatch(r, m, 40, lens)
			for i, n := range lens {
				alone := &Batch{B: 1, L: n, InputIDs: batch.InputIDs[i*40 : i*40+n],
					TokenTypeIDs: batch.TokenTypeIDs[i*40 : i*40+n], AttentionMask: batch.AttentionMask[i*40 : i*40+n]}
				want := logitsOf(t, m, alone, 0, n)
				got := logitsOf(t, m, batch, i, n)
				worst := 0.0
				for j := range want {
					worst = max(worst, math.Abs(float64(got[j]-want[j])))
				}
				if worst > 1e-5 {
					t.Errorf("sequence %d (length %d): logits in the batch differ from alone by up to %g", i, n, worst)
				}
			}
		})
	}
}
