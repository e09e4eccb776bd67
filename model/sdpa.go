package model

import (
	"runtime"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Fused attention. From torch 2.0 libtorch has scaled_dot_product_attention: one op for
// attend's chain (scores, scale, mask, softmax, dropout, product), which on CUDA runs the
// flash or memory-efficient kernels (no [B, heads, L, L] tensor in memory, one launch
// instead of several in each direction), as Hugging Face's BERT uses by default. Debian's
// libtorch 1.13 has no such op (gotchadapt stubs it to fail), so the model asks libtorch
// once and otherwise computes attention op by op, as before.
//
// The fused op is used only where nothing else needs what the op-by-op path makes: not
// when the attention probabilities are kept (Forward with attentions), and not where
// dropout's noise must be the one the dropper draws (fusedRate).

// fusedAttentionOff turns the fused op off, for tests and benchmarks that compare the two.
var fusedAttentionOff bool

// probeSDPA says whether this libtorch has scaled_dot_product_attention.
var probeSDPA = sync.OnceValue(func() bool {
	runtime.LockOSThread() // libtorch's last error is per thread
	defer runtime.UnlockOSThread()
	x := ts.MustOnes([]int64{1, 1, 1, 1}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	out, err := ts.ScaledDotProductAttention(x, x, x, x, 0, false, nil)
	if err != nil {
		return false
	}
	out.MustDrop()
	return true
})

// fusedAttention says whether attention goes through libtorch's fused op.
func fusedAttention() bool { return !fusedAttentionOff && probeSDPA() }

// fusedRate is the attention dropout rate to hand the fused op for a rate p, and whether
// the op may draw it: not when the noise must be what the dropper would draw (on the CPU,
// libtorch's mt19937 stream, bit for bit; with first, the whole layer's noise).
func (d *dropper) fusedRate(p float64, first bool) (float64, bool) {
	if !d.train || p == 0 {
		return 0, true
	}
	return p, d.rng == nil && !first && p < 1
}

// attendContext is attend's context alone, through libtorch's fused op where it has one
// and fusedOK (fusedRate's answer) allows, with dropout at rate; else op by op, drop
// being the dropout of the probabilities. It takes ownership of q, k and v.
func attendContext(q, k, v, ext *ts.Tensor, drop func(*ts.Tensor) *ts.Tensor, rate float64, fusedOK bool) *ts.Tensor {
	if fusedOK && fusedAttention() {
		return attendFused(q, k, v, ext, rate)
	}
	ctx, probs := attend(q, k, v, ext, drop)
	probs.MustDrop()
	return ctx
}

// attendFused is attend's context, softmax(q kᵀ / √d + ext) v with dropout at rate p of
// the probabilities, through libtorch's fused op; it takes ownership of q, k and v.
func attendFused(q, k, v, ext *ts.Tensor, p float64) *ts.Tensor {
	mask := ext
	if ext.DType() != q.DType() { // autocast: the op wants the mask in the inputs' type
		mask = ext.MustTotype(q.DType(), false)
		defer mask.MustDrop()
	}
	ctx := ts.MustScaledDotProductAttention(q, k, v, mask, p, false, nil)
	for _, t := range []*ts.Tensor{q, k, v} {
		t.MustDrop()
	}
	ctx = ctx.MustPermute([]int64{0, 2, 1, 3}, true).MustContiguous(true)
	sz := ctx.MustSize()
	return ctx.MustView([]int64{sz[0], sz[1], sz[2] * sz[3]}, true)
}
