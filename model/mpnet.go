package model

import (
	"math"

	"github.com/bertnode/bertnode/hf"
	"github.com/sugarme/gotch/ts"
)

// mpnetFamily is MPNet, as transformers' MPNetFor* classes compute it: RoBERTa's
// embeddings without token types (positions counted from the padding index 1 + 1,
// whatever pad_token_id says), BERT's post-LayerNorm layers under other names, whose
// attention scores all add one learned bias per head for the bucketed distance of query
// and key (encoder.relative_attention_bias); RoBERTa's heads and masked-LM head.
var mpnetFamily = &family{
	base: "mpnet.",
	// The bias table counts as embeddings, as DeBERTa's relative embeddings do: for
	// freezing, and for layer-wise learning rates, as a table every layer reads.
	embeddings:  []string{"mpnet.embeddings.", "mpnet.encoder.relative_attention_bias."},
	layer:       bertLayerPrefix("mpnet."),
	pretraining: []string{"lm_head."},
	mlm:         robertaLMHead,
	fixed:       noneFixed,
	declare:     declareMPNet,
}

// mpnetLayer names a layer's parts as MPNet does.
var mpnetLayer = layerNames{
	q: "attention.attn.q", k: "attention.attn.k", v: "attention.attn.v",
	attnOut: "attention.attn.o", attnNorm: "attention.LayerNorm",
	inter: "intermediate.dense", out: "output.dense", outNorm: "output.LayerNorm",
}

// mpnet is MPNet's relative attention bias.
type mpnet struct {
	table *Param // mpnet.encoder.relative_attention_bias.weight [buckets, heads]
	// bucket[r + maxPos - 1] is the bucket of the distance r = query - key, on the device.
	bucket *ts.Tensor
	maxPos int
}

func declareMPNet(m *Model) {
	c := m.Config
	m.declareEmbeddings("mpnet.embeddings.", false)
	n := c.MaxPositionEmbeddings
	rows := make([]int64, 2*n-1)
	for k := range rows {
		rows[k] = mpnetBucket(k - (n - 1))
	}
	// Declared before the layers, which all read it: in the layout it sits with the
	// embeddings, whose gradients are also final only when backward ends.
	m.mpnet = &mpnet{
		table:  m.Params.add("mpnet.encoder.relative_attention_bias.weight", []int64{int64(c.RelativeAttentionNumBuckets), int64(c.NumAttentionHeads)}, InitNormal),
		bucket: ts.MustOfSlice(rows).MustTo(m.Opts.Device, true),
		maxPos: n,
	}
	m.bertLayers("mpnet.", mpnetLayer)
	robertaHead(m, "mpnet.")
}

// mpnetBucket is MPNetEncoder.relative_position_bucket of the distance r = query - key
// (T5's bidirectional buckets): keys after the query take the upper half; distances
// below a quarter of the buckets have one each, longer ones share the rest of their half
// logarithmically up to distance 128, computed in float32 as transformers does.
func mpnetBucket(r int) int64 {
	const half, exact, maxDistance = hf.MPNetBuckets / 2, hf.MPNetBuckets / 4, 128
	var b int64
	if r < 0 {
		b, r = half, -r
	}
	if r < exact {
		return b + int64(r)
	}
	l := float32(math.Log(float64(float32(r) / exact)))
	return b + min(exact+int64(l/float32(math.Log(maxDistance/exact))*(half-exact)), half-1)
}

// positionBias is MPNet's relative attention bias for sequences of length l, [1, heads,
// l, l]: for query i and key j the table's row of bucket(i - j); nil for the families
// without.
func (m *Model) positionBias(l int) *ts.Tensor {
	mp := m.mpnet
	if mp == nil {
		return nil
	}
	idx := pairLookup(mp.bucket, mp.maxPos, l, m.Opts.Device)
	bias := ts.MustEmbedding(mp.table.T, idx, -1, false, false) // [l·l, heads]
	idx.MustDrop()
	n := int64(l)
	return bias.MustView([]int64{n, n, -1}, true).MustPermute([]int64{2, 0, 1}, true).MustUnsqueeze(0, true)
}
