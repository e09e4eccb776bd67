package model

import (
	"runtime"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// AdamW on a GPU in libtorch's fused kernel (torch 2.0 on: torch.optim.AdamW's
// fused=True): one pass that reads the parameters, gradient and moments once and writes
// each once, where updateTorch's dozen ops each make a pass of their own over hundreds of
// megabytes (BERT-base) and launch a kernel. The kernel takes lists of tensors with one
// weight decay per call, so the flat buffers are cut at Params.Decay's runs into two
// lists of views, the decayed runs and the rest, made once.

// fusedAdamWOff turns the fused kernel off, for tests and benchmarks that compare.
var fusedAdamWOff bool

// fusedAdamW says whether AdamW on a GPU runs in the fused kernel: libtorch 2.0 or
// later has it (Debian's 1.13 does not).
func fusedAdamW() bool { return !fusedAdamWOff && LibtorchVersion() >= 200 }

// LibtorchVersion is the libtorch bertnode runs on, as major * 100 + minor (1.13: 113).
func LibtorchVersion() int { return lib.BnTorchVersion() }

// FusedOps says which of libtorch's fused ops the model uses here: attention through
// scaled_dot_product_attention, and AdamW's fused kernel on a GPU.
func FusedOps() (attention, adamw bool) { return fusedAttention(), fusedAdamW() }

// fusedRuns are the kernel's argument lists: for the decayed runs and for the rest, the
// views of the weights, gradient, moments and a step count each.
type fusedRuns struct {
	lists [2][5][]lib.Ctensor // [decayed, not][weights, grads, m, v, steps]
	views []*ts.Tensor        // what the lists point into, kept alive with them
	steps *ts.Tensor          // [runs] float32 (as torch keeps fused steps): the step count, one element per run
}

// splitDecay cuts [0, end) into the weight-decayed runs decay (ascending, disjoint) and
// the runs between them.
func splitDecay(decay [][2]int64, end int64) (runs [2][][2]int64) {
	at := int64(0)
	for _, r := range decay {
		if r[0] > at {
			runs[1] = append(runs[1], [2]int64{at, r[0]})
		}
		runs[0] = append(runs[0], r)
		at = r[1]
	}
	if at < end {
		runs[1] = append(runs[1], [2]int64{at, end})
	}
	return runs
}

func (o *AdamW) newFusedRuns() *fusedRuns {
	ps := o.ps
	runs := splitDecay(ps.Decay, ps.TrainEnd)
	f := &fusedRuns{steps: ts.MustZeros([]int64{int64(len(runs[0]) + len(runs[1]))}, gotch.Float, ps.device)}
	view := func(t *ts.Tensor) lib.Ctensor {
		f.views = append(f.views, t)
		return ctensor(t)
	}
	k := int64(0)
	for i, rs := range runs {
		for _, r := range rs {
			for j, buf := range []*ts.Tensor{ps.Flat, ps.Grad, o.m, o.v} {
				f.lists[i][j] = append(f.lists[i][j], view(buf.MustNarrow(0, r[0], r[1]-r[0], false)))
			}
			f.lists[i][4] = append(f.lists[i][4], view(f.steps.MustSelect(0, k, false)))
			k++
		}
	}
	return f
}

// updateFused is updateTorch in the fused kernel, up to float rounding (the kernel
// computes each element's update in registers, in torch's order of operations).
func (o *AdamW) updateFused(lr float64) {
	if o.fused == nil {
		o.fused = o.newFusedRuns()
	}
	f := o.fused
	noGrad(func() {
		f.steps.MustFill_(ts.FloatScalar(float64(o.Step)))
		for i, wd := range []float64{o.WeightDecay, 0} {
			l := f.lists[i]
			if len(l[0]) == 0 {
				continue
			}
			lib.BnFusedAdamW(l[0], l[1], l[2], l[3], l[4], lr, o.Beta1, o.Beta2, wd, o.Eps)
			if err := ts.TorchErr(); err != nil {
				panic(err)
			}
		}
	})
	runtime.KeepAlive(f)
}
