package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// debertaV2Family is DeBERTa-v2 and -v3, as transformers' DebertaV2For* classes compute
// them: BERT's post-LayerNorm layers, whose attention scores add, to the content's
// q·k, content-to-position q_i·Kr[δ(i,j)] (c2p) and position-to-content k_j·Qr[δ(i,j)]
// (p2c) terms, Kr and Qr being the relative embeddings (after their LayerNorm) through
// the layer's key and query projections (or its own pos_key_proj and pos_query_proj),
// δ(i,j) the distance i-j bucketed logarithmically past position_buckets/2, each term
// divided by √(d·(1+terms)); embeddings without absolute positions (v3), through
// embed_proj first where their width differs, zero under the padding; a pooler of
// dense and activation on [CLS] under the sequence heads.
var debertaV2Family = &family{
	base: "deberta.",
	// The relative position embeddings and their LayerNorm count as embeddings: for
	// freezing, and for layer-wise learning rates, as the tables every layer reads.
	embeddings: []string{"deberta.embeddings.", "deberta.encoder.rel_embeddings.", "deberta.encoder.LayerNorm."},
	layer:      bertLayerPrefix("deberta."),
	// The pretraining heads (masked LM under either name, v3's replaced-token detection)
	// and the absolute positions v3 checkpoints carry without using them
	// (position_biased_input false).
	pretraining: []string{"cls.", "lm_predictions.", "mask_predictions.", "deberta.embeddings.position_embeddings."},
	// DebertaV2ForMaskedLM's cls (transformers' legacy head, its default): BERT's, the
	// dense layer mapping to embedding_size. Microsoft's checkpoints (deberta-v3-base's)
	// and transformers' legacy-false head name it lm_predictions.lm_head, read here.
	mlm: &mlmSpec{
		dense: "cls.predictions.transform.dense", norm: "cls.predictions.transform.LayerNorm", bias: "cls.predictions.bias",
		aliases: map[string]string{
			"lm_predictions.lm_head.dense.":     "cls.predictions.transform.dense.",
			"lm_predictions.lm_head.LayerNorm.": "cls.predictions.transform.LayerNorm.",
			"lm_predictions.lm_head.bias":       "cls.predictions.bias",
		},
		ignored: []string{"cls.predictions.decoder.", "mask_predictions.", "deberta.embeddings.position_embeddings."},
	},
	fixed:   noneFixed,
	declare: declareDebertaV2,
}

// debertaLayer names a layer's parts as DeBERTa does.
var debertaLayer = layerNames{
	q: "attention.self.query_proj", k: "attention.self.key_proj", v: "attention.self.value_proj",
	attnOut: "attention.output.dense", attnNorm: "attention.output.LayerNorm",
	inter: "intermediate.dense", out: "output.dense", outNorm: "output.LayerNorm",
}

// deberta is what a DeBERTa model has besides the BERT-like families' parts.
type deberta struct {
	relEmb  *Param     // deberta.encoder.rel_embeddings.weight [2·span, H]
	relNorm *layerNorm // deberta.encoder.LayerNorm, with norm_rel_ebd "layer_norm"
	span    int64
	c2p     bool
	p2c     bool
	scale   float64 // √(head size · (1 + relative terms)), rounded to float32 as transformers does
	// row[r + maxPos - 1] is the relative embedding distance r = i - j reads:
	// clamp(bucket(r) + span, 0, 2·span - 1), on the host and (rowT) on the device.
	row    []int64
	rowT   *ts.Tensor
	maxPos int
}

// relProj is a layer's projections of the relative embeddings: its own key and query
// projections (share_att_key) or pos_key_proj and pos_query_proj.
type relProj struct{ key, query *linear }

func declareDebertaV2(m *Model) {
	c, ps := m.Config, m.Params
	h := c.HiddenSize
	w := h
	if c.EmbeddingSize > 0 {
		w = c.EmbeddingSize
	}
	e := &m.emb
	e.word = ps.add("deberta.embeddings.word_embeddings.weight", []int64{int64(c.VocabSize), int64(w)}, InitNormal)
	e.word.PadRow = int64(c.PadTokenID)
	if c.PositionBiasedInput {
		e.pos = ps.add("deberta.embeddings.position_embeddings.weight", []int64{int64(c.MaxPositionEmbeddings), int64(w)}, InitNormal)
	}
	if c.TypeVocabSize > 0 {
		e.typ = ps.add("deberta.embeddings.token_type_embeddings.weight", []int64{int64(c.TypeVocabSize), int64(w)}, InitNormal)
	}
	if w != h { // embed_proj has no bias
		p := m.dense("deberta.embeddings.embed_proj", h, w, false)
		e.proj = &p
	}
	e.norm = m.layerNorm("deberta.embeddings.LayerNorm", h, c.LayerNormEps)

	d := &deberta{}
	m.deberta = d
	if c.RelativeAttention {
		d.span, d.c2p, d.p2c = int64(c.RelativeSpan()), c.PosAttType.Has("c2p"), c.PosAttType.Has("p2c")
		sf := 1
		for _, on := range []bool{d.c2p, d.p2c} {
			if on {
				sf++
			}
		}
		d.scale = float64(float32(math.Sqrt(float64(float32(c.HeadSize() * sf)))))
		d.maxPos = c.MaxPositionEmbeddings
		d.row = relativeBuckets(c.MaxPositionEmbeddings, c.PositionBuckets, c.MaxRelativeDistance())
		for k, b := range d.row {
			d.row[k] = min(max(b+d.span, 0), 2*d.span-1)
		}
		d.rowT = ts.MustOfSlice(d.row).MustTo(m.Opts.Device, true)
		// Declared before the layers, which all read them: in the layout they sit with
		// the embeddings, whose gradients are also final only when backward ends.
		d.relEmb = ps.add("deberta.encoder.rel_embeddings.weight", []int64{2 * d.span, int64(h)}, InitNormal)
		if c.NormRelEmbeddings() {
			n := m.layerNorm("deberta.encoder.LayerNorm", h, c.LayerNormEps)
			d.relNorm = &n
		}
	}
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("deberta.encoder.layer.%d.", i)
		ly := m.declareLayer(p, debertaLayer)
		if c.RelativeAttention {
			ly.rel = &relProj{key: &ly.k, query: &ly.q}
			if !c.ShareAttKey {
				ly.rel = &relProj{}
				if d.c2p {
					pk := m.linear(p+"attention.self.pos_key_proj", h, h)
					ly.rel.key = &pk
				}
				if d.p2c {
					pq := m.linear(p+"attention.self.pos_query_proj", h, h)
					ly.rel.query = &pq
				}
			}
		}
		m.layers = append(m.layers, ly)
	}
	// transformers' heads: the pooler (dropout at pooler_dropout, dense, activation),
	// then dropout at cls_dropout or hidden_dropout_prob; token classification's
	// dropout at hidden_dropout_prob; question answering's none.
	s := headSpec{out: "classifier", drop: c.HiddenDropoutProb}
	switch m.Opts.Task {
	case Classify, MultiLabel, Regression, Choice:
		s.pre, s.preDropRate, s.drop = "pooler.dense", c.PoolerDropout, orDefault(c.ClassifierDropout, c.HiddenDropoutProb)
		s.preAct = c.PoolerHiddenAct
	case QA:
		s = headSpec{out: "qa_outputs"}
	}
	m.declareHead(s)
}

// relativeBuckets tabulates transformers' build_relative_position for distances
// r = i - j of sequences up to n long: r itself without buckets, else r within
// buckets/2 of 0 and, past it, mid + ⌈log(|r|/mid) / log((maxRel-1)/mid) · (mid-1)⌉
// with r's sign, computed in float32 as transformers does.
func relativeBuckets(n, buckets, maxRel int) []int64 {
	out := make([]int64, 2*n-1)
	mid := buckets / 2
	denom := float32(math.Log(float64(float32(float64(maxRel-1) / float64(mid)))))
	for k := range out {
		r := k - (n - 1)
		out[k] = int64(r)
		if buckets <= 0 || maxRel <= 0 {
			continue
		}
		abs := max(r, -r)
		if r < mid && r > -mid {
			abs = mid - 1
		}
		if abs <= mid {
			continue
		}
		l := float32(math.Log(float64(float32(abs) / float32(mid))))
		pos := float32(math.Ceil(float64(l/denom*float32(mid-1)))) + float32(mid)
		if r < 0 {
			pos = -pos
		}
		out[k] = int64(pos)
	}
	return out
}

// relState is one forward's relative attention: the relative embeddings after their
// LayerNorm, those the batch's distances read, and which of them each pair of
// positions reads. A batch of L tokens reads at most 2L-1 of the 2·span rows (83 of
// deberta-v3's 512 at L = 42): projecting and multiplying only those is what
// transformers computes for them, at a fraction of the work.
type relState struct {
	d   *deberta
	emb *ts.Tensor // [n, H]: rows lo..lo+n-1 of the 2·span
	idx *ts.Tensor // [L, L]: clamp(δ(i,j) + span, 0, 2·span - 1) - lo
}

// relative is the relative attention state for sequences of length l; nil for the
// families without.
func (m *Model) relative(l int) *relState {
	d := m.deberta
	if d == nil || d.relEmb == nil {
		return nil
	}
	// Distances i - j run from 1-l to l-1; the row grows with them.
	lo, hi := d.row[1-l+d.maxPos-1], d.row[l-1+d.maxPos-1]
	idx := pairLookup(d.rowT, d.maxPos, l, m.Opts.Device)
	rs := &relState{d: d, idx: idx.MustSubScalar(ts.IntScalar(lo), true).MustView([]int64{int64(l), int64(l)}, true)}
	rows := d.relEmb.T.MustNarrow(0, lo, hi-lo+1, false)
	rs.emb = rows
	if d.relNorm != nil { // row by row: the rows' norm is the whole table's
		rs.emb = d.relNorm.fwd(rows)
		rows.MustDrop()
	}
	return rs
}

// pairLookup is table[i - j + maxPos - 1] for each pair of positions i, j < l, [l·l]
// row-major, computed on the device from table, a distance's value for each distance of
// sequences up to maxPos long.
func pairLookup(table *ts.Tensor, maxPos, l int, dev gotch.Device) *ts.Tensor {
	pos := ts.MustArange(ts.IntScalar(int64(l)), gotch.Int64, dev)
	col := pos.MustUnsqueeze(0, false)
	dist := pos.MustUnsqueeze(1, true).MustSub(col, true).MustAddScalar(ts.IntScalar(int64(maxPos-1)), true)
	col.MustDrop()
	flat := dist.MustFlatten(0, 1, true)
	defer flat.MustDrop()
	return table.MustIndexSelect(0, flat, false)
}

func (rs *relState) drop() {
	if rs == nil {
		return
	}
	rs.idx.MustDrop()
	rs.emb.MustDrop()
}

// bias is the layer's relative attention scores for queries q [B, heads, Q, d] (the
// first Q positions) and keys k [B, heads, L, d], which stay the caller's: c2p + p2c,
// each divided by the scale, [B, heads, Q, L]. The relative embeddings get the hidden
// dropout, as in transformers.
func (ly *layer) bias(m *Model, rs *relState, q, k *ts.Tensor, drop *dropper) *ts.Tensor {
	c, d := m.Config, rs.d
	nh, hd := int64(c.NumAttentionHeads), int64(c.HeadSize())
	Q, L := q.MustSize()[2], k.MustSize()[2]
	re := drop.apply(rs.emb, c.HiddenDropoutProb)
	defer re.MustDrop()
	// [n, H] -> [heads, d, n], to multiply [.., rows, d] with.
	n := re.MustSize()[0]
	posT := func(l *linear) *ts.Tensor {
		return l.fwd(re).MustView([]int64{n, nh, hd}, true).MustPermute([]int64{1, 2, 0}, true)
	}
	idx := rs.idx.MustNarrow(0, 0, Q, false).MustNarrow(1, 0, L, true)
	defer idx.MustDrop()
	scale := ts.FloatScalar(d.scale)
	var score *ts.Tensor
	if d.c2p {
		pk := posT(ly.rel.key)
		at := q.MustMatmul(pk, false) // [B, heads, Q, n]
		pk.MustDrop()
		sz := at.MustSize()
		ix := idx.MustExpand([]int64{sz[0], sz[1], Q, L}, false, false)
		score = at.MustGather(-1, ix, false, true).MustDivScalar(scale, true)
		ix.MustDrop()
	}
	if d.p2c {
		pq := posT(ly.rel.query)
		at := k.MustMatmul(pq, false) // [B, heads, L, n]
		pq.MustDrop()
		sz := at.MustSize()
		// Key j reads the embedding of δ(i, j) for each query i: idx's columns.
		ix := idx.MustT(false).MustExpand([]int64{sz[0], sz[1], L, Q}, false, true)
		p2c := at.MustGather(-1, ix, false, true).MustTranspose(-1, -2, true).MustDivScalar(scale, true)
		ix.MustDrop()
		if score == nil {
			score = p2c
		} else {
			score = score.MustAdd(p2c, true)
			p2c.MustDrop()
		}
	}
	return score
}

// attendRelative is DeBERTa's attention: softmax(q kᵀ / scale + bias + ext) v, for q
// [B, heads, Q, d] and k, v [B, heads, L, d], which it takes ownership of, and bias
// [B, heads, Q, L], which it drops. It returns the context [B, Q, heads·d] and the
// probabilities, as attend.
func attendRelative(q, k, v, bias, ext *ts.Tensor, scale float64, drop func(*ts.Tensor) *ts.Tensor) (ctx, probs *ts.Tensor) {
	kt := k.MustTranspose(-1, -2, true)
	scores := q.MustMatmul(kt, true).MustDivScalar(ts.FloatScalar(scale), true)
	kt.MustDrop()
	if bias != nil {
		scores = scores.MustAdd(bias, true)
		bias.MustDrop()
	}
	return softmaxContext(scores.MustAdd(ext, true), v, drop)
}

// debertaEmbed is DeBERTa's embeddings: word (+ position) (+ type) embeddings, embed_proj,
// LayerNorm, zeros under the padding, dropout.
func (m *Model) debertaEmbed(b *Batch, ids, mask *ts.Tensor, drop *dropper) *ts.Tensor {
	c, e, dev := m.Config, &m.emb, m.Opts.Device
	sparse := e.word.Trainable && !dev.IsCuda() // as embeddings.fwd
	x := ts.MustEmbedding(e.word.T, ids, int64(c.PadTokenID), false, sparse)
	if e.pos != nil {
		pos := m.posIDs.MustNarrow(0, 0, int64(b.L), false)
		pe := ts.MustEmbedding(e.pos.T, pos, -1, false, false)
		pos.MustDrop()
		x = x.MustAdd(pe, true)
		pe.MustDrop()
	}
	if e.typ != nil {
		x = e.addTypes(m, b, x)
	}
	if e.proj != nil {
		p := e.proj.fwd(x)
		x.MustDrop()
		x = p
	}
	n := e.norm.fwd(x)
	x.MustDrop()
	mf := mask.MustTotype(n.DType(), false).MustUnsqueeze(-1, true)
	z := n.MustMul(mf, true)
	mf.MustDrop()
	h := drop.apply(z, c.HiddenDropoutProb)
	z.MustDrop()
	return h
}
