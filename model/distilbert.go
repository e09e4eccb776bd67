package model

import (
	"fmt"
	"math"

	"github.com/bertnode/bertnode/hf"
	"github.com/sugarme/gotch/ts"
)

// distilbertFamily is DistilBERT: word and position embeddings only (no token types),
// position embeddings learned or, with sinusoidal_pos_embds, fixed sin/cos values that
// never train; layers with their own names and no dropout after the attention's output;
// sequence heads through pre_classifier (ReLU) with seq_classif_dropout, token heads with
// dropout, QA with qa_dropout. No pooler.
var distilbertFamily = &family{
	base:        "distilbert.",
	embeddings:  []string{"distilbert.embeddings."},
	layer:       func(i int) string { return fmt.Sprintf("distilbert.transformer.layer.%d.", i) },
	pretraining: []string{"vocab_transform.", "vocab_layer_norm.", "vocab_projector."},
	// DistilBertForMaskedLM: the config's activation (hidden_act here), LayerNorm eps 1e-12.
	mlm: &mlmSpec{dense: "vocab_transform", norm: "vocab_layer_norm", eps: 1e-12, bias: "vocab_projector.bias", ignored: []string{"vocab_projector.weight"}},
	fixed: func(c *hf.BertConfig) []string {
		if c.SinusoidalPosEmbds {
			return []string{distilbertPositions}
		}
		return nil
	},
	declare: func(m *Model) {
		c := m.Config
		m.declareEmbeddings("distilbert.embeddings.", false)
		for i := range c.NumHiddenLayers {
			m.layers = append(m.layers, m.declareLayer(fmt.Sprintf("distilbert.transformer.layer.%d.", i), distilbertLayer))
		}
		var s headSpec
		switch m.Opts.Task {
		case Classify, MultiLabel, Regression, Choice:
			s = headSpec{pre: "pre_classifier", preAct: "relu", out: "classifier", drop: *c.ClassifierDropout}
		case NER:
			s = headSpec{out: "classifier", drop: c.HiddenDropoutProb}
		case QA:
			s = headSpec{out: "qa_outputs", drop: c.QADropout}
		}
		m.declareHead(s)
	},
	init: func(m *Model) {
		if !m.Config.SinusoidalPosEmbds {
			return
		}
		p := m.Params.Get(distilbertPositions)
		v := ts.MustOfSlice(sinusoidal(int(p.Shape[0]), int(p.Shape[1]))).MustView(p.Shape, true).MustTo(m.Params.device, true)
		noGrad(func() { p.T.Copy_(v) })
		v.MustDrop()
	},
}

const distilbertPositions = "distilbert.embeddings.position_embeddings.weight"

var distilbertLayer = layerNames{
	q: "attention.q_lin", k: "attention.k_lin", v: "attention.v_lin",
	attnOut: "attention.out_lin", attnNorm: "sa_layer_norm",
	inter: "ffn.lin1", out: "ffn.lin2", outNorm: "output_layer_norm",
	noAttnOutDrop: true,
}

// sinusoidal is DistilBERT's create_sinusoidal_embeddings, [n, dim] row-major: position
// p, column j holds sin (j even) or cos (j odd) of p / 10000^(2*(j/2)/dim), computed in
// float64 as numpy does and rounded once.
func sinusoidal(n, dim int) []float32 {
	out := make([]float32, n*dim)
	for p := range n {
		for j := range dim {
			a := float64(p) / math.Pow(10000, float64(2*(j/2))/float64(dim))
			if j%2 == 0 {
				out[p*dim+j] = float32(math.Sin(a))
			} else {
				out[p*dim+j] = float32(math.Cos(a))
			}
		}
	}
	return out
}
