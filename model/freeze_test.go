package model

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Frozen parameters sit past TrainEnd, where neither the optimizer nor the all-reduce
// reaches, and stay bit-identical through training; every other parameter moves.
func TestFreeze(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   Options
		frozen func(string) bool
	}{
		{"embeddings-and-layer-0", Options{Task: Classify, NumLabels: 2, Freeze: Freeze{Embeddings: true, Layers: 1}},
			func(n string) bool {
				return strings.HasPrefix(n, "bert.embeddings.") || strings.HasPrefix(n, "bert.encoder.layer.0.")
			}},
		{"base", Options{Task: Classify, NumLabels: 2, HeadHidden: 8, Freeze: Freeze{Base: true}},
			func(n string) bool { return strings.HasPrefix(n, "bert.") }},
		{"base-ner", Options{Task: NER, NumLabels: 3, Freeze: Freeze{Base: true}},
			func(n string) bool { return strings.HasPrefix(n, "bert.") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			lockThread(t)
			m := newModel(t, smallConfig(0.1), c.opts, 1)
			ps := m.Params
			var trainable int64
			for _, p := range ps.List() {
				frozen := c.frozen(p.Name)
				if p.Trainable == frozen {
					t.Fatalf("%s: trainable %v", p.Name, p.Trainable)
				}
				if frozen && p.Offset < ps.TrainEnd || !frozen && p.Offset+p.Numel > ps.TrainEnd {
					t.Fatalf("%s at [%d, %d), TrainEnd %d", p.Name, p.Offset, p.Offset+p.Numel, ps.TrainEnd)
				}
				if !frozen {
					trainable += p.Numel
				}
			}
			if trainable != ps.TrainEnd || int64(len(ps.GradSlice())) != ps.TrainEnd {
				t.Fatalf("%d trainable values, TrainEnd %d, gradient of %d", trainable, ps.TrainEnd, len(ps.GradSlice()))
			}

			moved := movedByTraining(t, m)
			for _, p := range ps.List() {
				if moved[p.Name] == c.frozen(p.Name) {
					t.Errorf("%s: moved %v after 4 steps", p.Name, moved[p.Name])
				}
			}
		})
	}
}

// movedByTraining runs 4 AdamW steps on random batches and says which of m's
// parameters changed.
func movedByTraining(t *testing.T, m *Model) map[string]bool {
	t.Helper()
	ps := m.Params
	before := flatCopy(m)
	opt := NewAdamW(ps, 0.01)
	r := rand.New(rand.NewPCG(1, 1))
	for range 4 {
		trainStep(t, m, opt, randomBatch(r, m, 16, []int{16, 9, 12}), 1e-2)
	}
	after := ps.FlatSlice()
	moved := map[string]bool{}
	for _, p := range ps.List() {
		moved[p.Name] = firstDiff(before[p.Offset:p.Offset+p.Numel], after[p.Offset:p.Offset+p.Numel]) >= 0
	}
	return moved
}
