package model

import (
	"fmt"
	"math"

	"github.com/bertnode/bertnode/hf"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// modernbertFamily is ModernBERT (Warner et al. 2024, "Smarter, Better, Faster, Longer"),
// as transformers' ModernBertFor* classes compute it in eager mode: token embeddings and a
// LayerNorm, no position embeddings; pre-LayerNorm layers (none before the first layer's
// attention) whose fused Wqkv projection feeds rotary-embedded queries and keys, each
// layer attending to the whole sequence (every global_attn_every_n_layers-th, from the
// first) or to local_attention/2 positions either side; a GeGLU feed-forward; a final
// LayerNorm; and a head of dense, activation and LayerNorm over the [CLS] token or the
// tokens' mean. Norms and dense layers have no biases unless the config says so. The
// layers differ enough from BERT's post-LayerNorm ones that they are their own type
// (modernLayer).
var modernbertFamily = &family{
	base:        "model.",
	embeddings:  []string{"model.embeddings."},
	layer:       func(i int) string { return fmt.Sprintf("model.layers.%d.", i) },
	pretraining: []string{"decoder."}, // the masked-LM head's output layer; its head.* is the classifiers' too
	// ModernBertForMaskedLM: ModernBertPredictionHead (head.dense, classifier_activation,
	// head.norm), then the decoder, tied unless tie_word_embeddings is false.
	mlm: &mlmSpec{
		dense: "head.dense", norm: "head.norm", bias: "decoder.bias", untied: "decoder.weight",
		act:     func(c *hf.BertConfig) string { return c.ClassifierActivation },
		biases:  func(c *hf.BertConfig) (bool, bool, bool) { return c.ClassifierBias, c.NormBias, c.DecoderBias },
		ignored: []string{"decoder.weight"},
	},
	fixed:   noneFixed,
	declare: declareModernBERT,
}

// modern is what a ModernBERT model has besides Model's common fields.
type modern struct {
	layers []*modernLayer
	final  layerNorm
	head   modernHead
	// rope holds each rotary base's cos and signed sin for max_position_embeddings
	// positions, [positions, head size], on the model's device.
	rope map[float64]*rope
}

// modernLayer is one ModernBERT encoder layer.
type modernLayer struct {
	attnNorm *layerNorm // nil in the first layer, which attends to the embeddings' norm
	wqkv, wo linear
	mlpNorm  layerNorm
	wi, wo2  linear // GeGLU: wi makes [input, gate], wo2 maps act(input)*gate back
	global   bool
	rope     *rope
}

// modernHead is ModernBertPredictionHead (dense, activation, LayerNorm) and the
// classifier, over the pooled sequence or every token.
type modernHead struct {
	dense linear
	act   func(*ts.Tensor) *ts.Tensor
	norm  layerNorm
	out   linear
	drop  float64
	seq   bool   // sequence tasks pool the tokens first
	mean  bool   // by their mean under the attention mask, else the first token
	pool  string // the embed task's pooling of the final norm's output: no layers
}

func declareModernBERT(m *Model) {
	c, ps := m.Config, m.Params
	mo := &modern{rope: map[float64]*rope{}}
	m.modern = mo
	h, inter := c.HiddenSize, c.IntermediateSize
	m.emb.word = ps.add("model.embeddings.tok_embeddings.weight", []int64{int64(c.VocabSize), int64(h)}, InitNormal)
	m.emb.word.PadRow = int64(c.PadTokenID)
	m.emb.norm = m.modernNorm("model.embeddings.norm")
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ly := &modernLayer{global: c.GlobalLayer(i)}
		if i > 0 {
			n := m.modernNorm(p + "attn_norm")
			ly.attnNorm = &n
		}
		ly.wqkv = m.dense(p+"attn.Wqkv", 3*h, h, c.AttentionBias)
		ly.wo = m.dense(p+"attn.Wo", h, h, c.AttentionBias)
		ly.mlpNorm = m.modernNorm(p + "mlp_norm")
		ly.wi = m.dense(p+"mlp.Wi", 2*inter, h, c.MLPBias)
		ly.wo2 = m.dense(p+"mlp.Wo", h, inter, c.MLPBias)
		theta := c.RopeTheta(i)
		if mo.rope[theta] == nil {
			mo.rope[theta] = newRope(theta, c.MaxPositionEmbeddings, c.HeadSize(), c.HeadSize(), false, m.Opts.Device)
		}
		ly.rope = mo.rope[theta]
		m.loraWrap(ly.dense())
		mo.layers = append(mo.layers, ly)
	}
	mo.final = m.modernNorm("model.final_norm")
	hd := &mo.head
	switch m.Opts.Task {
	case Embed:
		hd.pool = m.Opts.Pooling
		return
	case MLM:
		m.declareMLM(m.fam.mlm)
		return
	}
	hd.dense = m.dense("head.dense", h, h, c.ClassifierBias)
	hd.act, _ = activation(c.ClassifierActivation) // the config checked the name
	hd.norm = m.modernNorm("head.norm")
	hd.out = m.linear("classifier", m.Opts.NumLabels, h)
	hd.drop = *c.ClassifierDropout
	if m.Opts.HeadDropout >= 0 {
		hd.drop = m.Opts.HeadDropout
	}
	hd.seq = m.Opts.Task.pooled()
	hd.mean = c.ClassifierPooling == "mean"
}

// modernNorm declares a LayerNorm of the hidden width, with a bias if norm_bias.
func (m *Model) modernNorm(name string) layerNorm {
	return m.norm(name, m.Config.HiddenSize, m.Config.LayerNormEps, m.Config.NormBias)
}

// windowMasks are [n, n] masks, true where |i - j| > half, what a local layer does not
// see, and on the diagonal. They are made on the device for each batch's length: no
// host copy, which for 8192 positions would be 64 MiB each.
func windowMasks(n, half int, dev gotch.Device) (far, self *ts.Tensor) {
	pos := ts.MustArange(ts.IntScalar(int64(n)), gotch.Int64, dev)
	row := pos.MustUnsqueeze(0, false)
	dist := pos.MustUnsqueeze(1, true).MustSub(row, true).MustAbs(true) // [n, n]
	row.MustDrop()
	far = dist.MustGt(ts.IntScalar(int64(half)), false)
	self = dist.MustEq(ts.IntScalar(0), true)
	return far, self
}

// rope is rotary position embedding for one base: x·cos + x[partner]·sin, where each
// rotated pair of dimensions (i, partner(i)) has the same angle and sin is negated on the
// pair's first. transformers' and NomicBERT's x·cos + rotate_half(x)·sin pairs i with
// i + r/2 over the rotated dimensions r (rotate_half(x) = [-x₂, x₁]), or, interleaved,
// 2i with 2i+1; the dimensions past r keep their values (cos 1, sin 0).
type rope struct {
	cos, sin *ts.Tensor
	// partner is the index of each dimension's partner on the device; nil where that is
	// a roll by half the head (whole heads by halves: ModernBERT's).
	partner *ts.Tensor
}

// newRope tabulates the angles of rot of each head's d dimensions as transformers
// computes them in float32: inverse frequencies 1/θ^(2i/rot), each times the position,
// rounded to float32 at every step, so that positions far out get transformers'
// angles, rounding included.
func newRope(theta float64, positions, d, rot int, interleaved bool, dev gotch.Device) *rope {
	half := rot / 2
	inv := make([]float32, half)
	for i := range inv {
		e := float32(2*i) / float32(rot)
		inv[i] = 1 / float32(math.Pow(theta, float64(e)))
	}
	pair := func(i int) (int, int) {
		if interleaved {
			return 2 * i, 2*i + 1
		}
		return i, half + i
	}
	cos, sin := make([]float32, positions*d), make([]float32, positions*d)
	for p := range positions {
		for j := rot; j < d; j++ {
			cos[p*d+j] = 1
		}
		for i, f := range inv {
			a := float64(float32(p) * f)
			c, s := float32(math.Cos(a)), float32(math.Sin(a))
			x, y := pair(i)
			cos[p*d+x], cos[p*d+y] = c, c
			sin[p*d+x], sin[p*d+y] = -s, s
		}
	}
	shape := []int64{int64(positions), int64(d)}
	r := &rope{
		cos: ts.MustOfSlice(cos).MustView(shape, true).MustTo(dev, true),
		sin: ts.MustOfSlice(sin).MustView(shape, true).MustTo(dev, true),
	}
	if rot < d || interleaved {
		idx := make([]int64, d)
		for j := range idx {
			idx[j] = int64(j)
		}
		for i := range half {
			x, y := pair(i)
			idx[x], idx[y] = int64(y), int64(x)
		}
		r.partner = ts.MustOfSlice(idx).MustTo(dev, true)
	}
	return r
}

// apply rotates x [B, heads, L, d], which it takes ownership of.
func (r *rope) apply(x *ts.Tensor, l int64) *ts.Tensor {
	cos := r.cos.MustNarrow(0, 0, l, false)
	sin := r.sin.MustNarrow(0, 0, l, false)
	var partners *ts.Tensor
	if r.partner != nil {
		partners = x.MustIndexSelect(3, r.partner, false)
	} else {
		partners = x.MustRoll([]int64{x.MustSize()[3] / 2}, []int64{-1}, false)
	}
	rolled := partners.MustMul(sin, true)
	out := x.MustMul(cos, true).MustAdd(rolled, true)
	rolled.MustDrop()
	cos.MustDrop()
	sin.MustDrop()
	return out
}

// forward computes the logits of b; ids and mask are its [B, L] tensors, ext the
// additive padding mask [B, 1, 1, L]. With attentions it keeps each layer's attention
// probabilities in out. For inference the layers run on the tokens alone where b has
// padding (unpad.go), as transformers' flash-attention path does.
func (mo *modern) forward(m *Model, b *Batch, ids, mask, ext *ts.Tensor, drop *dropper, train, attentions bool, out *Output) *ts.Tensor {
	c := m.Config
	head := func(h *ts.Tensor) *ts.Tensor { // the final norm's output h
		if m.head.mlm != nil {
			return m.mlmLogits(h, b)
		}
		return mo.head.fwd(h, mask, drop)
	}
	sparse := m.emb.word.Trainable && !m.Opts.Device.IsCuda() // as embeddings.fwd
	x := ts.MustEmbedding(m.emb.word.T, ids, int64(c.PadTokenID), false, sparse)
	n := m.emb.norm.fwd(x)
	x.MustDrop()
	h := drop.apply(n, c.EmbeddingDropout)
	n.MustDrop()

	var p *packing
	if !train && !attentions && (mo.head.seq || b.Labels == nil) { // as encode
		p = newPacking(b, ext, m.Opts.Device)
	}
	if p != nil {
		defer p.drop()
		x := p.pack(h)
		h.MustDrop()
		locals := make([]*ts.Tensor, len(p.groups)) // each group's local mask, made once
		for i, g := range p.groups {
			if locals[i] = localMask(m, g.ext, int(g.N), int(g.L)); locals[i] != g.ext {
				defer locals[i].MustDrop()
			}
		}
		for _, ly := range mo.layers {
			x = ly.fwdPacked(m, x, p, locals, drop)
		}
		f := mo.final.fwd(x)
		x.MustDrop()
		return head(p.unpack(f))
	}
	local := localMask(m, ext, b.B, b.L)
	if local != ext {
		defer local.MustDrop()
	}
	if drop.train && m.Opts.GradientCheckpointing && !attentions {
		ext, local := ext.MustShallowClone(), local.MustShallowClone()
		h = m.recomputed(h, drop, out, len(mo.layers), func(i int, x *ts.Tensor, drop *dropper) *ts.Tensor {
			am := local
			if mo.layers[i].global {
				am = ext
			}
			y, _ := mo.layers[i].fwd(m, x, am, b, drop, false)
			return y
		}, nil, ext, local)
		f := mo.final.fwd(h)
		h.MustDrop()
		return head(f)
	}
	for _, ly := range mo.layers {
		am := local
		if ly.global {
			am = ext
		}
		var probs *ts.Tensor
		h, probs = ly.fwd(m, h, am, b, drop, attentions)
		if probs != nil {
			out.Attentions = append(out.Attentions, probs)
		}
	}
	f := mo.final.fwd(h)
	h.MustDrop()
	return head(f)
}

// localMask is a local layer's additive mask for a batch [n, l] whose padding mask is
// ext [n, 1, 1, l]: ext itself where the window covers the whole length, else [n, 1, l,
// l] with the positions outside the window masked too (set, not added, as transformers
// does). A padding position with no real token within the window would have its whole
// row masked: it attends to itself instead. transformers' eager attention gives such a
// row the same weight on every key, and libtorch 2's fused attention another answer,
// whose backward disagreed with its forward (QA's loss reads the padding's logits: its
// gradient was 30% off on libtorch 2.6); the real positions' outputs are the same.
func localMask(m *Model, ext *ts.Tensor, n, l int) *ts.Tensor {
	half := m.Config.LocalAttention / 2
	if l-1 <= half {
		return ext
	}
	far, self := windowMasks(l, half, m.Opts.Device)
	defer far.MustDrop()
	defer self.MustDrop()
	low := ts.FloatScalar(-math.MaxFloat32)
	local := ext.MustExpand([]int64{int64(n), 1, int64(l), int64(l)}, false, false).MustMaskedFill(far, low, true)
	blind := local.MustEq(low, false).MustAllDim(-1, true, true).MustLogicalAnd(self, true) // [n, 1, l, l]
	defer blind.MustDrop()
	return local.MustMaskedFill(blind, ts.FloatScalar(0), true)
}

// fwd applies the layer to h [B, L, H], which it takes ownership of, with the additive
// attention mask am ([B, 1, 1, L] or, local, [B, 1, L, L]). With keep it also returns
// the attention probabilities.
func (ly *modernLayer) fwd(m *Model, h, am *ts.Tensor, b *Batch, drop *dropper, keep bool) (*ts.Tensor, *ts.Tensor) {
	c := m.Config
	B, L, nh, hd := int64(b.B), int64(b.L), int64(c.NumAttentionHeads), int64(c.HeadSize())
	x := h
	if ly.attnNorm != nil {
		x = ly.attnNorm.fwd(h)
	}
	// Wqkv's output is [q | k | v], each [heads, head size]: [3, B, heads, L, d].
	qkv := ly.wqkv.fwd(x).MustView([]int64{B, L, 3, nh, hd}, true).MustPermute([]int64{2, 0, 3, 1, 4}, true)
	if x != h {
		x.MustDrop()
	}
	q := ly.rope.apply(qkv.MustSelect(0, 0, false), L)
	k := ly.rope.apply(qkv.MustSelect(0, 1, false), L)
	v := qkv.MustSelect(0, 2, false)
	qkv.MustDrop()
	p := c.AttentionProbsDropoutProb
	dropProbs := func(t *ts.Tensor) *ts.Tensor { return drop.apply(t, p) }
	var ctx, kept *ts.Tensor
	if keep {
		var probs *ts.Tensor
		ctx, probs = attend(q, k, v, am, dropProbs)
		kept = probs.MustDetach(false)
		probs.MustDrop()
	} else {
		rate, ok := drop.fusedRate(p, false)
		ctx = attendContext(q, k, v, am, dropProbs, rate, ok)
	}
	return ly.rest(m, ctx, h, drop), kept
}

// fwdPacked is fwd for inference on packed rows h [T, H], which it takes ownership of:
// attention spreads each group of sequences out to its own length, where the rotary
// positions and the window are those of the padded layout; locals are the groups'
// local masks. drop is inference's: off.
func (ly *modernLayer) fwdPacked(m *Model, h *ts.Tensor, p *packing, locals []*ts.Tensor, drop *dropper) *ts.Tensor {
	c := m.Config
	H, nh, hd := int64(c.HiddenSize), int64(c.NumAttentionHeads), int64(c.HeadSize())
	x := h
	if ly.attnNorm != nil {
		x = ly.attnNorm.fwd(h)
	}
	qkv := ly.wqkv.fwd(x)
	if x != h {
		x.MustDrop()
	}
	ctxs := make([]*ts.Tensor, len(p.groups))
	for i, g := range p.groups {
		part := func(j int64) *ts.Tensor { // [N, heads, L, d] of q, k or v
			rows := qkv.MustNarrow(0, g.off, g.T, false).MustNarrow(1, j*H, H, true)
			return spread(rows, g.idx, g.N, g.L).MustView([]int64{g.N, g.L, nh, hd}, true).MustPermute([]int64{0, 2, 1, 3}, true)
		}
		am := g.ext
		if !ly.global {
			am = locals[i]
		}
		ctx := attendContext(ly.rope.apply(part(0), g.L), ly.rope.apply(part(1), g.L), part(2), am, nil, 0, true)
		ctxs[i] = ctx.MustView([]int64{g.N * g.L, -1}, true).MustIndexSelect(0, g.idx, true)
	}
	qkv.MustDrop()
	return ly.rest(m, catRows(ctxs), h, drop)
}

// rest is the layer after attention: the output projection with its residual onto h,
// then the GeGLU feed-forward on its LayerNorm, with its residual. It takes ownership
// of ctx and h.
func (ly *modernLayer) rest(m *Model, ctx, h *ts.Tensor, drop *dropper) *ts.Tensor {
	c := m.Config
	a := ly.wo.fwd(ctx)
	ctx.MustDrop()
	ad := drop.apply(a, c.AttentionProbsDropoutProb) // transformers' out_drop: attention_dropout
	a.MustDrop()
	h2 := h.MustAdd(ad, true)
	ad.MustDrop()

	y := ly.mlpNorm.fwd(h2)
	z := ly.wi.fwd(y)
	y.MustDrop()
	parts := z.MustChunk(2, -1, true)
	g := m.act(parts[0]).MustMul(parts[1], true)
	parts[1].MustDrop()
	gd := drop.apply(g, c.HiddenDropoutProb) // mlp_dropout
	g.MustDrop()
	o := ly.wo2.fwd(gd)
	gd.MustDrop()
	h3 := h2.MustAdd(o, true)
	o.MustDrop()
	return h3
}

// fwd computes the logits from the final norm's output h [B, L, H], taking ownership
// of h; mask is the attention mask [B, L].
func (hd *modernHead) fwd(h, mask *ts.Tensor, drop *dropper) *ts.Tensor {
	if hd.pool != "" {
		return pool(h, mask, hd.pool)
	}
	feat := h
	if hd.seq {
		mode := PoolCLS
		if hd.mean {
			mode = PoolMean
		}
		feat = pool(h, mask, mode)
	}
	x := hd.norm.fwd(hd.act(hd.dense.fwd(feat)))
	feat.MustDrop()
	d := drop.apply(x, hd.drop)
	x.MustDrop()
	logits := hd.out.fwd(d)
	d.MustDrop()
	return logits
}

// dense lists the layer's dense layers, for Quantize.
func (ly *modernLayer) dense() []*linear { return []*linear{&ly.wqkv, &ly.wo, &ly.wi, &ly.wo2} }

// CustomHeadWeight is the checkpoint name of the custom head's dense weight
// (Options.HeadHidden) in models of cfg's family: "" for ModernBERT, whose own head has
// a head.dense, and which has no custom head.
func CustomHeadWeight(cfg *hf.BertConfig) string {
	if cfg.ModelType == "modernbert" {
		return ""
	}
	return "head.dense.weight"
}

// checkModern refuses what bertnode does not build for ModernBERT.
func checkModern(cfg *hf.BertConfig, opts Options) error {
	if cfg.ModelType == "modernbert" && opts.HeadHidden > 0 {
		return fmt.Errorf("model: ModernBERT's head already has its dense layer (head.dense); a custom head (head_hidden %d) is not built for it", opts.HeadHidden)
	}
	return nil
}
