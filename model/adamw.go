package model

import (
	"fmt"
	"math"
	"runtime"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// AdamW is torch.optim.AdamW (decoupled weight decay, bias-corrected moments) over the
// trainable prefix of a Params' flat buffers, as whole-buffer work instead of a loop over
// parameters: on the CPU one fused pass in Go (adamw_cpu.go), on a GPU a handful of
// libtorch ops. Weight decay applies to Params.Decay's runs only, which by construction
// exclude biases, LayerNorm weights and frozen parameters.
//
// It is ours rather than gotch's because exact resume needs the moments, which gotch's
// optimizer cannot export.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64

	ps   *Params
	Step int64
	m, v *ts.Tensor // [TrainEnd] first and second moments

	// scales are the parameter groups' learning rates (SetLRScales); nil: one group.
	scales []LRScale

	fused *fusedRuns // on a GPU whose libtorch has the fused kernel; made on first use
}

// NewAdamW makes an optimizer for ps with torch's defaults for betas and eps.
func NewAdamW(ps *Params, weightDecay float64) *AdamW {
	n := ps.TrainEnd
	return &AdamW{
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay,
		ps: ps,
		m:  ts.MustZeros([]int64{n}, gotch.Float, ps.device),
		v:  ts.MustZeros([]int64{n}, gotch.Float, ps.device),
	}
}

// SetLRScales gives the runs of the trainable parameters learning rates of their own:
// lr times each run's scale (Model.LayerLRScales), as torch's parameter groups do. The
// runs must cover [0, TrainEnd) in order; nil is one group at lr.
func (o *AdamW) SetLRScales(scales []LRScale) error {
	if scales == nil {
		o.scales = nil
		return nil
	}
	at := int64(0)
	for _, r := range scales {
		if r.Lo != at || r.Hi <= r.Lo || !(r.Scale > 0) {
			at = -1
			break
		}
		at = r.Hi
	}
	if at != o.ps.TrainEnd {
		return fmt.Errorf("adamw: learning rate runs %+v do not cover [0, %d) in order", scales, o.ps.TrainEnd)
	}
	o.scales = scales
	return nil
}

// Update applies one step at learning rate lr using the gradient in ps.Grad.
func (o *AdamW) Update(lr float64) {
	if o.ps.TrainEnd == 0 {
		return
	}
	o.Step++
	switch {
	case o.ps.device.IsCuda() && fusedAdamW() && o.scales == nil: // one group per call
		o.updateFused(lr)
	case o.ps.device.IsCuda():
		o.updateTorch(lr)
	default:
		o.updateCPU(lr, 1)
	}
}

// ClipAndUpdate is ps.ClipGradNorm(maxNorm) followed by Update(lr), with the same
// result, and returns the norm before clipping. On the CPU it saves a pass over the
// gradient: AdamW applies the clip's scale as it reads the gradient, which is left
// unclipped.
func (o *AdamW) ClipAndUpdate(lr, maxNorm float64) float64 {
	ps := o.ps
	if ps.TrainEnd == 0 || ps.device.IsCuda() {
		norm := ps.ClipGradNorm(maxNorm)
		o.Update(lr)
		return norm
	}
	norm := norm2(ps.GradSlice(), Threads())
	o.Step++
	o.updateCPU(lr, clipCoef(maxNorm, norm))
	runtime.KeepAlive(ps)
	return norm
}

// updateCPU is the fused pass of Update, with the gradient multiplied by clip.
func (o *AdamW) updateCPU(lr float64, clip float32) {
	n := int(o.ps.TrainEnd)
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	kernel := func(lr float64) adamwKernel {
		return adamwKernel{
			clip:  clip,
			decay: float32(1 - lr*o.WeightDecay), w1: float32(1 - o.Beta1),
			b2: float32(o.Beta2), w2: float32(1 - o.Beta2), bc2: float32(math.Sqrt(bc2)),
			eps: float32(o.Eps), stepSz: float32(-lr / bc1),
		}
	}
	p, g := o.ps.FlatSlice()[:n], o.ps.GradSlice()
	m, v := floatSlice(o.m, int64(n)), floatSlice(o.v, int64(n))
	forChunks(n, Threads(), func(_, lo, hi int) {
		lrSpans(o.scales, int64(lo), int64(hi), lr, func(lo, hi int64, lr float64) {
			k := kernel(lr)
			o.ps.decaySpans(lo, hi, func(lo, hi int64, decay bool) {
				k.update(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], decay && o.WeightDecay != 0)
			})
		})
	})
	runtime.KeepAlive(o)
}

// updateTorch is Update as libtorch ops, for a model on a GPU (and the reference the
// fused pass is tested against): one pass of them per learning rate run.
func (o *AdamW) updateTorch(lr float64) {
	bc1 := 1 - math.Pow(o.Beta1, float64(o.Step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.Step))
	noGrad(func() {
		lrSpans(o.scales, 0, o.ps.TrainEnd, lr, func(lo, hi int64, lr float64) {
			if o.WeightDecay != 0 {
				o.ps.decaySpans(lo, hi, func(lo, hi int64, decay bool) {
					if decay {
						d := o.ps.Flat.MustNarrow(0, lo, hi-lo, false)
						d.MustMulScalar_(ts.FloatScalar(1 - lr*o.WeightDecay))
						d.MustDrop()
					}
				})
			}
			var t [4]*ts.Tensor // p, g, m, v over [lo, hi)
			for i, b := range []*ts.Tensor{o.ps.Flat, o.ps.Grad, o.m, o.v} {
				t[i] = b.MustNarrow(0, lo, hi-lo, false)
				defer t[i].MustDrop()
			}
			p, g, m, v := t[0], t[1], t[2], t[3]
			// m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g²
			m.MustLerp_(g, ts.FloatScalar(1-o.Beta1))
			v.MustMulScalar_(ts.FloatScalar(o.Beta2))
			g2 := g.MustSquare(false).MustMulScalar(ts.FloatScalar(1-o.Beta2), true)
			v.MustAdd_(g2)
			g2.MustDrop()
			// p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), in torch's order of operations.
			denom := v.MustSqrt(false).MustDivScalar(ts.FloatScalar(math.Sqrt(bc2)), true).MustAddScalar(ts.FloatScalar(o.Eps), true)
			upd := m.MustDiv(denom, false).MustMulScalar(ts.FloatScalar(-lr/bc1), true)
			denom.MustDrop()
			p.MustAdd_(upd)
			upd.MustDrop()
		})
	})
}

// State is the optimizer's state as host data, for checkpoints.
type State struct {
	Step int64
	M, V []float32
}

// State copies the moments out.
func (o *AdamW) State() State {
	s := State{Step: o.Step, M: make([]float32, o.ps.TrainEnd), V: make([]float32, o.ps.TrainEnd)}
	readFloats(o.m, s.M)
	readFloats(o.v, s.V)
	return s
}

// SetState restores what State returned.
func (o *AdamW) SetState(s State) error {
	n := int(o.ps.TrainEnd)
	if len(s.M) != n || len(s.V) != n {
		return fmt.Errorf("optimizer state has %d/%d moments, the model %d trainable parameters", len(s.M), len(s.V), n)
	}
	o.Step = s.Step
	writeFloats(o.m, s.M)
	writeFloats(o.v, s.V)
	return nil
}

// ClipGradNorm scales the trainable gradient so its global L2 norm is at most maxNorm,
// as torch.nn.utils.clip_grad_norm_ does, and returns the norm before clipping.
func (ps *Params) ClipGradNorm(maxNorm float64) float64 {
	if ps.TrainEnd == 0 {
		return 0
	}
	if !ps.device.IsCuda() {
		g := ps.GradSlice()
		total := norm2(g, Threads())
		if c := clipCoef(maxNorm, total); c != 1 {
			scale(g, c, Threads())
		}
		runtime.KeepAlive(ps)
		return total
	}
	return ps.clipGradNormTorch(maxNorm)
}

// clipCoef is what clipping to maxNorm multiplies a gradient of norm total by (as
// float32, as libtorch's scalar multiply uses it).
func clipCoef(maxNorm, total float64) float32 {
	if coef := maxNorm / (total + 1e-6); maxNorm > 0 && coef < 1 {
		return float32(coef)
	}
	return 1
}

// clipGradNormTorch is ClipGradNorm as libtorch ops, for a model on a GPU (and the
// reference the CPU's is tested against).
func (ps *Params) clipGradNormTorch(maxNorm float64) float64 {
	g := ps.Grad.MustNarrow(0, 0, ps.TrainEnd, false)
	defer g.MustDrop()
	norm := g.MustNorm(false)
	total := norm.Float64Values(true)[0]
	if maxNorm > 0 {
		if coef := maxNorm / (total + 1e-6); coef < 1 {
			g.MustMulScalar_(ts.FloatScalar(coef))
		}
	}
	return total
}

// ScaleGrad multiplies the trainable gradient by f in place (unscaling after fp16 loss
// scaling).
func (ps *Params) ScaleGrad(f float64) {
	if ps.TrainEnd == 0 {
		return
	}
	if !ps.device.IsCuda() {
		scale(ps.GradSlice(), float32(f), Threads())
		runtime.KeepAlive(ps)
		return
	}
	g := ps.Grad.MustNarrow(0, 0, ps.TrainEnd, false)
	g.MustMulScalar_(ts.FloatScalar(f))
	g.MustDrop()
}
