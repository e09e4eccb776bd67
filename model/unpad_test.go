package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Packing orders the sequences longest first and groups them for attention while
// their tokens fill groupFill of the group's [N, L].
func TestPacking(t *testing.T) {
	b := &Batch{B: 3, L: 4, AttentionMask: []int64{1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0}}
	ext := additiveMask(ts.MustOfSlice(b.AttentionMask), b)
	defer ext.MustDrop()
	p := newPacking(b, ext, gotch.CPU)
	if p == nil {
		t.Fatal("a padded batch got no packing")
	}
	defer p.drop()
	// Lengths 2, 4, 1: packed as 4, 2 (6 of 8 filled), then 1 on its own (7 of 12).
	if idx, firsts, unorder := p.idx.Int64Values(), p.firsts.Int64Values(), p.unorder.Int64Values(); p.T != 7 ||
		!slices.Equal(idx, []int64{4, 5, 6, 7, 0, 1, 8}) || !slices.Equal(firsts, []int64{0, 4, 6}) || !slices.Equal(unorder, []int64{1, 0, 2}) {
		t.Fatalf("packing: T %d, idx %v, firsts %v, unorder %v", p.T, idx, firsts, unorder)
	}
	type group struct{ N, L, first, off, T int64 }
	var got []group
	for _, g := range p.groups {
		got = append(got, group{g.N, g.L, g.first, g.off, g.T})
		if sz := g.ext.MustSize(); !slices.Equal(sz, []int64{g.N, 1, 1, g.L}) {
			t.Errorf("group %v: mask of shape %v", got[len(got)-1], sz)
		}
	}
	if want := []group{{2, 4, 0, 0, 6}, {1, 1, 2, 6, 1}}; !slices.Equal(got, want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	if idx := p.groups[0].idx.Int64Values(); !slices.Equal(idx, []int64{0, 1, 2, 3, 4, 5}) {
		t.Errorf("first group's positions %v", idx)
	}
	for _, mask := range [][]int64{{1, 1}, {0, 1}} {
		b := &Batch{B: 1, L: 2, AttentionMask: mask}
		ext := additiveMask(ts.MustOfSlice(mask), b)
		if newPacking(b, ext, gotch.CPU) != nil {
			t.Errorf("mask %v got a packing: no padding, or padding in a first position (the head reads it)", mask)
		}
		ext.MustDrop()
	}
}

// The layers on packed tokens give every family and head the padded layers' outputs
// where anything reads them, up to float rounding: a sequence head's first positions,
// a token head's real tokens. The second batch is padded past its longest sequence
// (--padding max_length), and has lengths that tie.
func TestPackedLayersMatchPadded(t *testing.T) {
	lockThread(t)
	for _, mt := range modelTypes {
		for _, opts := range familyTasks {
			m := newModel(t, familyConfig(t, mt, 0.1), opts, 3)
			for _, shape := range []struct {
				L    int
				lens []int
			}{{24, []int{24, 3, 17, 9}}, {40, []int{5, 12, 12, 30, 7, 5}}} {
				b := randomBatch(rand.New(rand.NewPCG(5, 6)), m, shape.L, shape.lens)
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
					t.Fatalf("%s %s %v: %d logits packed, %d padded", mt, opts.Task, shape.lens, len(got), len(want))
				}
				for i := range want {
					if underPadding(m, b, len(want), i) {
						continue
					}
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-5 {
						t.Errorf("%s %s %v: logit %d: packed %g, padded %g", mt, opts.Task, shape.lens, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// underPadding says whether logit i of the n that m's head gives for b is a token
// head's under the padding: transformers computes those from the padding's rows, packed
// inference from none (unpad.go), and only a loss reads them.
func underPadding(m *Model, b *Batch, n, i int) bool {
	switch m.Opts.Task {
	case NER, QA: // a row per token
	case MLM:
		if b.Labels != nil {
			return false // the masked tokens' rows alone
		}
	default:
		return false // a row per sequence
	}
	return b.AttentionMask[i/(n/(b.B*b.L))] == 0
}

// paddedLogits runs b through the padded layers, as training does, with dropout off:
// the path packed inference replaced. The caller drops the logits.
func paddedLogits(m *Model, b *Batch) *ts.Tensor {
	if m.modern != nil || m.deberta != nil { // keeping the attentions keeps it padded
		out, err := m.Forward(b, false, true)
		if err != nil {
			panic(err)
		}
		for _, a := range out.Attentions {
			a.MustDrop()
		}
		return out.Logits
	}
	drop, _ := newDropper(false, m.Opts.Device)
	shape := []int64{int64(b.B), int64(b.L)}
	ids := ts.MustOfSlice(b.InputIDs).MustView(shape, true)
	mask := ts.MustOfSlice(b.AttentionMask).MustView(shape, true)
	ext := additiveMask(mask, b)
	h := m.layersPadded(m.emb.fwd(m, b, ids, drop), ext, b, drop, false, &Output{})
	logits := m.head.fwd(h, mask, drop)
	for _, x := range []*ts.Tensor{ids, mask, ext, h} {
		x.MustDrop()
	}
	return logits
}
