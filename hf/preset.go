package hf

import (
	"fmt"
	"slices"
	"strings"
)

// sizes are the compact BERT sizes of Turc et al. (2019), "Well-Read Students Learn
// Better", plus bert-base: layers, hidden, heads, intermediate.
var sizes = map[string][4]int{
	"tiny":  {2, 128, 2, 512},
	"mini":  {4, 256, 4, 1024},
	"small": {4, 512, 8, 2048},
	"base":  {12, 768, 12, 3072},
}

// familySizes are the sizes the other families come in as presets. Not base: a name like
// roberta-base is a pretrained model on the hub, which a preset must not shadow.
var familySizes = []string{"tiny", "mini", "small"}

// PresetNames lists the names Preset accepts.
func PresetNames() []string {
	var names []string
	for n := range sizes {
		names = append(names, n)
	}
	for t, f := range families {
		if t == "bert" || f.kin != "" {
			continue
		}
		for _, s := range familySizes {
			names = append(names, t+"-"+s)
		}
	}
	slices.Sort(names)
	return names
}

// Preset returns the configuration of a named randomly initialised encoder: BERT as
// tiny, mini, small or base; the other families as <model_type>-<size> (distilbert-tiny,
// roberta-mini, albert-small, electra-tiny...) with the same layers, width and heads and
// otherwise their transformers defaults. Every preset has the bert-base-uncased vocabulary
// (30522, [PAD] = 0), which a preset model is given as its tokenizer; ALBERT and
// ELECTRA factorize their embeddings to min(128, hidden/2); RoBERTa has one token type,
// layer_norm_eps 1e-5 and positions for 512 tokens after its padding offset, as roberta-base;
// ModernBERT takes 512 tokens too, as every other preset; DeBERTa-v2 is configured as
// deberta-v3-base (relative attention in 256 buckets, no absolute positions); MPNet as
// mpnet-base (layer_norm_eps 1e-5, 512 positions after its padding offset 2); NomicBERT
// as nomic-embed-text-v1.5 (SwiGLU, rotary positions with base 1000 on whole heads, no
// biases in attention and MLP, no dropout), for 512 tokens.
func Preset(name string) (*BertConfig, error) {
	modelType, size := "bert", name
	if i := strings.LastIndex(name, "-"); i > 0 && name[:i] != "bert" && slices.Contains(familySizes, name[i+1:]) {
		modelType, size = name[:i], name[i+1:]
	}
	p, ok := sizes[size]
	c, err := NewConfig(modelType)
	if !ok || err != nil || (modelType != "bert" && !slices.Contains(familySizes, size)) {
		return nil, fmt.Errorf("unknown model preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize = p[0], p[1], p[2], p[3]
	c.VocabSize, c.PadTokenID = 30522, 0
	switch modelType {
	case "albert", "electra":
		c.EmbeddingSize = min(128, c.HiddenSize/2)
	case "modernbert": // rotary positions: the length is a limit, not a table
		c.MaxPositionEmbeddings = 512
	case "deberta-v2": // as deberta-v3-base
		c.MaxPositionEmbeddings, c.RelativeAttention, c.PositionBiasedInput, c.PositionBuckets = 512, true, false, 256
		c.NormRelEbd, c.ShareAttKey, c.PosAttType, c.HiddenDropoutProb = "layer_norm", true, PosAttType{"p2c", "c2p"}, 0.1
	case "roberta": // as roberta-base
		c.TypeVocabSize, c.LayerNormEps = 1, 1e-5
		c.MaxPositionEmbeddings = 512 + c.PositionOffset()
	case "mpnet": // as microsoft/mpnet-base
		c.LayerNormEps, c.MaxPositionEmbeddings = 1e-5, 512+c.PositionOffset()
	case "nomic_bert": // as nomic-embed-text-v1.5, but for 512 tokens
		c.HiddenAct, c.RotaryEmbFraction, c.RotaryScalingFactor, c.MaxPositionEmbeddings = "swiglu", 1, nil, 512
		c.QKVProjBias, c.MLPFc1Bias, c.MLPFc2Bias, c.LayerNormEps = false, false, false, 1e-12
		c.HiddenDropoutProb, c.AttentionProbsDropoutProb, c.ClassifierDropout = 0, 0, ptr(0.0)
	}
	return c, nil
}
