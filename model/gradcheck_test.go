package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// gradOK accepts a gradient g for the central difference fd, scale being the largest
// gradient probed. float32 central differences at gradEps agree to about 5e-4 relative
// here; a gradient off by 2x, or another coordinate's, is off by far more.
func gradOK(g, fd, scale float64) bool {
	return math.Abs(g-fd) <= 0.01*math.Max(math.Abs(g), math.Abs(fd))+1e-3*scale
}

const gradEps = 1e-2

// probe is one coordinate of the flat buffer that the check perturbs.
type probe struct {
	param string
	i     int // index into the flat buffer
	next  int // another coordinate of the same parameter; outside it when it has one value
}

// bertProbes are the parameters, by part of their names, that the check probes in the
// BERT-like families.
var bertProbes = []string{
	"word_embeddings", "position_embeddings", "token_type_embeddings", "embeddings.LayerNorm.weight",
	"embeddings.LayerNorm.bias", "layer.0.attention.self.query.weight", "layer.0.attention.self.value.bias",
	"layer.0.attention.self.value.weight", "layer.0.attention.output.dense.weight",
	"layer.0.attention.output.LayerNorm.weight", "layer.0.intermediate.dense.bias",
	"layer.1.attention.self.query.bias", "layer.1.attention.self.key.weight", "layer.1.output.dense.weight",
	"layer.1.output.LayerNorm.bias", "layer.1.output.LayerNorm.weight", "pooler.dense.weight",
	"pooler.dense.bias", "head.dense.weight", "classifier.weight", "classifier.bias",
	"qa_outputs.weight", "qa_outputs.bias",
}

// probes picks, from each parameter whose name contains one of want, the coordinate with
// the largest gradient, so that each comparison is well above the central difference's
// noise.
func probes(m *Model, grad []float32, want []string) []probe {
	var out []probe
	for _, p := range m.Params.List() {
		for _, w := range want {
			if !strings.Contains(p.Name, w) {
				continue
			}
			best := p.Offset
			for i := p.Offset; i < p.Offset+p.Numel; i++ {
				if math.Abs(float64(grad[i])) > math.Abs(float64(grad[best])) {
					best = i
				}
			}
			next := best + 1
			if next == p.Offset+p.Numel {
				next = best - 1 // p.Offset - 1 for a one-value parameter (regression's bias): none
			}
			out = append(out, probe{p.Name, int(best), int(next)})
		}
	}
	return out
}

// The gradient that backward leaves in the flat buffer is the derivative of each
// task's loss: central differences of the loss, perturbing the flat weights in place,
// agree with it, and would not agree with twice it or with a neighbour's.
func TestGradientMatchesFiniteDifferences(t *testing.T) {
	for _, tc := range taskCases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			m := newModel(t, smallConfig(0), tc.opts, 3)
			r := rand.New(rand.NewPCG(3, 4))
			b := randomBatch(r, m, 12, []int{12, 5, 9, 3})
			if tc.opts.Task == QA {
				b.Labels[1] = 100 // outside the sequence: ignored, as transformers does
			}
			checkGradient(t, m, b, bertProbes, 15)
		})
	}
}

// checkGradient compares the gradient backward leaves for b (with dropout 0: the
// function eval computes) with central differences of the loss at the probes of want,
// of which n or more must exist and have a gradient clearly above zero.
func checkGradient(t *testing.T, m *Model, b *Batch, want []string, n int) {
	t.Helper()
	m.Params.ZeroGrad()
	if _, err := m.Backward(b, 1); err != nil { // dropout is 0: same function as eval
		t.Fatal(err)
	}

	grad := m.Params.GradSlice()
	w := m.Params.FlatSlice()
	ps := probes(m, grad, want)
	if len(ps) < n {
		t.Fatalf("only %d probes", len(ps))
	}
	var scale float64
	for _, p := range ps {
		scale = max(scale, math.Abs(float64(grad[p.i])))
	}
	informative := 0
	for _, p := range ps {
		orig := w[p.i]
		w[p.i] = orig + gradEps
		up := evalLoss(t, m, b)
		w[p.i] = orig - gradEps
		down := evalLoss(t, m, b)
		w[p.i] = orig
		fd := (up - down) / (2 * gradEps)
		g := float64(grad[p.i])
		if !gradOK(g, fd, scale) {
			t.Errorf("%s[%d]: grad %g, central difference %g", p.param, p.i-int(m.Params.Get(p.param).Offset), g, fd)
		}
		// Some gradients are zero by symmetry (a bias shifting every position's
		// QA logit alike); the others show that the check has teeth.
		if math.Abs(fd) < 0.05*scale {
			continue
		}
		informative++
		neighbour := p.next >= int(m.Params.Get(p.param).Offset)
		if gradOK(2*g, fd, scale) || neighbour && gradOK(float64(grad[p.next]), fd, scale) {
			t.Errorf("%s: the check cannot tell the gradient %g from twice it or from its neighbour's %g", p.param, g, grad[p.next])
		}
	}
	if informative < n {
		t.Errorf("only %d of %d probes have a gradient clearly above zero", informative, len(ps))
	}
}

// checkHeadGradients runs checkGradient at the probes of want on a model of config(t)
// with each head but masked LM (multiple choice with pairs of choices), on one batch of
// four lengths.
func checkHeadGradients(t *testing.T, config func(t *testing.T) *hf.BertConfig, want []string) {
	cases := append(slices.Clip(taskCases[:5]), struct {
		name string
		opts Options
	}{"choice", Options{Task: Choice}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			m := newModel(t, config(t), tc.opts, 3)
			b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 14, []int{14, 5, 11, 3})
			if tc.opts.Task == Choice {
				b.Choices, b.Labels = 2, []int64{1, 0}
			}
			checkGradient(t, m, b, want, 9)
		})
	}
}
