package model

import (
	"github.com/bertnode/bertnode/onnx"
)

// onnxRelative is relState in the graph: the relative embeddings after their LayerNorm,
// all 2·span of them (relState's subset is an economy: each score reads one row), and
// the row each pair of positions reads.
type onnxRelative struct {
	emb string // [2·span, H]
	idx string // [L, L]: clamp(δ(i,j) + span, 0, 2·span - 1)
}

// debertaEmbeddings is debertaEmbed in eval mode: the embeddings summed, embed_proj,
// LayerNorm, zeros under the padding.
func (e *onnxExport) debertaEmbeddings(ids, types, mask string) string {
	g, emb := e.g, &e.m.emb
	x := e.embeddingSum(ids, types)
	if emb.proj != nil {
		x = e.linear(x, emb.proj)
	}
	mf := g.Op("Unsqueeze", []string{g.Op("Cast", []string{mask}, onnx.Int("to", int64(onnx.TensorProto_FLOAT))), g.Ints(-1)})
	return g.Op("Mul", []string{e.layerNorm(x, &emb.norm), mf})
}

// relative is Model.relative for the length of ids; nil without relative attention.
func (e *onnxExport) relative(ids string) *onnxRelative {
	g, d := e.g, e.m.deberta
	if d.relEmb == nil {
		return nil
	}
	rows := g.Int64("deberta.relative_rows", []int64{int64(len(d.row))}, d.row)
	r := &onnxRelative{
		emb: e.param(d.relEmb),
		idx: g.Op("Gather", []string{rows, g.Op("Add", []string{e.distances(e.length(ids)), g.IntScalar(int64(d.maxPos - 1))})}),
	}
	if d.relNorm != nil {
		r.emb = e.layerNorm(r.emb, d.relNorm)
	}
	return r
}

// attendRelative is attendRelative with layer.bias: softmax(q kᵀ / scale + (c2p + p2c)
// + ext) v, the context [B, L, H].
func (e *onnxExport) attendRelative(p *relProj, rel *onnxRelative, q, k, v, ext string) string {
	g, c, d := e.g, e.m.Config, e.m.deberta
	scale := g.Scalar(float32(d.scale))
	kt := g.Op("Transpose", []string{k}, onnx.Ints("perm", 0, 1, 3, 2))
	qk := g.Op("MatMul", []string{q, kt})
	scores := g.Op("Div", []string{qk, scale})
	// posT: the relative embeddings through a projection, [heads, d, 2·span].
	posT := func(l *linear) string {
		x := g.Op("Reshape", []string{e.linear(rel.emb, l), g.Ints(0, int64(c.NumAttentionHeads), int64(c.HeadSize()))})
		return g.Op("Transpose", []string{x}, onnx.Ints("perm", 1, 2, 0))
	}
	shape := g.Op("Shape", []string{qk}) // [B, heads, L, L]
	var bias string
	if d.c2p { // query i reads row δ(i, j) for key j
		at := g.Op("MatMul", []string{q, posT(p.key)})
		bias = g.Op("Div", []string{g.Op("GatherElements", []string{at, g.Op("Expand", []string{rel.idx, shape})}, onnx.Int("axis", -1)), scale})
	}
	if d.p2c { // key j reads row δ(i, j) for each query i
		at := g.Op("MatMul", []string{k, posT(p.query)})
		idxT := g.Op("Transpose", []string{rel.idx}, onnx.Ints("perm", 1, 0))
		p2c := g.Op("GatherElements", []string{at, g.Op("Expand", []string{idxT, shape})}, onnx.Int("axis", -1))
		p2c = g.Op("Div", []string{g.Op("Transpose", []string{p2c}, onnx.Ints("perm", 0, 1, 3, 2)), scale})
		if bias == "" {
			bias = p2c
		} else {
			bias = g.Op("Add", []string{bias, p2c})
		}
	}
	if bias != "" {
		scores = g.Op("Add", []string{scores, bias})
	}
	return e.context(g.Op("Add", []string{scores, ext}), v)
}
