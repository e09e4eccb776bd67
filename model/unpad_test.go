package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestPacking(t *testing.T) {
	b := &Batch{B: 3, L: 4, AttentionMask: []int64{1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0}}
	p := newPacking(b, gotch.CPU)
	if p == nil {
		t.Fatal("a padded batch got no packing")
	}
	defer p.drop()
	if idx, firsts := p.idx.Int64Values(), p.firsts.Int64Values(); p.T != 7 ||
		!slices.Equal(idx, []int64{0, 1, 4, 5, 6, 7, 8}) || !slices.Equal(firsts, []int64{0, 2, 6}) {
		t.Fatalf("packing: T %d, idx %v, firsts %v", p.T, idx, firsts)
	}
	if newPacking(&Batch{B: 1, L: 2, AttentionMask: []int64{1, 1}}, gotch.CPU) != nil {
		t.Error("a batch without padding got a packing")
	}
	if newPacking(&Batch{B: 1, L: 2, AttentionMask: []int64{0, 1}}, gotch.CPU) != nil {
		t.Error("a batch padded in a first position got a packing: the head reads it")
	}
}

// The layers on packed tokens give every family and head the padded layers' outputs
// where anything reads them, up to float rounding: a sequence head's first positions,
// a token head's real tokens.
func TestPackedLayersMatchPadded(t *testing.T) {
	lockThread(t)
	for _, mt := range modelTypes {
		for _, opts := range familyTasks {
			m := newModel(t, familyConfig(t, mt, 0.1), opts, 3)
			b := randomBatch(rand.New(rand.NewPCG(5, 6)), m, 24, []int{24, 3, 17, 9})
			b.Labels = nil                         // a loss would keep token heads padded
			out, err := m.Forward(b, false, false) // packed
			if err != nil {
				t.Fatal(err)
			}
			got := hostFloats(out.Logits)
			out.Logits.MustDrop()
			logits := paddedLogits(m, b)
			want := hostFloats(logits)
			logits.MustDrop()
			if len(got) != len(want) {
				t.Fatalf("%s %s: %d logits packed, %d padded", mt, opts.Task, len(got), len(want))
			}
			for i := range want {
				if underPadding(m, b, len(want), i) {
					continue
				}
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
					t.Errorf("%s %s: logit %d: packed %g, padded %g", mt, opts.Task, i, got[i], want[i])
				}
			}
		}
	}
}

// underPadding says whether logit i of the n that m's head gives for b is a token
// head's under the padding: transformers computes those from the padding's rows, packed
// inference from none (unpad.go), and only a loss reads them.
func underPadding(m *Model, b *Batch, n, i int) bool {
	return !m.head.first && b.AttentionMask[i/(n/(b.B*b.L))] == 0
}

// paddedLogits runs b through the padded layers, as training does, with dropout off:
// the path packed inference replaced. The caller drops the logits.
func paddedLogits(m *Model, b *Batch) *ts.Tensor {
	drop, _ := newDropper(false, m.Opts.Device)
	shape := []int64{int64(b.B), int64(b.L)}
	ids := ts.MustOfSlice(b.InputIDs).MustView(shape, true)
	mask := ts.MustOfSlice(b.AttentionMask).MustView(shape, true)
	ext := additiveMask(mask, b)
	h := m.layersPadded(m.emb.fwd(m, b, ids, drop), ext, b, drop, false, &Output{})
	logits := m.head.fwd(h, drop)
	for _, x := range []*ts.Tensor{ids, mask, ext, h} {
		x.MustDrop()
	}
	return logits
}
