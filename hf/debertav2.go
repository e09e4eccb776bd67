package hf

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// debertaV2 is DeBERTa-v2 and -v3 (He et al. 2021, "DeBERTa: Decoding-enhanced BERT
// with Disentangled Attention"; "DeBERTaV3"): BERT's post-LayerNorm layers whose
// attention adds content-to-position and position-to-content scores from shared
// relative position embeddings, positions bucketed logarithmically past
// position_buckets/2; no absolute positions in the input unless position_biased_input;
// a pooler of dense and activation under the sequence heads.
var debertaV2 = &family{
	modelType: "deberta-v2", arch: "DebertaV2",
	renames: map[string]string{"classifier_dropout": "cls_dropout"},
	extra: []configField{
		classifierDropout("cls_dropout"),
		{"relative_attention", func(c *BertConfig) any { return &c.RelativeAttention }},
		{"max_relative_positions", func(c *BertConfig) any { return &c.MaxRelativePositions }},
		{"position_buckets", func(c *BertConfig) any { return &c.PositionBuckets }},
		{"position_biased_input", func(c *BertConfig) any { return &c.PositionBiasedInput }},
		{"pos_att_type", func(c *BertConfig) any { return &c.PosAttType }},
		{"share_att_key", func(c *BertConfig) any { return &c.ShareAttKey }},
		{"norm_rel_ebd", func(c *BertConfig) any { return &c.NormRelEbd }},
		{"pooler_dropout", func(c *BertConfig) any { return &c.PoolerDropout }},
		{"pooler_hidden_act", func(c *BertConfig) any { return &c.PoolerHiddenAct }},
	},
	noBERT: []string{"position_embedding_type"},
	// transformers' DebertaV2Config() with no arguments: deberta-v2-xlarge's sizes.
	defaults: func(c *BertConfig) {
		c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize = 128100, 1536, 24, 24, 6144
		c.TypeVocabSize, c.LayerNormEps, c.MaxRelativePositions, c.PositionBiasedInput = 0, 1e-7, -1, true
		c.PositionBuckets, c.NormRelEbd, c.PoolerHiddenAct = -1, "none", "gelu"
	},
	// embedding_size stays among the fields kept verbatim: transformers reads it where a
	// config.json has it, and a 0 written back would make it build empty embeddings.
	parsed: func(c *BertConfig) error {
		if v, ok := c.extra["embedding_size"]; ok {
			if err := json.Unmarshal(v, &c.EmbeddingSize); err != nil {
				return fieldErr("embedding_size", "cannot use %s: %v", v, unwrapTypeErr(err))
			}
		}
		return nil
	},
	check: checkDebertaV2,
}

// LegacyMLMHead is DebertaV2Config's legacy (true where config.json lacks it): whether
// DebertaV2ForMaskedLM names its head cls.predictions, as BERT's, rather than
// lm_predictions.lm_head.
func (c *BertConfig) LegacyMLMHead() (bool, error) {
	legacy := true
	err := c.extraField("legacy", &legacy)
	return legacy, err
}

// PosAttType is pos_att_type: which relative terms attention adds, "c2p" and "p2c".
// config.json has it as a list or, in older files (deberta-v3-base's), as "p2c|c2p".
type PosAttType []string

func (p *PosAttType) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = nil
		for _, t := range strings.Split(strings.ToLower(s), "|") {
			if t = strings.TrimSpace(t); t != "" {
				*p = append(*p, t)
			}
		}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("want a list of \"c2p\" and \"p2c\" or a string such as \"p2c|c2p\", got %s", b)
	}
	*p = l
	return nil
}

// Has says whether the type t ("c2p", "p2c") is on.
func (p PosAttType) Has(t string) bool { return slices.Contains(p, t) }

func checkDebertaV2(c *BertConfig) error {
	switch {
	case !c.RelativeAttention && len(c.PosAttType) > 0:
		return fieldErr("pos_att_type", "%v needs relative_attention", []string(c.PosAttType))
	case !c.RelativeAttention && !c.PositionBiasedInput:
		return fieldErr("relative_attention", "false, with position_biased_input false: the model would see no positions")
	case !slices.Contains(activations, c.PoolerHiddenAct):
		return fieldErr("pooler_hidden_act", "unknown activation %q (known: %v)", c.PoolerHiddenAct, activations)
	case !(c.PoolerDropout >= 0 && c.PoolerDropout < 1):
		return fieldErr("pooler_dropout", "must be in [0, 1), got %v", c.PoolerDropout)
	case c.TypeVocabSize < 0:
		return fieldErr("type_vocab_size", "must not be negative, got %d", c.TypeVocabSize)
	case c.EmbeddingSize < 0:
		return fieldErr("embedding_size", "must not be negative, got %d", c.EmbeddingSize)
	case c.MaxRelativePositions > 1<<16:
		return fieldErr("max_relative_positions", "%d is more than %d, the most this version builds", c.MaxRelativePositions, 1<<16)
	case c.PositionBuckets > 1<<16:
		return fieldErr("position_buckets", "%d is more than %d, the most this version builds", c.PositionBuckets, 1<<16)
	case c.PositionBuckets > 0 && c.PositionBuckets < 4:
		return fieldErr("position_buckets", "%d: want at least 4, or -1 for none", c.PositionBuckets)
	}
	for _, t := range c.PosAttType {
		if t != "c2p" && t != "p2c" {
			return fieldErr("pos_att_type", "%q: want c2p and p2c (p2p is not supported)", t)
		}
	}
	for _, n := range strings.Split(strings.ToLower(c.NormRelEbd), "|") {
		if n = strings.TrimSpace(n); n != "none" && n != "layer_norm" && n != "" {
			return fieldErr("norm_rel_ebd", "%q: want \"layer_norm\" or \"none\"", c.NormRelEbd)
		}
	}
	if v, ok := c.extra["conv_kernel_size"]; ok {
		var k int
		if json.Unmarshal(v, &k) != nil || k > 0 {
			return fieldErr("conv_kernel_size", "%s: the convolution of deberta-v2-xlarge and -xxlarge is not supported", v)
		}
	}
	if v, ok := c.extra["pooler_hidden_size"]; ok {
		var k int
		if json.Unmarshal(v, &k) != nil || k != c.HiddenSize {
			return fieldErr("pooler_hidden_size", "%s: only hidden_size (%d) is supported", v, c.HiddenSize)
		}
	}
	if v, ok := c.extra["attention_head_size"]; ok {
		var k int
		if json.Unmarshal(v, &k) != nil || k != c.HeadSize() {
			return fieldErr("attention_head_size", "%s: only hidden_size / num_attention_heads (%d) is supported", v, c.HeadSize())
		}
	}
	return nil
}

// NormRelEmbeddings says whether the relative position embeddings go through a
// LayerNorm (norm_rel_ebd "layer_norm").
func (c *BertConfig) NormRelEmbeddings() bool {
	return slices.ContainsFunc(strings.Split(strings.ToLower(c.NormRelEbd), "|"), func(s string) bool { return strings.TrimSpace(s) == "layer_norm" })
}

// RelativeSpan is DeBERTa's att_span: the relative distances its embeddings cover on
// either side, position_buckets where set, else max_relative_positions, else
// max_position_embeddings. Its relative embeddings have twice as many rows.
func (c *BertConfig) RelativeSpan() int {
	if c.PositionBuckets > 0 {
		return c.PositionBuckets
	}
	return c.MaxRelativeDistance()
}

// MaxRelativeDistance is max_relative_positions, or max_position_embeddings where it is
// below 1, as transformers reads it.
func (c *BertConfig) MaxRelativeDistance() int {
	if c.MaxRelativePositions < 1 {
		return c.MaxPositionEmbeddings
	}
	return c.MaxRelativePositions
}
