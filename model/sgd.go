package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// SGD is torch.optim.SGD (dampening 0) over the trainable prefix of a Params' flat
// buffers, with momentum and optionally Nesterov momentum:
//
//	d = g + wd·w;  b = μ·b + d;  w -= lr·(Nesterov ? d + μ·b : b)
//
// Weight decay is torch's SGD's, the L2 term added to the gradient (not decoupled as in
// AdamW), and like AdamW's applies to Params.Decay's runs only: not to biases, LayerNorm
// weights and frozen parameters.
type SGD struct {
	Momentum, WeightDecay float64
	Nesterov              bool

	stateful // momentum_buffer; none without momentum
}

// NewSGD makes an SGD optimizer for ps; nesterov needs momentum > 0, as in torch.
func NewSGD(ps *Params, momentum float64, nesterov bool, weightDecay float64) (*SGD, error) {
	switch {
	case momentum < 0 || momentum >= 1:
		return nil, fmt.Errorf("sgd: momentum %v is not in [0, 1)", momentum)
	case nesterov && momentum == 0:
		return nil, fmt.Errorf("sgd: Nesterov momentum needs momentum > 0")
	}
	o := &SGD{Momentum: momentum, WeightDecay: weightDecay, Nesterov: nesterov, stateful: stateful{ps: ps}}
	if momentum > 0 {
		o.s = newSlots(ps, "momentum_buffer")
	}
	return o, nil
}

// Update applies one step at learning rate lr using the gradient in ps.Grad.
func (o *SGD) Update(lr float64) {
	o.update(func(p, g *ts.Tensor) {
		// w·(1 - lr·wd) - lr·g is w - lr·(g + wd·w), without changing the gradient.
		decayW := func() {
			if o.WeightDecay != 0 {
				decayed(o.ps, func(d ...*ts.Tensor) { d[0].MustMulScalar_(ts.FloatScalar(1 - lr*o.WeightDecay)) }, p)
			}
		}
		if o.Momentum == 0 {
			decayW()
			addScaled(p, g, -lr)
			return
		}
		// b = μ·b + g + wd·w. torch starts b as the first d, which is μ·0 + d.
		b := o.s.bufs[0]
		b.MustMulScalar_(ts.FloatScalar(o.Momentum))
		b.MustAdd_(g)
		if o.WeightDecay != 0 {
			decayed(o.ps, func(d ...*ts.Tensor) { addScaled(d[0], d[1], o.WeightDecay) }, b, p)
		}
		if !o.Nesterov {
			addScaled(p, b, -lr)
			return
		}
		// w -= lr·(g + wd·w + μ·b), with the w before this step in the decay term.
		decayW()
		addScaled(p, g, -lr)
		addScaled(p, b, -lr*o.Momentum)
	})
}
