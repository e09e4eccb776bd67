package model

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"
)

// Training resumed from a checkpoint (weights through model.safetensors, optimizer
// state, RNG state) takes exactly the steps the uninterrupted run takes, dropout
// included, with every optimizer; leaving out the optimizer or the RNG state changes them.
func TestResumeIsExact(t *testing.T) {
	lockThread(t)
	cfg := smallConfig(0.1)
	opts := Options{Task: Classify, NumLabels: 3}
	for _, oo := range []OptimizerOptions{
		{Name: "adamw", WeightDecay: 0.01},
		{Name: "sgd", WeightDecay: 0.01, Momentum: 0.9, Nesterov: true},
		{Name: "lamb", WeightDecay: 0.01},
	} {
		t.Run(oo.Name, func(t *testing.T) {
			lockThread(t)
			r := rand.New(rand.NewPCG(9, 9))
			m := newModel(t, cfg, opts, 1)
			batches := make([]*Batch, 5)
			for i := range batches {
				batches[i] = randomBatch(r, m, 16, []int{16, 11, 7, 14})
			}
			const lr = 5e-3
			opt := newOptimizer(t, m, oo)
			for _, b := range batches[:3] {
				trainStep(t, m, opt, b, lr)
			}
			dir := t.TempDir()
			if err := m.Save(dir, nil, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			state := opt.Export()
			rng, err := RNGState(gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range batches[3:] {
				trainStep(t, m, opt, b, lr)
			}
			want := flatCopy(m)

			resume := func(restoreOpt, restoreRNG bool) []float32 {
				m := newModel(t, cfg, opts, 7) // another seed, another generator state
				if _, err := m.LoadWeights(filepath.Join(dir, SafetensorsFile)); err != nil {
					t.Fatal(err)
				}
				opt := newOptimizer(t, m, oo)
				if restoreOpt {
					if err := opt.Import(state); err != nil {
						t.Fatal(err)
					}
				}
				if restoreRNG {
					if err := SetRNGState(gotch.CPU, rng); err != nil {
						t.Fatal(err)
					}
				}
				for _, b := range batches[3:] {
					trainStep(t, m, opt, b, lr)
				}
				return flatCopy(m)
			}
			if i := firstDiff(resume(true, true), want); i >= 0 {
				t.Fatalf("resumed run differs first at flat index %d", i)
			}
			if firstDiff(resume(false, true), want) < 0 {
				t.Fatal("resuming without the optimizer state gave the same weights: the test cannot see it")
			}
			if firstDiff(resume(true, false), want) < 0 {
				t.Fatal("resuming without the RNG state gave the same weights: dropout is not exercised")
			}
		})
	}
}

func newOptimizer(t *testing.T, m *Model, oo OptimizerOptions) Optimizer {
	t.Helper()
	opt, err := NewOptimizer(m.Params, oo)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}
