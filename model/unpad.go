package model

import (
	"cmp"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Inference without padding. A batch of texts of different lengths is padded to its
// longest; its dense layers (projections, feed-forward, LayerNorms: nearly all of a
// step's work) then compute rows for padding that nothing reads, a quarter of them in
// a served batch of SMS messages. Without training, the dense layers run on the
// tokens alone, packed [T, H], and only attention, which needs the [B, L] layout,
// spreads them out again (as text-embeddings-inference and FasterTransformer's
// "remove padding" do), in groups of similar lengths, each to its own longest, so
// that one long text or --padding max_length does not make attention pay for a batch
// of short ones (BenchmarkInferUnpadded's 32x128: base 1.5x). Dropout is off, so the
// results are the padded path's up to float rounding (TestPaddingInvariance compares
// a sequence alone and in a batch), except a token head's logits under the padding,
// which only a loss reads: a batch with labels keeps the padded rows (Forward).

// packing maps a padded batch's [B*L] positions to the packed rows of its tokens. The
// packed order takes the sequences longest first, so that attention's groups
// (attnGroup) are runs of it.
type packing struct {
	B, L, T int64
	idx     *ts.Tensor // [T]: the flat position b*L+l of each token, in packed order
	firsts  *ts.Tensor // [B]: the packed row of each sequence's first position, in packed order
	unorder *ts.Tensor // [B]: where each batch row's sequence comes in packed order
	groups  []*attnGroup
}

// attnGroup is a run of sequences in packed order that attention spreads out together
// to [N, L, H], L the longest of their spans.
type attnGroup struct {
	N, L   int64
	first  int64      // its first sequence's place in packed order
	off, T int64      // its rows of the packed tokens
	idx    *ts.Tensor // [T]: the flat position j*L+l of each of its tokens in its [N*L]
	ext    *ts.Tensor // [N, 1, 1, L]: its additive attention mask; [N, heads, L, L] with MPNet's position bias
}

// groupFill is the smallest share of an attention group's [N, L] that its tokens fill:
// below it the next sequence starts a group of its own. Each group costs a few more
// libtorch calls per layer, which small models feel.
const groupFill = 0.75

// newPacking is b's packing, or nil when b has no padding, or padding in a first
// position (which a sequence head reads). ext is b's additive mask [B, 1, 1, L].
func newPacking(b *Batch, ext *ts.Tensor, dev gotch.Device) *packing {
	type seq struct{ row, span, real int }
	seqs := make([]seq, b.B)
	total := 0
	for i := range seqs {
		mask := b.AttentionMask[i*b.L : (i+1)*b.L]
		if mask[0] == 0 {
			return nil
		}
		s := seq{row: i}
		for l, v := range mask {
			if v != 0 {
				s.span, s.real = l+1, s.real+1
			}
		}
		seqs[i], total = s, total+s.real
	}
	if total == len(b.AttentionMask) {
		return nil
	}
	slices.SortStableFunc(seqs, func(x, y seq) int { return cmp.Compare(y.span, x.span) })
	p := &packing{B: int64(b.B), L: int64(b.L), T: int64(total)}
	idx := make([]int64, 0, total)
	firsts, unorder := make([]int64, b.B), make([]int64, b.B)
	var g *attnGroup
	var gIdx, gRows []int64
	var gReal int
	closeGroup := func() {
		g.T = int64(len(gIdx))
		g.idx = ts.MustOfSlice(gIdx).MustTo(dev, true)
		rows := ts.MustOfSlice(gRows).MustTo(dev, true)
		g.ext = ext.MustIndexSelect(0, rows, false).MustNarrow(3, 0, g.L, true)
		rows.MustDrop()
		p.groups = append(p.groups, g)
	}
	for k, s := range seqs {
		if g == nil || float64(gReal+s.real) < groupFill*float64((g.N+1)*g.L) {
			if g != nil {
				closeGroup()
			}
			g = &attnGroup{L: int64(s.span), first: int64(k), off: int64(len(idx))}
			gIdx, gRows, gReal = nil, nil, 0
		}
		firsts[k], unorder[s.row] = int64(len(idx)), int64(k)
		for l, v := range b.AttentionMask[s.row*b.L : s.row*b.L+s.span] {
			if v != 0 {
				idx = append(idx, int64(s.row*b.L+l))
				gIdx = append(gIdx, g.N*g.L+int64(l))
			}
		}
		gRows = append(gRows, int64(s.row))
		g.N++
		gReal += s.real
	}
	closeGroup()
	p.idx = ts.MustOfSlice(idx).MustTo(dev, true)
	p.firsts = ts.MustOfSlice(firsts).MustTo(dev, true)
	p.unorder = ts.MustOfSlice(unorder).MustTo(dev, true)
	return p
}

func (p *packing) drop() {
	for _, t := range []*ts.Tensor{p.idx, p.firsts, p.unorder} {
		t.MustDrop()
	}
	for _, g := range p.groups {
		g.idx.MustDrop()
		g.ext.MustDrop()
	}
}

// pack takes the token rows of x [B, L, H] (or [B*L, H]), in packed order: [T, H]. x
// stays the caller's.
func (p *packing) pack(x *ts.Tensor) *ts.Tensor {
	flat := x.MustView([]int64{p.B * p.L, -1}, false)
	defer flat.MustDrop()
	return flat.MustIndexSelect(0, p.idx, false)
}

// unpack spreads x [T, H] back to [B, L, H], zeros under the padding; it takes
// ownership of x.
func (p *packing) unpack(x *ts.Tensor) *ts.Tensor {
	return spread(x, p.idx, p.B, p.L)
}

// spread puts the rows of x [T, H] at the flat positions idx of [n*l, H], zeros
// elsewhere, and returns it as [n, l, H]; it takes ownership of x.
func spread(x, idx *ts.Tensor, n, l int64) *ts.Tensor {
	h := x.MustSize()[1]
	out := ts.MustZeros([]int64{n * l, h}, x.DType(), x.MustDevice()).MustIndexCopy(0, idx, x, true)
	x.MustDrop()
	return out.MustView([]int64{n, l, h}, true)
}

// catRows is the groups' rows xs, in order, as one tensor; it takes ownership of xs.
func catRows(xs []*ts.Tensor) *ts.Tensor {
	if len(xs) == 1 {
		return xs[0]
	}
	out := ts.MustCat(xs, 0)
	for _, t := range xs {
		t.MustDrop()
	}
	return out
}

// fwdPacked is fwd for inference on packed rows h [T, H], which it takes ownership of.
// With first it computes the first positions' outputs alone, [B, H] in packed order.
func (ly *layer) fwdPacked(m *Model, h *ts.Tensor, p *packing, rs *relState, drop *dropper, first bool) *ts.Tensor {
	c := m.Config
	nh, hd := int64(c.NumAttentionHeads), int64(c.HeadSize())
	heads := func(t *ts.Tensor, n, l int64) *ts.Tensor { // [n,l,H] -> [n,heads,l,hd]
		return t.MustView([]int64{n, l, nh, hd}, true).MustPermute([]int64{0, 2, 1, 3}, true)
	}
	hq := h
	if first {
		hq = h.MustIndexSelect(0, p.firsts, false)
	}
	var firstRows func(*ts.Tensor) *ts.Tensor
	if first {
		firstRows = func(x *ts.Tensor) *ts.Tensor { return x.MustIndexSelect(0, p.firsts, false) }
	}
	q, k, v := ly.project(h, hq, firstRows)
	ctxs := make([]*ts.Tensor, len(p.groups))
	for i, g := range p.groups {
		rows := func(x *ts.Tensor) *ts.Tensor {
			return heads(spread(x.MustNarrow(0, g.off, g.T, false), g.idx, g.N, g.L), g.N, g.L)
		}
		var qg *ts.Tensor
		ext := g.ext
		if first {
			qg = ly.rotate(heads(q.MustNarrow(0, g.first, g.N, false), g.N, 1))
			// ext's row for the first query: it has one per query where it carries MPNet's
			// position bias, [N, heads, L, L].
			ext = g.ext.MustNarrow(2, 0, 1, false)
		} else {
			qg = ly.rotate(rows(q))
		}
		kg := ly.rotate(rows(k))
		var ctx *ts.Tensor
		if ly.rel != nil {
			ctx, _ = attendRelative(qg, kg, rows(v), ly.bias(m, rs, qg, kg, drop), ext, rs.d.scale, nil)
		} else {
			ctx = attendContext(qg, kg, rows(v), ext, nil, 0, true)
		}
		if first {
			ext.MustDrop()
			ctxs[i] = ctx.MustView([]int64{g.N, -1}, true)
		} else {
			flat := ctx.MustView([]int64{g.N * g.L, -1}, true)
			ctxs[i] = flat.MustIndexSelect(0, g.idx, true)
		}
	}
	for _, t := range []*ts.Tensor{q, k, v} {
		t.MustDrop()
	}
	out := ly.rest(m, catRows(ctxs), hq, func(x *ts.Tensor, _ bool) *ts.Tensor { return x })
	if first {
		hq.MustDrop()
	}
	h.MustDrop()
	return out
}
