package model

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type linear struct{ w, b *Param }

func (l *linear) fwd(x *ts.Tensor) *ts.Tensor { return ts.MustLinear(x, l.w.T, l.b.T) }

type layerNorm struct {
	w, b *Param
	eps  float64
}

func (n *layerNorm) fwd(x *ts.Tensor) *ts.Tensor {
	return ts.MustLayerNorm(x, n.w.Shape, n.w.T, n.b.T, n.eps, true)
}

// linear declares a dense layer's weight [out, in] and bias [out] as name.weight, name.bias.
func (m *Model) linear(name string, out, in int) linear {
	ps := m.Params
	return linear{ps.add(name+".weight", []int64{int64(out), int64(in)}, InitNormal), ps.add(name+".bias", []int64{int64(out)}, InitZeros)}
}

// layerNorm declares a LayerNorm of width n as name.weight, name.bias.
func (m *Model) layerNorm(name string, n int, eps float64) layerNorm {
	ps := m.Params
	return layerNorm{ps.add(name+".weight", []int64{int64(n)}, InitOnes), ps.add(name+".bias", []int64{int64(n)}, InitZeros), eps}
}

// layerNames are the names a family gives the parts of a transformer layer, after
// the layer's prefix.
type layerNames struct {
	q, k, v, attnOut, attnNorm, inter, out, outNorm string
	// noAttnOutDrop, noOutDrop: the family has no dropout after the attention's output
	// projection (DistilBERT) or after the feed-forward's (ALBERT).
	noAttnOutDrop, noOutDrop bool
}

// layer is one post-LayerNorm transformer layer, the same computation in every family:
// self-attention, residual, LayerNorm; feed-forward, residual, LayerNorm.
type layer struct {
	q, k, v, attnOut linear
	attnNorm         layerNorm
	inter, out       linear
	outNorm          layerNorm
	attnOutDrop      bool
	outDrop          bool
}

// declareLayer declares a layer's parameters under prefix.
func (m *Model) declareLayer(prefix string, n layerNames) *layer {
	c := m.Config
	h, inter, eps := c.HiddenSize, c.IntermediateSize, c.LayerNormEps
	return &layer{
		q: m.linear(prefix+n.q, h, h), k: m.linear(prefix+n.k, h, h), v: m.linear(prefix+n.v, h, h),
		attnOut: m.linear(prefix+n.attnOut, h, h), attnNorm: m.layerNorm(prefix+n.attnNorm, h, eps),
		inter: m.linear(prefix+n.inter, inter, h), out: m.linear(prefix+n.out, h, inter),
		outNorm:     m.layerNorm(prefix+n.outNorm, h, eps),
		attnOutDrop: !n.noAttnOutDrop, outDrop: !n.noOutDrop,
	}
}

// fwd applies the layer to h [B, L, H], which it takes ownership of; ext is the additive
// attention mask [B, 1, 1, L]. With keep it also returns the attention probabilities.
func (ly *layer) fwd(m *Model, h, ext *ts.Tensor, b *Batch, train, keep bool) (*ts.Tensor, *ts.Tensor) {
	c := m.Config
	hDrop, aDrop := c.HiddenDropoutProb, c.AttentionProbsDropoutProb
	nh, hd := int64(c.NumAttentionHeads), int64(c.HeadSize())
	B, L := int64(b.B), int64(b.L)
	heads := func(t *ts.Tensor) *ts.Tensor { // [B,L,H] -> [B,heads,L,hd]
		return t.MustView([]int64{B, L, nh, hd}, true).MustPermute([]int64{0, 2, 1, 3}, true)
	}
	dropout := func(x *ts.Tensor, on bool) *ts.Tensor {
		if !on {
			return x
		}
		d := ts.MustDropout(x, hDrop, train)
		x.MustDrop()
		return d
	}
	scale := ts.FloatScalar(1 / math.Sqrt(float64(hd)))
	q := heads(ly.q.fwd(h))
	k := heads(ly.k.fwd(h))
	v := heads(ly.v.fwd(h))
	scores := q.MustMatmul(k.MustTranspose(-1, -2, true), true).MustMulScalar(scale, true).MustAdd(ext, true)
	probs := scores.MustSoftmax(-1, gotch.Float, true)
	var kept *ts.Tensor
	if keep {
		kept = probs.MustDetach(false)
	}
	ctx := ts.MustDropout(probs, aDrop, train).MustMatmul(v, true).
		MustPermute([]int64{0, 2, 1, 3}, true).MustContiguous(true).MustView([]int64{B, L, nh * hd}, true)
	probs.MustDrop()
	v.MustDrop()
	a := dropout(ly.attnOut.fwd(ctx), ly.attnOutDrop).MustAdd(h, true)
	ctx.MustDrop()
	h.MustDrop()
	h = ly.attnNorm.fwd(a)
	a.MustDrop()
	f := m.act(ly.inter.fwd(h))
	o := dropout(ly.out.fwd(f), ly.outDrop).MustAdd(h, true)
	f.MustDrop()
	h.MustDrop()
	h = ly.outNorm.fwd(o)
	o.MustDrop()
	return h, kept
}
