package hf

import (
	"slices"
	"strings"
)

// family is one encoder architecture of the BERT family as transformers knows it: the
// names its config.json gives the fields, its defaults (transformers' config class with
// no arguments), its own checks, and the prefix of its model classes' names.
type family struct {
	modelType string
	arch      string            // "Bert" as in BertForSequenceClassification
	renames   map[string]string // BERT's field name -> this family's, where they differ
	extra     []configField     // fields besides BERT's (with renames applied) and the common ones
	noBERT    []string          // BERT fields this family's config.json does not have
	defaults  func(c *BertConfig)
	check     func(c *BertConfig) error
	// parsed, if set, completes a config ParseConfig decoded, before it is validated.
	parsed func(c *BertConfig) error
	// offsetPositions: position ids start after the padding id (RoBERTa's fairseq heritage).
	offsetPositions bool
	// kin names the family whose architecture this one has under another model_type;
	// presets come from that one alone.
	kin string
	// embedPad > 0 is the embeddings' padding index where the modeling code fixes it
	// whatever pad_token_id says (MPNet's 1); 0: pad_token_id.
	embedPad int
	// acts are the names hidden_act may take where they are not transformers' ACT2FN's
	// (NomicBERT's gated MLPs); nil: ACT2FN's.
	acts []string
}

var families = map[string]*family{
	"bert": {
		modelType: "bert", arch: "Bert", defaults: func(*BertConfig) {}, check: needTypes,
		extra: []configField{classifierDropout("classifier_dropout")},
	},
	"roberta": robertaLike("roberta", "Roberta", 50265, ""),
	// XLM-RoBERTa and CamemBERT are RoBERTa with other vocabularies: transformers' model
	// classes are copies of RoBERTa's, and their config classes keep BERT's vocabulary
	// size as the default.
	"xlm-roberta": robertaLike("xlm-roberta", "XLMRoberta", 30522, "roberta"),
	"camembert":   robertaLike("camembert", "Camembert", 30522, "roberta"),
	"electra": {
		modelType: "electra", arch: "Electra",
		extra: []configField{classifierDropout("classifier_dropout"), embeddingSize},
		defaults: func(c *BertConfig) {
			c.EmbeddingSize, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize = 128, 256, 4, 1024
		},
		check: func(c *BertConfig) error {
			if c.EmbeddingSize <= 0 {
				return fieldErr("embedding_size", "must be positive, got %d", c.EmbeddingSize)
			}
			return needTypes(c)
		},
	},
	"albert": {
		modelType: "albert", arch: "Albert",
		renames: map[string]string{"classifier_dropout": "classifier_dropout_prob"},
		extra: []configField{
			classifierDropout("classifier_dropout_prob"), embeddingSize,
			{"num_hidden_groups", func(c *BertConfig) any { return &c.NumHiddenGroups }},
			{"inner_group_num", func(c *BertConfig) any { return &c.InnerGroupNum }},
		},
		defaults: func(c *BertConfig) {
			c.VocabSize, c.EmbeddingSize, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize = 30000, 128, 4096, 64, 16384
			c.NumHiddenGroups, c.InnerGroupNum, c.HiddenAct = 1, 1, "gelu_new"
			c.HiddenDropoutProb, c.AttentionProbsDropoutProb = 0, 0
			c.ClassifierDropout = ptr(0.1)
		},
		check: func(c *BertConfig) error {
			switch {
			case c.EmbeddingSize <= 0:
				return fieldErr("embedding_size", "must be positive, got %d", c.EmbeddingSize)
			case c.NumHiddenGroups < 1 || c.NumHiddenGroups > c.NumHiddenLayers:
				return fieldErr("num_hidden_groups", "must be in [1, num_hidden_layers %d], got %d", c.NumHiddenLayers, c.NumHiddenGroups)
			case c.InnerGroupNum < 1:
				return fieldErr("inner_group_num", "must be positive, got %d", c.InnerGroupNum)
			case c.ClassifierDropout == nil:
				return fieldErr("classifier_dropout_prob", "must be a number, got null")
			}
			return needTypes(c)
		},
	},
	"modernbert": modernbert,
	"deberta-v2": debertaV2,
	"mpnet":      mpnet,
	"nomic_bert": nomicBERT,
	"distilbert": {
		modelType: "distilbert", arch: "DistilBert",
		renames: map[string]string{
			"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
			"intermediate_size": "hidden_dim", "hidden_act": "activation", "hidden_dropout_prob": "dropout",
			"attention_probs_dropout_prob": "attention_dropout", "classifier_dropout": "seq_classif_dropout",
		},
		noBERT: []string{"type_vocab_size", "layer_norm_eps", "position_embedding_type"},
		extra: []configField{
			classifierDropout("seq_classif_dropout"),
			{"qa_dropout", func(c *BertConfig) any { return &c.QADropout }},
			{"sinusoidal_pos_embds", func(c *BertConfig) any { return &c.SinusoidalPosEmbds }},
		},
		defaults: func(c *BertConfig) {
			c.NumHiddenLayers, c.TypeVocabSize, c.QADropout, c.ClassifierDropout = 6, 0, 0.1, ptr(0.2)
		},
		check: func(c *BertConfig) error {
			switch {
			case c.TypeVocabSize != 0:
				return fieldErr("type_vocab_size", "DistilBERT has no token types, got %d", c.TypeVocabSize)
			case c.LayerNormEps != 1e-12:
				return fieldErr("layer_norm_eps", "DistilBERT's is 1e-12, got %v", c.LayerNormEps)
			case c.ClassifierDropout == nil:
				return fieldErr("seq_classif_dropout", "must be a number, got null")
			}
			return nil
		},
	},
}

// robertaLike is RoBERTa's architecture under a model_type whose config class defaults
// to vocabSize words and pad_token_id 1.
func robertaLike(modelType, arch string, vocabSize int, kin string) *family {
	return &family{
		modelType: modelType, arch: arch, offsetPositions: true, kin: kin,
		check: func(c *BertConfig) error {
			if c.MaxPositionEmbeddings <= c.PadTokenID+1 {
				return fieldErr("max_position_embeddings", "%d leaves no position after the offset pad_token_id + 1 = %d", c.MaxPositionEmbeddings, c.PadTokenID+1)
			}
			return needTypes(c)
		},
		extra: []configField{classifierDropout("classifier_dropout")},
		defaults: func(c *BertConfig) {
			c.VocabSize, c.PadTokenID = vocabSize, 1
		},
	}
}

// needTypes checks type_vocab_size for the families with token type embeddings.
func needTypes(c *BertConfig) error {
	if c.TypeVocabSize <= 0 {
		return fieldErr("type_vocab_size", "must be positive, got %d", c.TypeVocabSize)
	}
	return nil
}

var embeddingSize = configField{"embedding_size", func(c *BertConfig) any { return &c.EmbeddingSize }}

func classifierDropout(name string) configField {
	return configField{name, func(c *BertConfig) any { return &c.ClassifierDropout }}
}

func ptr[T any](v T) *T { return &v }

// ModelTypes lists the model_type values this package reads.
func ModelTypes() []string {
	var out []string
	for t := range families {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func familyOf(modelType string) (*family, error) {
	f, ok := families[modelType]
	if !ok {
		return nil, fieldErr("model_type", "%q is not a family this version reads (known: %s)", modelType, strings.Join(ModelTypes(), ", "))
	}
	return f, nil
}

// family is c's family; Validate has checked there is one.
func (c *BertConfig) family() *family {
	f, err := familyOf(c.ModelType)
	if err != nil {
		panic(err)
	}
	return f
}

// fieldName is the name the family's config.json gives a BERT field.
func (f *family) fieldName(bert string) string {
	if n, ok := f.renames[bert]; ok {
		return n
	}
	return bert
}

// FieldName is the name c's config.json gives the BERT field bert (NomicBERT's
// n_positions for max_position_embeddings), for messages.
func (c *BertConfig) FieldName(bert string) string {
	if f := families[c.ModelType]; f != nil {
		return f.fieldName(bert)
	}
	return bert
}

// fields are the typed fields of the family's config.json.
func (f *family) fields() []configField {
	var out []configField
	for _, b := range bertFields {
		if slices.Contains(f.noBERT, b.name) {
			continue
		}
		out = append(out, configField{f.fieldName(b.name), b.ptr})
	}
	return append(append(out, f.extra...), commonFields...)
}

// NewConfig is transformers' config class of the family with no arguments (as
// DefaultConfig is BERT's): what a config.json of that model_type that omits a field means.
func NewConfig(modelType string) (*BertConfig, error) {
	f, err := familyOf(modelType)
	if err != nil {
		return nil, err
	}
	c := DefaultConfig()
	c.ModelType = modelType
	f.defaults(c)
	return c, nil
}

// ArchitecturePrefix starts the names of the family's transformers classes: "Bert" in
// BertForSequenceClassification, "Roberta", "XLMRoberta", "Camembert", "DistilBert",
// "Albert", "Electra", "NomicBert".
func (c *BertConfig) ArchitecturePrefix() string { return c.family().arch }

// PositionOffset is the first position id of a sequence: the padding index + 1 for
// RoBERTa (and XLM-RoBERTa, CamemBERT) and MPNet, whose position ids count real tokens
// from there, else 0.
func (c *BertConfig) PositionOffset() int {
	if f, err := familyOf(c.ModelType); err == nil && f.offsetPositions {
		return c.PaddingIdx() + 1
	}
	return 0
}

// PaddingIdx is the embeddings' padding index: the row of the word (and, with offset
// positions, position) embeddings that padding reads and that gets no gradient, and the
// id whose tokens offset positions do not count. pad_token_id, except where the family's
// modeling code fixes it (MPNet: 1).
func (c *BertConfig) PaddingIdx() int {
	if f, err := familyOf(c.ModelType); err == nil && f.embedPad > 0 {
		return f.embedPad
	}
	return c.PadTokenID
}

// MaxLength is the longest sequence the position embeddings cover. NomicBERT with
// rotary_scaling_factor set scales its rotary base for sequences longer than
// max_trained_positions (dynamic NTK), which bertnode does not: it takes those as long
// as the base is the trained one.
func (c *BertConfig) MaxLength() int {
	n := c.MaxPositionEmbeddings - c.PositionOffset()
	if c.RotaryScalingFactor != nil {
		n = min(n, c.MaxTrainedPositions)
	}
	return n
}

// HasTokenTypes says whether the encoder embeds token types; DistilBERT does not, and
// RoBERTa's single type (type_vocab_size 1) makes them all 0.
func (c *BertConfig) HasTokenTypes() bool { return c.TypeVocabSize > 1 }
