package model

import (
	"math"

	"github.com/sugarme/gotch/ts"
)

// LAMB is the layer-wise adaptive optimizer of You et al., "Large Batch Optimization for
// Deep Learning: Training BERT in 76 minutes" (2019), as NVIDIA's apex FusedLAMB runs it
// by default: AdamW's bias-corrected direction plus decoupled weight decay,
//
//	u = m̂/(√v̂ + eps) + wd·w;  w -= lr·r·u,  r = ‖w‖/‖u‖ (1 where either norm is 0),
//
// with the trust ratio r taken per parameter tensor (each one's slice of the flat
// buffer). Like apex's and Google's BERT LAMB, biases and LayerNorm weights — the
// parameters without weight decay, outside Params.Decay — take u unscaled (r = 1).
type LAMB struct {
	Beta1, Beta2, Eps, WeightDecay float64

	stateful            // exp_avg, exp_avg_sq
	layers   [][2]int64 // offset and length of each trainable parameter, in buffer order
	counts   *ts.Tensor // their lengths, on the device, to spread the ratios over the buffer
	decays   *ts.Tensor // whether each takes weight decay (and so its trust ratio)
}

// NewLAMB makes a LAMB optimizer for ps with apex's defaults for betas and eps.
func NewLAMB(ps *Params, weightDecay float64) *LAMB {
	o := &LAMB{Beta1: 0.9, Beta2: 0.999, Eps: 1e-6, WeightDecay: weightDecay,
		stateful: stateful{ps: ps, s: newSlots(ps, adamNames...)}}
	var lens []int64
	var decays []bool
	for _, p := range ps.List() {
		if p.Trainable {
			o.layers = append(o.layers, [2]int64{p.Offset, p.Numel})
			lens = append(lens, p.Numel)
			decays = append(decays, p.Decay)
		}
	}
	if len(lens) > 0 {
		o.counts = ts.MustOfSlice(lens).MustTo(ps.device, true)
		o.decays = ts.MustOfSlice(decays).MustTo(ps.device, true)
	}
	return o
}

// Update applies one step at learning rate lr using the gradient in ps.Grad.
func (o *LAMB) Update(lr float64) {
	o.update(func(p, g *ts.Tensor) {
		m, v := o.s.bufs[0], o.s.bufs[1]
		m.MustLerp_(g, ts.FloatScalar(1-o.Beta1))
		v.MustMulScalar_(ts.FloatScalar(o.Beta2))
		g2 := g.MustSquare(false).MustMulScalar(ts.FloatScalar(1-o.Beta2), true)
		v.MustAdd_(g2)
		g2.MustDrop()
		bc1 := 1 - math.Pow(o.Beta1, float64(o.step))
		bc2 := 1 - math.Pow(o.Beta2, float64(o.step))
		// u = (m/bc1) / (sqrt(v/bc2) + eps)
		denom := v.MustDivScalar(ts.FloatScalar(bc2), false).MustSqrt(true).MustAddScalar(ts.FloatScalar(o.Eps), true)
		u := m.MustDivScalar(ts.FloatScalar(bc1), false)
		u.MustDiv_(denom)
		denom.MustDrop()
		if o.WeightDecay != 0 {
			decayed(o.ps, func(d ...*ts.Tensor) { addScaled(d[0], d[1], o.WeightDecay) }, u, p)
		}
		r := o.trust(p, u)
		u.MustMul_(r)
		r.MustDrop()
		addScaled(p, u, -lr)
		u.MustDrop()
	})
}

// trust is the per-parameter trust ratio spread over [0, TrainEnd): every value of a
// decayed parameter's slice gets ‖w‖/‖u‖ of that slice, every other value 1 (which
// leaves u's bits as they are). All on the device, with no host sync.
func (o *LAMB) trust(w, u *ts.Tensor) *ts.Tensor {
	wn := make([]*ts.Tensor, len(o.layers))
	un := make([]*ts.Tensor, len(o.layers))
	for i, l := range o.layers {
		wn[i] = w.MustNarrow(0, l[0], l[1], false).MustNorm(true)
		un[i] = u.MustNarrow(0, l[0], l[1], false).MustNorm(true)
	}
	W, U := ts.MustStack(wn, 0), ts.MustStack(un, 0)
	for i := range wn {
		wn[i].MustDrop()
		un[i].MustDrop()
	}
	uok := U.MustGt(ts.FloatScalar(0), false)
	ok := W.MustGt(ts.FloatScalar(0), false).MustLogicalAnd(uok, true).MustLogicalAnd(o.decays, true)
	r := W.MustDiv(U, true).MustWhereScalarother(ok, ts.FloatScalar(1), true)
	for _, t := range []*ts.Tensor{U, uok, ok} {
		t.MustDrop()
	}
	return r.MustRepeatInterleaveSelfTensor(o.counts, []int64{0}, []int64{o.ps.TrainEnd}, true)
}
