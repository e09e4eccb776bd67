package hf

import (
	"encoding/json"
	"slices"
)

// modernbert is ModernBERT (Warner et al. 2024): pre-LayerNorm layers without biases,
// rotary positions instead of position embeddings, a GeGLU feed-forward, and attention
// local to a window in all layers but every global_attn_every_n_layers-th. Its
// config.json names BERT's fields its own way, and has no token types.
var modernbert = &family{
	modelType: "modernbert", arch: "ModernBert",
	renames: map[string]string{
		"hidden_act": "hidden_activation", "hidden_dropout_prob": "mlp_dropout",
		"attention_probs_dropout_prob": "attention_dropout", "layer_norm_eps": "norm_eps",
	},
	noBERT: []string{"type_vocab_size", "position_embedding_type"},
	extra: []configField{
		classifierDropout("classifier_dropout"),
		{"embedding_dropout", func(c *BertConfig) any { return &c.EmbeddingDropout }},
		{"norm_bias", func(c *BertConfig) any { return &c.NormBias }},
		{"attention_bias", func(c *BertConfig) any { return &c.AttentionBias }},
		{"mlp_bias", func(c *BertConfig) any { return &c.MLPBias }},
		{"classifier_bias", func(c *BertConfig) any { return &c.ClassifierBias }},
		{"classifier_pooling", func(c *BertConfig) any { return &c.ClassifierPooling }},
		{"classifier_activation", func(c *BertConfig) any { return &c.ClassifierActivation }},
		{"local_attention", func(c *BertConfig) any { return &c.LocalAttention }},
		{"global_attn_every_n_layers", func(c *BertConfig) any { return &c.GlobalAttnEvery }},
		{"global_rope_theta", func(c *BertConfig) any { return &c.GlobalRopeTheta }},
		{"local_rope_theta", func(c *BertConfig) any { return &c.LocalRopeTheta }},
		{"decoder_bias", func(c *BertConfig) any { return &c.DecoderBias }},
		{"tie_word_embeddings", func(c *BertConfig) any { return &c.TieWordEmbeddings }},
	},
	// transformers' ModernBertConfig() with no arguments: ModernBERT-base.
	defaults: func(c *BertConfig) {
		c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 50368, 768, 1152, 22
		c.MaxPositionEmbeddings, c.LayerNormEps, c.PadTokenID, c.TypeVocabSize = 8192, 1e-5, 50283, 0
		c.HiddenDropoutProb, c.AttentionProbsDropoutProb, c.ClassifierDropout = 0, 0, ptr(0.0)
		c.ClassifierPooling, c.ClassifierActivation = "cls", "gelu"
		c.LocalAttention, c.GlobalAttnEvery = 128, 3
		c.GlobalRopeTheta, c.LocalRopeTheta = 160000, 10000
		c.DecoderBias, c.TieWordEmbeddings = true, true
	},
	parsed: modernbertRope,
	check:  checkModernBERT,
}

// ropeParameters is transformers 5's rope_parameters of a ModernBERT config.json, by
// layer type; older configs (and hub checkpoints) give global_rope_theta and
// local_rope_theta instead, which transformers 5 still reads.
type ropeParameters map[string]*struct {
	RopeType  string   `json:"rope_type"`
	RopeTheta *float64 `json:"rope_theta"`
}

// modernbertRope takes the rotary bases from rope_parameters where the config has it,
// as transformers 5 does (its values win over global_rope_theta and local_rope_theta).
func modernbertRope(c *BertConfig) error {
	rp, err := c.ropeParameters()
	if err != nil || rp == nil {
		return err
	}
	for typ, theta := range map[string]*float64{"full_attention": &c.GlobalRopeTheta, "sliding_attention": &c.LocalRopeTheta} {
		if p := rp[typ]; p != nil && p.RopeTheta != nil {
			*theta = *p.RopeTheta
		}
	}
	return nil
}

func (c *BertConfig) ropeParameters() (ropeParameters, error) {
	raw, ok := c.extra["rope_parameters"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var rp ropeParameters
	if err := json.Unmarshal(raw, &rp); err != nil {
		return nil, fieldErr("rope_parameters", "want {\"full_attention\": {\"rope_theta\": ...}, \"sliding_attention\": {...}}: %v", unwrapTypeErr(err))
	}
	return rp, nil
}

func checkModernBERT(c *BertConfig) error {
	switch {
	case c.ClassifierPooling != "cls" && c.ClassifierPooling != "mean":
		return fieldErr("classifier_pooling", "want \"cls\" or \"mean\", got %q", c.ClassifierPooling)
	case !slices.Contains(activations, c.ClassifierActivation):
		return fieldErr("classifier_activation", "unknown activation %q (known: %v)", c.ClassifierActivation, activations)
	case c.ClassifierDropout == nil:
		return fieldErr("classifier_dropout", "must be a number, got null")
	case !(c.EmbeddingDropout >= 0 && c.EmbeddingDropout < 1):
		return fieldErr("embedding_dropout", "must be in [0, 1), got %v", c.EmbeddingDropout)
	case c.LocalAttention < 0 || c.LocalAttention > 1<<20:
		return fieldErr("local_attention", "must be in [0, %d], got %d", 1<<20, c.LocalAttention)
	case c.GlobalAttnEvery < 1:
		return fieldErr("global_attn_every_n_layers", "must be positive, got %d", c.GlobalAttnEvery)
	case !(c.GlobalRopeTheta > 0):
		return fieldErr("global_rope_theta", "must be positive, got %v", c.GlobalRopeTheta)
	case !(c.LocalRopeTheta > 0):
		return fieldErr("local_rope_theta", "must be positive, got %v", c.LocalRopeTheta)
	case c.HeadSize()%2 != 0:
		return fieldErr("num_attention_heads", "rotary positions need an even head size; hidden_size %d over %d heads is %d", c.HiddenSize, c.NumAttentionHeads, c.HeadSize())
	}
	rp, err := c.ropeParameters()
	if err != nil {
		return err
	}
	for typ, p := range rp {
		if p != nil && p.RopeType != "" && p.RopeType != "default" {
			return fieldErr("rope_parameters", "%s: rope_type %q: only \"default\" rotary positions are supported", typ, p.RopeType)
		}
	}
	// transformers picks each layer's window from global_attn_every_n_layers and its
	// rotary base from layer_types: they must agree for the model to be one thing.
	if raw, ok := c.extra["layer_types"]; ok && string(raw) != "null" {
		var types []string
		if err := json.Unmarshal(raw, &types); err != nil {
			return fieldErr("layer_types", "want a list of \"full_attention\" and \"sliding_attention\": %v", unwrapTypeErr(err))
		}
		if len(types) != c.NumHiddenLayers {
			return fieldErr("layer_types", "%d entries for %d layers", len(types), c.NumHiddenLayers)
		}
		for i, typ := range types {
			if want := c.LayerType(i); typ != want {
				return fieldErr("layer_types", "layer %d is %q, but global_attn_every_n_layers %d makes it %q", i, typ, c.GlobalAttnEvery, want)
			}
		}
	}
	return nil
}

// GlobalLayer says whether ModernBERT's layer i attends to the whole sequence; the
// others attend within LocalAttention/2 positions either side.
func (c *BertConfig) GlobalLayer(i int) bool { return i%c.GlobalAttnEvery == 0 }

// LayerType is transformers' name for layer i's attention: "full_attention" or
// "sliding_attention".
func (c *BertConfig) LayerType(i int) string {
	if c.GlobalLayer(i) {
		return "full_attention"
	}
	return "sliding_attention"
}

// RopeTheta is the rotary base of ModernBERT's layer i.
func (c *BertConfig) RopeTheta(i int) float64 {
	if c.GlobalLayer(i) {
		return c.GlobalRopeTheta
	}
	return c.LocalRopeTheta
}
