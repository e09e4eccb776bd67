package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// logSoftmax of row z at index y, in float64.
func logSoftmax(z []float64, y int) float64 {
	top := math.Inf(-1)
	for _, v := range z {
		top = max(top, v)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(v - top)
	}
	return z[y] - top - math.Log(sum)
}

// weightedCE is torch's cross_entropy with class weights and ignore_index, reduction
// mean: the weighted sum of the losses over the weighted count of counted rows.
func weightedCE(rows [][]float64, labels []int64, w []float32, ignore int64) float64 {
	var num, den float64
	for i, z := range rows {
		if labels[i] == ignore {
			continue
		}
		wy := 1.0
		if w != nil {
			wy = float64(w[labels[i]])
		}
		num -= wy * logSoftmax(z, int(labels[i]))
		den += wy
	}
	return num / den
}

// floatRows are logits cut into rows of k, in float64.
func floatRows(logits []float32, k int) [][]float64 {
	var out [][]float64
	for i := 0; i < len(logits); i += k {
		r := make([]float64, k)
		for j := range r {
			r[j] = float64(logits[i+j])
		}
		out = append(out, r)
	}
	return out
}

// referenceLoss is each task's loss as transformers defines it, computed in float64 from
// the logits (row-major in the Output's shape).
func referenceLoss(m *Model, b *Batch, logits []float32) float64 {
	n := m.Opts.NumLabels
	rows := func(k int) [][]float64 { return floatRows(logits, k) }
	w := m.Opts.ClassWeights
	switch m.Opts.Task {
	case MultiLabel: // BCE with logits, ClassWeights as pos_weight, mean over all
		var sum float64
		for i, y := range b.Targets {
			z, pw := float64(logits[i]), float64(w[i%n])
			logSig, logOneMinus := -math.Log1p(math.Exp(-z)), -math.Log1p(math.Exp(z))
			sum -= pw*float64(y)*logSig + (1-float64(y))*logOneMinus
		}
		return sum / float64(len(b.Targets))
	case Regression: // mean squared error over every score
		var sum float64
		for i, y := range b.Targets {
			d := float64(logits[i]) - float64(y)
			sum += d * d
		}
		return sum / float64(len(b.Targets))
	case QA: // start and end: [B, L, 2] -> per sequence, each ignoring positions past L
		start, end := make([][]float64, b.B), make([][]float64, b.B)
		for i := range b.B {
			start[i], end[i] = make([]float64, b.L), make([]float64, b.L)
			for j := range b.L {
				start[i][j] = float64(logits[(i*b.L+j)*2])
				end[i][j] = float64(logits[(i*b.L+j)*2+1])
			}
		}
		clamp := func(ps []int64) []int64 {
			out := make([]int64, len(ps))
			for i, p := range ps {
				out[i] = min(max(p, 0), int64(b.L))
			}
			return out
		}
		return (weightedCE(start, clamp(b.Labels[:b.B]), nil, int64(b.L)) +
			weightedCE(end, clamp(b.Labels[b.B:]), nil, int64(b.L))) / 2
	case MLM: // the masked tokens' rows
		return weightedCE(rows(n), maskedLabels(b.Labels), nil, IgnoreIndex)
	case Choice: // each example's choices in a row
		return weightedCE(rows(b.Choices), b.Labels, nil, IgnoreIndex)
	}
	return weightedCE(rows(n), b.Labels, w, IgnoreIndex)
}

// Each task's loss is the one transformers computes: class weights, pos_weight,
// ignored tokens and out-of-range answer positions included.
func TestLossMatchesReference(t *testing.T) {
	cases := append(taskCases, struct {
		name string
		opts Options
	}{"regression-3", Options{Task: Regression, NumLabels: 3}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			m := newModel(t, smallConfig(0), tc.opts, 5)
			r := rand.New(rand.NewPCG(5, 6))
			b := randomBatch(r, m, 10, []int{10, 4, 7, 2, 9})
			if tc.opts.Task == QA {
				b.Labels[2], b.Labels[b.B+4] = 10, -3 // past the end: ignored; negative: clamped to 0
			}
			logits, got, err := m.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			want := referenceLoss(m, b, logits)
			if math.Abs(got-want) > 1e-5*math.Abs(want) {
				t.Fatalf("loss %.7g, reference %.7g", got, want)
			}
		})
	}
}
