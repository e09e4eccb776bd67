package model

import (
	"fmt"
	"math"

	"github.com/bertnode/bertnode/onnx"
)

// modernBERT is modern.forward in eval mode: the embeddings' norm, the layers (global
// ones under ext, local ones under localMask's window), the final norm and the head.
func (e *onnxExport) modernBERT(ids, mask, ext string, normalize bool) {
	g, m, mo := e.g, e.m, e.m.modern
	c := m.Config
	h := e.layerNorm(g.Op("Gather", []string{e.param(m.emb.word), ids}), &m.emb.norm)
	L := e.length(ids)
	local := e.localMask(L, ext)
	for i, ly := range mo.layers {
		am := local
		if ly.global {
			am = ext
		}
		h = e.modernLayer(ly, h, am, L, c.RopeTheta(i))
	}
	h = e.layerNorm(h, &mo.final)
	if m.head.mlm != nil {
		e.mlmHead(h)
		return
	}
	hd := &mo.head
	if hd.pool != "" {
		e.embedOutputs(h, mask, hd.pool, normalize)
		return
	}
	x := h
	if hd.seq {
		mode := PoolCLS
		if hd.mean {
			mode = PoolMean
		}
		x = e.pool(h, mask, mode)
	}
	x = onnxActivation(g, c.ClassifierActivation, e.linear(x, &hd.dense))
	e.logitsOutputs(e.linear(e.layerNorm(x, &hd.norm), &hd.out), hd.seq)
}

// localMask is localMask's [B, 1, L, L] for a batch of length L (a [1] tensor) under
// the padding mask ext: keys further than local_attention/2 from the query masked (set,
// not added). localMask's rows left without a key are padding's, whose outputs nothing
// reads: here they stay masked, as in transformers.
func (e *onnxExport) localMask(L, ext string) string {
	g, c := e.g, e.m.Config
	far := g.Op("Greater", []string{g.Op("Abs", []string{e.distances(L)}), g.IntScalar(int64(c.LocalAttention / 2))})
	return g.Op("Where", []string{far, g.Scalar(-math.MaxFloat32), ext}) // [B, 1, L, L]
}

// modernLayer is modernLayer.fwd in eval mode on h [B, L, H] under the additive mask
// am, its queries and keys rotated by the rotary tables of base theta.
func (e *onnxExport) modernLayer(ly *modernLayer, h, am, L string, theta float64) string {
	g, m := e.g, e.m
	x := h
	if ly.attnNorm != nil {
		x = e.layerNorm(h, ly.attnNorm)
	}
	qkv := g.OpN("Split", []string{e.linear(x, &ly.wqkv)}, 3, onnx.Int("axis", -1)) // [q | k | v]
	ctx := e.attend(e.rotate(ly.rope, e.heads(qkv[0]), L, theta), e.rotate(ly.rope, e.heads(qkv[1]), L, theta), e.heads(qkv[2]), am)
	h2 := g.Op("Add", []string{h, e.linear(ctx, &ly.wo)})
	parts := g.OpN("Split", []string{e.linear(e.layerNorm(h2, &ly.mlpNorm), &ly.wi)}, 2, onnx.Int("axis", -1)) // GeGLU: [input, gate]
	act := onnxActivation(g, m.Config.HiddenAct, parts[0])
	return g.Op("Add", []string{h2, e.linear(g.Op("Mul", []string{act, parts[1]}), &ly.wo2)})
}

// rotate is rope.apply on x [B, heads, L, d]: x·cos + x[partner]·sin, the partners a
// roll by half the head where r has no partner index (ModernBERT's whole heads).
func (e *onnxExport) rotate(r *rope, x, L string, theta float64) string {
	g := e.g
	cos, sin := e.rope(r, L, theta)
	var partners string
	if r.partner != nil {
		key := fmt.Sprintf("rope.%g.partner", theta)
		idx, ok := e.inits[key]
		if !ok {
			idx = g.Int64(key, r.partner.MustSize(), r.partner.Int64Values())
			e.inits[key] = idx
		}
		partners = g.Op("Gather", []string{x, idx}, onnx.Int("axis", 3))
	} else {
		halves := g.OpN("Split", []string{x}, 2, onnx.Int("axis", -1))
		partners = g.Op("Concat", []string{halves[1], halves[0]}, onnx.Int("axis", -1))
	}
	return g.Op("Add", []string{g.Op("Mul", []string{x, cos}), g.Op("Mul", []string{partners, sin})})
}

// rope is the rotary tables' first L rows, [L, d] each: the model's own cos and signed
// sin for base theta, once in the graph whatever the layers that share them.
func (e *onnxExport) rope(r *rope, L string, theta float64) (cos, sin string) {
	g := e.g
	rows := func(part string, t func() []float32) string {
		key := fmt.Sprintf("rope.%g.%s", theta, part)
		name, ok := e.inits[key]
		if !ok {
			name = g.Float(key, []int64{int64(e.m.Config.MaxPositionEmbeddings), int64(e.m.Config.HeadSize())}, t())
			e.inits[key] = name
		}
		return g.Op("Slice", []string{name, g.Ints(0), L, g.Ints(0)})
	}
	return rows("cos", func() []float32 { return hostFloats(r.cos) }), rows("sin", func() []float32 { return hostFloats(r.sin) })
}
