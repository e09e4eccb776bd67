package model

import (
	"github.com/sugarme/gotch/ts"
)

// head is a task head in the layout transformers gives the family:
//
//	[first token] -> [dropout(preDrop)] -> [pre -> preAct] -> [custom: dropout -> head.dense -> GELU] -> dropout -> out
//
// BERT and ALBERT pool the first token through their base model's pooler (tanh);
// RoBERTa and ELECTRA classify it through classifier.dense (tanh, GELU) with dropout
// before; DistilBERT through pre_classifier (ReLU); token-level heads are dropout and one
// linear layer.
type head struct {
	first  bool // sequence tasks read the first token ([CLS], <s>)
	pre    *linear
	preAct func(*ts.Tensor) *ts.Tensor
	// preActName is preAct's name as config.json spells activations, for the ONNX export.
	preActName string
	preDrop    float64
	hidden     *linear // the custom head's extra layer (Options.HeadHidden), or nil
	drop       float64 // before the output layer (and the custom layer)
	out        linear
	pool       string // the embed task's pooling: no layers
	mlm        *mlmHead
}

// headSpec is what a family says about its head for the model's task.
type headSpec struct {
	pre     string // the linear layer before the output one, "" for none
	preAct  string // its activation, as config.json names them (activation)
	preDrop bool   // dropout (the head's rate) before pre as well
	// preDropRate: dropout at this rate before pre instead (DeBERTa's pooler_dropout)
	preDropRate float64
	out         string
	drop        float64 // the family's dropout before out
}

// declareHead declares the head; Options.HeadDropout >= 0 overrides the family's dropout.
func (m *Model) declareHead(s headSpec) {
	h := m.Config.HiddenSize
	hd := &m.head
	if m.Opts.Task == Embed {
		hd.pool, hd.first = m.Opts.Pooling, m.Opts.Pooling == PoolCLS
		return
	}
	if m.Opts.Task == MLM {
		m.declareMLM(m.fam.mlm)
		return
	}
	hd.first = m.Opts.Task.pooled()
	hd.drop = s.drop
	if m.Opts.HeadDropout >= 0 {
		hd.drop = m.Opts.HeadDropout
	}
	if s.pre != "" {
		pre := m.linear(s.pre, h, h)
		// The families name activations activation knows; DeBERTa's config checked its
		// pooler_hidden_act.
		hd.preAct, _ = activation(s.preAct)
		hd.pre, hd.preActName = &pre, s.preAct
		hd.preDrop = s.preDropRate
		if s.preDrop {
			hd.preDrop = hd.drop
		}
	}
	in := h
	if m.Opts.HeadHidden > 0 {
		hl := m.linear("head.dense", m.Opts.HeadHidden, h)
		hd.hidden = &hl
		in = m.Opts.HeadHidden
	}
	hd.out = m.linear(s.out, m.Opts.NumLabels, in)
}

// orDefault is classifier_dropout when the config sets it, else hidden_dropout_prob,
// transformers' rule for most heads.
func orDefault(d *float64, hidden float64) float64 {
	if d != nil {
		return *d
	}
	return hidden
}

// fwd computes the logits (an embedding model's vectors) from the last hidden states h
// [B, L, H] under mask [B, L], taking ownership of h.
func (hd *head) fwd(h, mask *ts.Tensor, drop *dropper) *ts.Tensor {
	if hd.pool != "" {
		return pool(h, mask, hd.pool)
	}
	feat := h
	if hd.first {
		feat = h.MustSelect(1, 0, false)
		h.MustDrop()
	}
	step := func(f func(*ts.Tensor) *ts.Tensor) {
		next := f(feat)
		feat.MustDrop()
		feat = next
	}
	if hd.pre != nil {
		if hd.preDrop > 0 {
			step(func(x *ts.Tensor) *ts.Tensor { return drop.apply(x, hd.preDrop) })
		}
		step(func(x *ts.Tensor) *ts.Tensor { return hd.preAct(hd.pre.fwd(x)) })
	}
	if hd.hidden != nil {
		step(func(x *ts.Tensor) *ts.Tensor { return drop.apply(x, hd.drop) })
		step(func(x *ts.Tensor) *ts.Tensor { return hd.hidden.fwd(x).MustGelu("none", true) })
	}
	step(func(x *ts.Tensor) *ts.Tensor { return drop.apply(x, hd.drop) })
	step(hd.out.fwd)
	return feat
}
