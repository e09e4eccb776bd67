package model

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type linear struct {
	w, b *Param       // b is nil for a layer without bias (ModernBERT's)
	int8 *int8Linear  // the weights packed for int8 inference, once Model.Quantize has run
	lora *loraAdapter // the layer's LoRA A and B (lora.go), until MergeLoRA
}

func (l *linear) fwd(x *ts.Tensor) *ts.Tensor {
	if l.int8 != nil {
		return l.int8.fwd(x)
	}
	y := ts.MustLinear(x, l.w.T, l.b.tensor())
	if l.lora != nil {
		return l.lora.add(y, x)
	}
	return y
}

type layerNorm struct {
	w, b *Param // b is nil for a LayerNorm without bias (ModernBERT's)
	eps  float64
}

func (n *layerNorm) fwd(x *ts.Tensor) *ts.Tensor {
	return ts.MustLayerNorm(x, n.w.Shape, n.w.T, n.b.tensor(), n.eps, true)
}

// tensor is the parameter's tensor, or an undefined one (an absent optional argument)
// for a nil parameter.
func (p *Param) tensor() *ts.Tensor {
	if p == nil {
		return undefined
	}
	return p.T
}

// linear declares a dense layer's weight [out, in] and bias [out] as name.weight, name.bias.
func (m *Model) linear(name string, out, in int) linear {
	ps := m.Params
	return linear{w: ps.add(name+".weight", []int64{int64(out), int64(in)}, InitNormal), b: ps.add(name+".bias", []int64{int64(out)}, InitZeros)}
}

// dense declares a dense layer, with a bias or without.
func (m *Model) dense(name string, out, in int, bias bool) linear {
	if bias {
		return m.linear(name, out, in)
	}
	return linear{w: m.Params.add(name+".weight", []int64{int64(out), int64(in)}, InitNormal)}
}

// layerNorm declares a LayerNorm of width n as name.weight, name.bias.
func (m *Model) layerNorm(name string, n int, eps float64) layerNorm {
	return m.norm(name, n, eps, true)
}

// norm declares a LayerNorm of width n, with a bias or without (ModernBERT's norm_bias).
func (m *Model) norm(name string, n int, eps float64, bias bool) layerNorm {
	ln := layerNorm{w: m.Params.add(name+".weight", []int64{int64(n)}, InitOnes), eps: eps}
	if bias {
		ln.b = m.Params.add(name+".bias", []int64{int64(n)}, InitZeros)
	}
	return ln
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
	rel              *relProj // DeBERTa's relative attention (debertav2.go), or nil
	// NomicBERT's (nomicbert.go), nil in the others: one projection making [q | k | v]
	// instead of q, k and v; rotary positions of the queries and keys; the gate of the
	// feed-forward, inter(x) · act(gate(x)).
	qkv  *linear
	rope *rope
	gate *linear
}

// dense lists the layer's dense layers, for Quantize.
func (ly *layer) dense() []*linear {
	if ly.qkv != nil {
		return []*linear{ly.qkv, &ly.attnOut, &ly.inter, ly.gate, &ly.out}
	}
	return []*linear{&ly.q, &ly.k, &ly.v, &ly.attnOut, &ly.inter, &ly.out}
}

// project is the queries of the rows hq, the keys and the values of h, [rows, H] each.
// A fused projection computes all three of h; first, when not nil, then picks hq's rows
// of its queries.
func (ly *layer) project(h, hq *ts.Tensor, first func(*ts.Tensor) *ts.Tensor) (q, k, v *ts.Tensor) {
	if ly.qkv == nil {
		return ly.q.fwd(hq), ly.k.fwd(h), ly.v.fwd(h)
	}
	parts := ly.qkv.fwd(h).MustChunk(3, -1, true)
	q = parts[0]
	if first != nil {
		q = first(parts[0])
		parts[0].MustDrop()
	}
	return q, parts[1], parts[2]
}

// rotate gives the queries or keys x [B, heads, n, d], which it takes ownership of, the
// layer's rotary positions 0..n-1, if it has them.
func (ly *layer) rotate(x *ts.Tensor) *ts.Tensor {
	if ly.rope == nil {
		return x
	}
	return ly.rope.apply(x, x.MustSize()[2])
}

// declareLayer declares a layer's parameters under prefix.
func (m *Model) declareLayer(prefix string, n layerNames) *layer {
	c := m.Config
	h, inter, eps := c.HiddenSize, c.IntermediateSize, c.LayerNormEps
	ly := &layer{
		q: m.linear(prefix+n.q, h, h), k: m.linear(prefix+n.k, h, h), v: m.linear(prefix+n.v, h, h),
		attnOut: m.linear(prefix+n.attnOut, h, h), attnNorm: m.layerNorm(prefix+n.attnNorm, h, eps),
		inter: m.linear(prefix+n.inter, inter, h), out: m.linear(prefix+n.out, h, inter),
		outNorm:     m.layerNorm(prefix+n.outNorm, h, eps),
		attnOutDrop: !n.noAttnOutDrop, outDrop: !n.noOutDrop,
	}
	m.loraWrap(ly.dense())
	return ly
}

// fwd applies the layer to h [B, L, H], which it takes ownership of; ext is the additive
// attention mask [B, 1, 1, L], or with MPNet's position bias [B, heads, L, L]. With keep
// it also returns the attention probabilities.
//
// With first it returns only the first token's output, [B, 1, H]: all a sequence head
// reads from the last layer. Keys and values still cover every token, but the queries,
// the attention's rows, the output projection and the feed-forward are computed for the
// first token alone, which saves most of the layer. Each dropout draws its noise at the
// whole layer's shape and keeps the first token's part (dropper.first), so the generator
// advances as for the whole layer and the values are the whole layer's, bit for bit.
//
// rs is the forward's relative attention state, for a layer with relative attention.
func (ly *layer) fwd(m *Model, h, ext *ts.Tensor, rs *relState, b *Batch, drop *dropper, keep, first bool) (*ts.Tensor, *ts.Tensor) {
	c := m.Config
	hDrop, aDrop := c.HiddenDropoutProb, c.AttentionProbsDropoutProb
	nh, hd := int64(c.NumAttentionHeads), int64(c.HeadSize())
	B, L, H := int64(b.B), int64(b.L), int64(c.HiddenSize)
	Q := L // query positions computed
	if first {
		Q = 1
	}
	heads := func(t *ts.Tensor, n int64) *ts.Tensor { // [B,n,H] -> [B,heads,n,hd]
		return t.MustView([]int64{B, n, nh, hd}, true).MustPermute([]int64{0, 2, 1, 3}, true)
	}
	// dropAt is dropout at rate p of x, or, with first, of the tensor of shape full
	// whose first index along dim x is; x stays the caller's.
	dropAt := func(x *ts.Tensor, p float64, full []int64, dim int) *ts.Tensor {
		if first {
			return drop.first(x, p, full, dim)
		}
		return drop.apply(x, p)
	}
	hidden := []int64{B, L, H}
	dropout := func(x *ts.Tensor, on bool) *ts.Tensor { // takes ownership of x
		if !on {
			return x
		}
		d := dropAt(x, hDrop, hidden, 1)
		x.MustDrop()
		return d
	}
	hq := h // the rows queries are computed for
	if first {
		hq = h.MustNarrow(1, 0, 1, false).MustContiguous(true)
		// ext's row for the first query: it has one per query where it carries MPNet's
		// position bias, [B, heads, L, L].
		ext = ext.MustNarrow(2, 0, 1, false)
		defer ext.MustDrop()
	}
	var firstRow func(*ts.Tensor) *ts.Tensor
	if first {
		firstRow = func(x *ts.Tensor) *ts.Tensor { return x.MustNarrow(1, 0, 1, false) }
	}
	q, k, v := ly.project(h, hq, firstRow)
	q, k, v = ly.rotate(heads(q, Q)), ly.rotate(heads(k, L)), heads(v, L)
	dropProbs := func(p *ts.Tensor) *ts.Tensor { return dropAt(p, aDrop, []int64{B, nh, L, L}, 2) }
	var ctx, kept *ts.Tensor
	switch {
	case ly.rel != nil:
		bias := ly.bias(m, rs, q, k, drop)
		var probs *ts.Tensor
		ctx, probs = attendRelative(q, k, v, bias, ext, rs.d.scale, dropProbs)
		if keep {
			kept = probs.MustDetach(false)
		}
		probs.MustDrop()
	case keep:
		var probs *ts.Tensor
		ctx, probs = attend(q, k, v, ext, dropProbs)
		kept = probs.MustDetach(false)
		probs.MustDrop()
	default:
		rate, ok := drop.fusedRate(aDrop, first)
		ctx = attendContext(q, k, v, ext, dropProbs, rate, ok)
	}
	out := ly.rest(m, ctx, hq, dropout)
	if first {
		hq.MustDrop()
	}
	h.MustDrop()
	return out, kept
}

// attend is self-attention over heads, softmax(q kᵀ / √d + ext) v, for q [B, heads, Q, d]
// and k, v [B, heads, L, d], which it takes ownership of. drop, when not nil, is dropout
// of the probabilities. It returns the context [B, Q, heads * d] (contiguous) and the
// probabilities [B, heads, Q, L], which the caller drops.
func attend(q, k, v, ext *ts.Tensor, drop func(*ts.Tensor) *ts.Tensor) (ctx, probs *ts.Tensor) {
	scale := ts.FloatScalar(1 / math.Sqrt(float64(q.MustSize()[3])))
	kt := k.MustTranspose(-1, -2, true)
	scores := q.MustMatmul(kt, true).MustMulScalar(scale, true).MustAdd(ext, true)
	kt.MustDrop() // a view: left to the finalizer, it would hold the keys' storage
	return softmaxContext(scores, v, drop)
}

// softmaxContext is attention after its scores [B, heads, Q, L], which it takes
// ownership of, as of v: the probabilities (dropout by drop when not nil) times v [B,
// heads, L, d], which it drops. It returns the context [B, Q, heads * d] (contiguous)
// and the probabilities, which the caller drops.
func softmaxContext(scores, v *ts.Tensor, drop func(*ts.Tensor) *ts.Tensor) (ctx, probs *ts.Tensor) {
	probs = scores.MustSoftmax(-1, gotch.Float, true)
	p := probs
	if drop != nil {
		p = drop(probs)
	}
	ctx = p.MustMatmul(v, p != probs).MustPermute([]int64{0, 2, 1, 3}, true).MustContiguous(true)
	v.MustDrop()
	sz := ctx.MustSize()
	return ctx.MustView([]int64{sz[0], sz[1], sz[2] * sz[3]}, true), probs
}

// rest is the layer after attention: the output projection with its residual onto hq,
// LayerNorm, the feed-forward with its residual, LayerNorm. It takes ownership of ctx,
// not of hq; dropout is as in fwd.
func (ly *layer) rest(m *Model, ctx, hq *ts.Tensor, dropout func(*ts.Tensor, bool) *ts.Tensor) *ts.Tensor {
	a := dropout(ly.attnOut.fwd(ctx), ly.attnOutDrop).MustAdd(hq, true)
	ctx.MustDrop()
	h := ly.attnNorm.fwd(a)
	a.MustDrop()
	var f *ts.Tensor
	if ly.gate != nil { // NomicBERT's inter(h) · act(gate(h))
		g := m.act(ly.gate.fwd(h))
		f = ly.inter.fwd(h).MustMul(g, true)
		g.MustDrop()
	} else {
		f = m.act(ly.inter.fwd(h))
	}
	o := dropout(ly.out.fwd(f), ly.outDrop).MustAdd(h, true)
	f.MustDrop()
	h.MustDrop()
	h = ly.outNorm.fwd(o)
	o.MustDrop()
	return h
}
