package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Matryoshka trains an embedding model whose vectors still work cut to their first
// dimensions (Matryoshka representation learning, as sentence-transformers'
// MatryoshkaLoss): the training loss is the sum, over Dims, of Weights[i] times the
// ranking loss of the vectors truncated to Dims[i], so that a vector's leading
// dimensions carry the most. Serving then trades accuracy for size by truncating
// (OpenAI's dimensions, sentence-transformers' truncate_dim).
type Matryoshka struct {
	Dims    []int
	Weights []float64 // one per dimension; empty: 1 each
}

// On says whether the loss is Matryoshka's.
func (mt Matryoshka) On() bool { return len(mt.Dims) > 0 }

// Check validates mt for a model of the given task and width (0: not known yet, as
// when a job spec is submitted) and returns it with the dimensions largest first (as
// sentence-transformers sorts them, so the sum adds in the same order) and a weight
// for each. Its errors begin with the job spec's field.
func (mt Matryoshka) Check(task Task, width int) (Matryoshka, error) {
	if !mt.On() {
		if len(mt.Weights) > 0 {
			return mt, fmt.Errorf("matryoshka_weights: given without matryoshka_dims")
		}
		return mt, nil
	}
	if task != Embed {
		return mt, fmt.Errorf("matryoshka_dims: widths of an embedding model's vectors (task embed); this model's task is %s", task)
	}
	if len(mt.Weights) > 0 && len(mt.Weights) != len(mt.Dims) {
		return mt, fmt.Errorf("matryoshka_weights: %d weights for %d matryoshka_dims", len(mt.Weights), len(mt.Dims))
	}
	type dw struct {
		d int
		w float64
	}
	pairs := make([]dw, len(mt.Dims))
	for i, d := range mt.Dims {
		w := 1.0
		if len(mt.Weights) > 0 {
			w = mt.Weights[i]
		}
		switch {
		case d < 1:
			return mt, fmt.Errorf("matryoshka_dims: %d is not a positive width", d)
		case width > 0 && d > width:
			return mt, fmt.Errorf("matryoshka_dims: %d is wider than the model's %d dimensions", d, width)
		case !(w > 0) || math.IsInf(w, 1):
			return mt, fmt.Errorf("matryoshka_weights: %v (for %d dimensions) must be a positive number", w, d)
		}
		pairs[i] = dw{d, w}
	}
	slices.SortStableFunc(pairs, func(a, b dw) int { return b.d - a.d })
	out := Matryoshka{Dims: make([]int, len(pairs)), Weights: make([]float64, len(pairs))}
	for i, p := range pairs {
		if i > 0 && p.d == pairs[i-1].d {
			return mt, fmt.Errorf("matryoshka_dims: %d appears twice", p.d)
		}
		out.Dims[i], out.Weights[i] = p.d, p.w
	}
	return out, nil
}

// loss is the weighted sum of rankingLoss over emb [B, H] cut to each width.
func (mt Matryoshka) loss(emb *ts.Tensor, b *Batch, dev gotch.Device) *ts.Tensor {
	var sum *ts.Tensor
	for i, d := range mt.Dims {
		cut := emb.MustNarrow(1, 0, int64(d), false)
		l := rankingLoss(cut, b, dev).MustMulScalar(ts.FloatScalar(mt.Weights[i]), true)
		cut.MustDrop()
		if sum == nil {
			sum = l
			continue
		}
		sum = sum.MustAdd(l, true)
		l.MustDrop()
	}
	return sum
}
