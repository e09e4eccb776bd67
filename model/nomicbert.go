package model

import (
	"fmt"

	"github.com/bertnode/bertnode/hf"
)

// nomicFamily is NomicBERT, as the hub code of nomic-embed-text
// (modeling_hf_nomic_bert.py, NomicBertModel and NomicBertForSequenceClassification)
// computes it: word and token type embeddings, emb_ln and dropout, no position
// embeddings; BERT's post-LayerNorm layers whose fused Wqkv makes queries and keys that
// rotary positions turn (rotary_emb_fraction of each head, by halves or interleaved),
// and whose feed-forward is gated, fc2(fc11(x) · act(fc12(x))); the pooler (dense, tanh)
// on the first token, dropout and classifier for sequences. The tasks it has no class
// for take BERT's heads under the same base.
var nomicFamily = &family{
	base:        "bert.",
	embeddings:  []string{"bert.embeddings.", "bert.emb_ln."},
	layer:       func(i int) string { return fmt.Sprintf("bert.encoder.layers.%d.", i) },
	pretraining: []string{"cls."}, // NomicBertForPreTraining's head
	// NomicBertForPreTraining's masked-LM head: transform.dense (mlp_fc1_bias), SiLU for
	// swiglu else exact GELU (the tanh GELUs it knows name no gated MLP, the only one
	// bertnode builds), transform.layer_norm, then the decoder, tied, with bias
	// mlp_fc1_bias.
	mlm: &mlmSpec{
		dense: "cls.predictions.transform.dense", norm: "cls.predictions.transform.layer_norm", bias: "cls.predictions.decoder.bias",
		act:     nomicTransformAct,
		biases:  func(c *hf.BertConfig) (bool, bool, bool) { return c.MLPFc1Bias, true, c.MLPFc1Bias },
		arch:    "ForPreTraining",
		ignored: []string{"cls.predictions.decoder.weight"},
	},
	fixed:   noneFixed,
	declare: declareNomic,
}

func nomicTransformAct(c *hf.BertConfig) string {
	if c.HiddenAct == "swiglu" {
		return "silu"
	}
	return "gelu"
}

func declareNomic(m *Model) {
	c, ps, e := m.Config, m.Params, &m.emb
	h, inter := c.HiddenSize, c.IntermediateSize
	e.word = ps.add("bert.embeddings.word_embeddings.weight", []int64{int64(c.VocabSize), int64(h)}, InitNormal)
	e.word.PadRow = int64(c.PaddingIdx())
	if c.TypeVocabSize > 0 {
		e.typ = ps.add("bert.embeddings.token_type_embeddings.weight", []int64{int64(c.TypeVocabSize), int64(h)}, InitNormal)
	}
	e.norm = m.layerNorm("bert.emb_ln", h, c.LayerNormEps)
	r := newRope(c.RotaryEmbBase, c.MaxPositionEmbeddings, c.HeadSize(), c.RotaryDim(), c.RotaryEmbInterleaved, m.Opts.Device)
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("bert.encoder.layers.%d.", i)
		// Declared in NomicBertBlock's order; dropout1 and dropout2 (resid_pdrop) follow
		// attention and the MLP, as BERT's.
		qkv := m.dense(p+"attn.Wqkv", 3*h, h, c.QKVProjBias)
		ly := &layer{qkv: &qkv, rope: r, attnOutDrop: true, outDrop: true}
		ly.attnOut = m.dense(p+"attn.out_proj", h, h, c.QKVProjBias)
		ly.inter = m.dense(p+"mlp.fc11", inter, h, c.MLPFc1Bias)
		gate := m.dense(p+"mlp.fc12", inter, h, c.MLPFc1Bias)
		ly.gate, ly.out = &gate, m.dense(p+"mlp.fc2", h, inter, c.MLPFc2Bias)
		ly.attnNorm, ly.outNorm = m.layerNorm(p+"norm1", h, c.LayerNormEps), m.layerNorm(p+"norm2", h, c.LayerNormEps)
		m.loraWrap(ly.dense())
		m.layers = append(m.layers, ly)
	}
	// hf completed classifier_dropout from embd_pdrop, as the sequence class's getattr.
	bertHead(m, *c.ClassifierDropout)
}
