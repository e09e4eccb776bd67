package hf

import "encoding/json"

// nomicBERT is NomicBERT (Nussbaum et al. 2024, "Nomic Embed"), the encoder of
// nomic-ai/nomic-embed-text-v1 and v1.5 and nomic-bert-2048, as its hub code
// (modeling_hf_nomic_bert.py, loaded with trust_remote_code) computes it: BERT's
// post-LayerNorm layers with a fused Wqkv projection, rotary positions (on
// rotary_emb_fraction of each head, interleaved or by halves) instead of position
// embeddings, and a gated feed-forward (fc11 · act(fc12), then fc2). Its config.json is a
// GPT2Config's: BERT's fields under GPT-2's names.
var nomicBERT = &family{
	modelType: "nomic_bert", arch: "NomicBert",
	renames: map[string]string{
		"hidden_size": "n_embd", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
		"intermediate_size": "n_inner", "hidden_act": "activation_function", "hidden_dropout_prob": "resid_pdrop",
		"attention_probs_dropout_prob": "attn_pdrop", "layer_norm_eps": "layer_norm_epsilon",
		"max_position_embeddings": "n_positions",
	},
	noBERT: []string{"position_embedding_type"},
	extra: []configField{
		classifierDropout("classifier_dropout"),
		{"rotary_emb_fraction", func(c *BertConfig) any { return &c.RotaryEmbFraction }},
		{"rotary_emb_base", func(c *BertConfig) any { return &c.RotaryEmbBase }},
		{"rotary_emb_interleaved", func(c *BertConfig) any { return &c.RotaryEmbInterleaved }},
		{"rotary_scaling_factor", func(c *BertConfig) any { return &c.RotaryScalingFactor }},
		{"max_trained_positions", func(c *BertConfig) any { return &c.MaxTrainedPositions }},
		{"qkv_proj_bias", func(c *BertConfig) any { return &c.QKVProjBias }},
		{"mlp_fc1_bias", func(c *BertConfig) any { return &c.MLPFc1Bias }},
		{"mlp_fc2_bias", func(c *BertConfig) any { return &c.MLPFc2Bias }},
	},
	// bertnode builds the gated MLP alone, not the plain one (fc1, fc2) the others make.
	acts: []string{"swiglu", "geglu", "glu"},
	// NomicBertConfig() with no arguments, GPT2Config's defaults beneath: no rotary
	// positions (which bertnode refuses), gelu_new; n_inner None (0 here until parsed).
	defaults: func(c *BertConfig) {
		c.VocabSize, c.MaxPositionEmbeddings, c.IntermediateSize, c.HiddenAct = 50257, 1024, 0, "gelu_new"
		c.LayerNormEps, c.RotaryEmbBase, c.QKVProjBias, c.MLPFc1Bias, c.MLPFc2Bias = 1e-5, 1000, true, true, true
		c.RotaryScalingFactor, c.MaxTrainedPositions = ptr(1.0), 2048
	},
	parsed: nomicParsed,
	check:  checkNomicBERT,
}

// nomicGates are the activations of NomicBERT's gated feed-forward by
// activation_function, as ACT2FN names them: fc11(x) · act(fc12(x)).
var nomicGates = map[string]string{"swiglu": "silu", "geglu": "gelu", "glu": "sigmoid"}

// nomicMultiple is what NomicBERT's gated MLP rounds its width (n_inner) up to a
// multiple of (its multiple_of, which the block never sets).
const nomicMultiple = 256

// nomicUnsupported are NomicBertConfig's switches for variants bertnode does not build,
// with the value that means the variant nomic-embed-text is.
var nomicUnsupported = []struct {
	field string
	want  any
}{
	{"prenorm", false}, {"parallel_block", false}, {"use_rms_norm", false}, {"causal", false},
	{"rotary_emb_scale_base", nil}, {"rotary_head_dim", false},
}

// nomicParsed completes a parsed config as NomicBertModel completes its own: the
// vocabulary padded up to pad_vocab_size_multiple, n_inner None made the MLP's default
// width, the gated MLP's width rounded up to a multiple of 256, and the sequence head's
// dropout taken from embd_pdrop where classifier_dropout is absent (getattr's default in
// NomicBertForSequenceClassification).
func nomicParsed(c *BertConfig) error {
	mult := 1
	if err := c.extraField("pad_vocab_size_multiple", &mult); err != nil {
		return err
	}
	if mult < 1 || mult > 1<<16 {
		return fieldErr("pad_vocab_size_multiple", "want 1 to %d, got %d", 1<<16, mult)
	}
	c.VocabSize = (c.VocabSize + mult - 1) / mult * mult
	_, gated := nomicGates[c.HiddenAct]
	switch {
	case c.IntermediateSize == 0 && gated:
		c.IntermediateSize = 8 * c.HiddenSize / 3
	case c.IntermediateSize == 0:
		c.IntermediateSize = 4 * c.HiddenSize
	}
	if gated {
		c.IntermediateSize = (c.IntermediateSize + nomicMultiple - 1) / nomicMultiple * nomicMultiple
	}
	if c.ClassifierDropout == nil {
		embd := 0.1 // GPT2Config's embd_pdrop
		if err := c.extraField("embd_pdrop", &embd); err != nil {
			return err
		}
		c.ClassifierDropout = &embd
	}
	return nil
}

// extraField decodes the field name, which BertConfig keeps verbatim, into v; an absent
// field or null leaves v as it is.
func (c *BertConfig) extraField(name string, v any) error {
	raw, ok := c.extra[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fieldErr(name, "cannot use %s: %v", raw, unwrapTypeErr(err))
	}
	return nil
}

func checkNomicBERT(c *BertConfig) error {
	d := c.HeadSize()
	rot := float64(d) * c.RotaryEmbFraction
	switch {
	case !(c.RotaryEmbFraction > 0 && c.RotaryEmbFraction <= 1):
		return fieldErr("rotary_emb_fraction", "want (0, 1]: rotary positions (0 means absolute position embeddings, which bertnode does not build for NomicBERT), got %v", c.RotaryEmbFraction)
	case rot != float64(int(rot)) || int(rot)%2 != 0:
		return fieldErr("rotary_emb_fraction", "%v of the head size %d is %v dimensions; rotary positions need an even number", c.RotaryEmbFraction, d, rot)
	case !(c.RotaryEmbBase > 0):
		return fieldErr("rotary_emb_base", "must be positive, got %v", c.RotaryEmbBase)
	case c.RotaryScalingFactor != nil && c.MaxTrainedPositions <= 0:
		return fieldErr("max_trained_positions", "must be positive with rotary_scaling_factor set, got %d", c.MaxTrainedPositions)
	case c.TypeVocabSize < 0:
		return fieldErr("type_vocab_size", "must not be negative, got %d", c.TypeVocabSize)
	case c.IntermediateSize%nomicMultiple != 0:
		return fieldErr("n_inner", "%d: NomicBERT's gated MLP rounds its width up to a multiple of %d (%d)", c.IntermediateSize, nomicMultiple,
			(c.IntermediateSize+nomicMultiple-1)/nomicMultiple*nomicMultiple)
	case c.ClassifierDropout == nil:
		return fieldErr("classifier_dropout", "must be a number, got null")
	}
	for _, u := range nomicUnsupported {
		var v any
		if err := c.extraField(u.field, &v); err != nil {
			return err
		}
		if v != nil && v != u.want {
			return fieldErr(u.field, "%v is a NomicBERT variant bertnode does not build (nomic-embed-text has %v)", v, u.want)
		}
	}
	var kv *int
	if err := c.extraField("num_heads_kv", &kv); err != nil {
		return err
	}
	if kv != nil && *kv != c.NumAttentionHeads {
		return fieldErr("num_heads_kv", "%d key and value heads for %d query heads: grouped attention is not built", *kv, c.NumAttentionHeads)
	}
	return nil
}

// RotaryDim is the number of each head's dimensions NomicBERT rotates:
// rotary_emb_fraction of the head size.
func (c *BertConfig) RotaryDim() int { return int(float64(c.HeadSize()) * c.RotaryEmbFraction) }

// FeedForwardAct is transformers' ACT2FN name of the activation in the feed-forward:
// hidden_act, or for NomicBERT's gated MLP that of the gate (swiglu's silu).
func (c *BertConfig) FeedForwardAct() string {
	if g, ok := nomicGates[c.HiddenAct]; ok && c.ModelType == "nomic_bert" {
		return g
	}
	return c.HiddenAct
}
