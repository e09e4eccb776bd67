package model

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Inference without padding. A batch of texts of different lengths is padded to its
// longest; its dense layers (projections, feed-forward, LayerNorms: nearly all of a
// step's work) then compute rows for padding that nothing reads, a quarter of them in
// a served batch of SMS messages. Without training, the dense layers run on the
// tokens alone, packed [T, H], and only attention, which needs the [B, L] layout,
// spreads them out again (as text-embeddings-inference and FasterTransformer's
// "remove padding" do). Dropout is off, so the results are the padded path's up to
// float rounding (TestPaddingInvariance compares a sequence alone and in a batch),
// except a token head's logits under the padding, which only a loss reads: a batch
// with labels keeps the padded rows (Forward).

// packing maps a padded batch's [B*L] positions to the packed rows of its tokens.
type packing struct {
	B, L, T int64
	idx     *ts.Tensor // [T]: the flat position b*L+l of each token, in order
	firsts  *ts.Tensor // [B]: the packed row of each sequence's first position
}

// newPacking is b's packing, or nil when b has no padding, or padding in a first
// position (which a sequence head reads).
func newPacking(b *Batch, dev gotch.Device) *packing {
	idx := make([]int64, 0, len(b.AttentionMask))
	firsts := make([]int64, b.B)
	for i, v := range b.AttentionMask {
		if i%b.L == 0 {
			if v == 0 {
				return nil
			}
			firsts[i/b.L] = int64(len(idx))
		}
		if v != 0 {
			idx = append(idx, int64(i))
		}
	}
	if len(idx) == len(b.AttentionMask) {
		return nil
	}
	return &packing{B: int64(b.B), L: int64(b.L), T: int64(len(idx)),
		idx: ts.MustOfSlice(idx).MustTo(dev, true), firsts: ts.MustOfSlice(firsts).MustTo(dev, true)}
}

func (p *packing) drop() {
	p.idx.MustDrop()
	p.firsts.MustDrop()
}

// pack takes the token rows of x [B, L, H] (or [B*L, H]): [T, H]. x stays the caller's.
func (p *packing) pack(x *ts.Tensor) *ts.Tensor {
	flat := x.MustView([]int64{p.B * p.L, -1}, false)
	defer flat.MustDrop()
	return flat.MustIndexSelect(0, p.idx, false)
}

// unpack spreads x [T, H] back to [B, L, H], zeros under the padding; it takes
// ownership of x.
func (p *packing) unpack(x *ts.Tensor) *ts.Tensor {
	h := x.MustSize()[1]
	out := ts.MustZeros([]int64{p.B * p.L, h}, x.DType(), x.MustDevice()).MustIndexCopy(0, p.idx, x, true)
	x.MustDrop()
	return out.MustView([]int64{p.B, p.L, h}, true)
}

// fwdPacked is fwd for inference on packed rows h [T, H], which it takes ownership of.
// With first it returns the first positions' outputs alone, [B, H].
func (ly *layer) fwdPacked(m *Model, h, ext *ts.Tensor, p *packing, first bool) *ts.Tensor {
	c := m.Config
	nh, hd := int64(c.NumAttentionHeads), int64(c.HeadSize())
	heads := func(t *ts.Tensor, n int64) *ts.Tensor { // [B,n,H] -> [B,heads,n,hd]
		return t.MustView([]int64{p.B, n, nh, hd}, true).MustPermute([]int64{0, 2, 1, 3}, true)
	}
	hq, Q := h, p.L
	var q *ts.Tensor
	if first {
		hq, Q = h.MustIndexSelect(0, p.firsts, false), 1
		q = heads(ly.q.fwd(hq), 1)
	} else {
		q = heads(p.unpack(ly.q.fwd(h)), Q)
	}
	k := heads(p.unpack(ly.k.fwd(h)), p.L)
	v := heads(p.unpack(ly.v.fwd(h)), p.L)
	ctx, probs := attend(q, k, v, ext, nil)
	probs.MustDrop()
	if first {
		ctx = ctx.MustView([]int64{p.B, -1}, true)
	} else {
		packed := p.pack(ctx)
		ctx.MustDrop()
		ctx = packed
	}
	out := ly.rest(m, ctx, hq, func(x *ts.Tensor, _ bool) *ts.Tensor { return x })
	if first {
		hq.MustDrop()
	}
	h.MustDrop()
	return out
}
