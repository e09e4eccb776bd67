// Package hf reads and writes the configuration of Hugging Face checkpoints of the BERT
// family (BERT, DistilBERT, RoBERTa and its kin, ALBERT, ELECTRA, ModernBERT, DeBERTa-v2/v3, MPNet, NomicBERT) and fetches checkpoints from the
// Hugging Face hub into a local cache.
package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

// BertConfig is the content of a BERT-family checkpoint's config.json, in BERT's terms
// whatever names the family's config.json uses (DistilBERT's "dim" is HiddenSize; see
// family.go); the json tags are BERT's names. Fields this type does not know are kept
// verbatim and written back by Marshal.
type BertConfig struct {
	VocabSize                 int     `json:"vocab_size"`
	HiddenSize                int     `json:"hidden_size"`
	NumHiddenLayers           int     `json:"num_hidden_layers"`
	NumAttentionHeads         int     `json:"num_attention_heads"`
	IntermediateSize          int     `json:"intermediate_size"`
	HiddenAct                 string  `json:"hidden_act"`
	HiddenDropoutProb         float64 `json:"hidden_dropout_prob"`
	AttentionProbsDropoutProb float64 `json:"attention_probs_dropout_prob"`
	MaxPositionEmbeddings     int     `json:"max_position_embeddings"`
	TypeVocabSize             int     `json:"type_vocab_size"`
	InitializerRange          float64 `json:"initializer_range"`
	LayerNormEps              float64 `json:"layer_norm_eps"`
	PadTokenID                int     `json:"pad_token_id"`
	PositionEmbeddingType     string  `json:"position_embedding_type"`
	// ClassifierDropout is the sequence head's dropout: classifier_dropout (nil: use
	// hidden_dropout_prob), ALBERT's classifier_dropout_prob, DistilBERT's seq_classif_dropout.
	ClassifierDropout *float64 `json:"classifier_dropout"`
	// EmbeddingSize is the width of factorized embeddings (ALBERT, ELECTRA), which a
	// linear layer maps to HiddenSize; 0 for the families without.
	EmbeddingSize   int `json:"embedding_size"`
	NumHiddenGroups int `json:"num_hidden_groups"` // ALBERT: groups of shared layers
	InnerGroupNum   int `json:"inner_group_num"`   // ALBERT: layers in a group
	// SinusoidalPosEmbds: DistilBERT's fixed sin/cos position embeddings.
	SinusoidalPosEmbds bool     `json:"sinusoidal_pos_embds"`
	QADropout          float64  `json:"qa_dropout"` // DistilBERT's question-answering head
	Architectures      []string `json:"architectures,omitempty"`
	ModelType          string   `json:"model_type"`
	// ProblemType is "", "single_label_classification",
	// "multi_label_classification" or "regression".
	ProblemType string `json:"problem_type,omitempty"`

	// ModernBERT's own fields (hf/modernbert.go): biases of its norms and dense layers
	// (none by default), the embeddings' dropout, the sequence head's pooling ("cls" or
	// "mean") and activation, the local attention's window, which layers attend
	// globally, the rotary bases of global and local layers, and the masked-LM
	// decoder's bias and whether its weight is the token embeddings.
	NormBias             bool    `json:"norm_bias"`
	AttentionBias        bool    `json:"attention_bias"`
	MLPBias              bool    `json:"mlp_bias"`
	ClassifierBias       bool    `json:"classifier_bias"`
	EmbeddingDropout     float64 `json:"embedding_dropout"`
	ClassifierPooling    string  `json:"classifier_pooling"`
	ClassifierActivation string  `json:"classifier_activation"`
	LocalAttention       int     `json:"local_attention"`
	GlobalAttnEvery      int     `json:"global_attn_every_n_layers"`
	GlobalRopeTheta      float64 `json:"global_rope_theta"`
	LocalRopeTheta       float64 `json:"local_rope_theta"`
	DecoderBias          bool    `json:"decoder_bias"`
	TieWordEmbeddings    bool    `json:"tie_word_embeddings"`

	// DeBERTa-v2's own fields (hf/debertav2.go): relative attention, its span and
	// buckets, which relative terms it adds, whether the keys' and queries'
	// projections serve the positions too, whether absolute positions are embedded,
	// the LayerNorm of the relative embeddings, the pooler's dropout and activation.
	RelativeAttention    bool       `json:"relative_attention"`
	MaxRelativePositions int        `json:"max_relative_positions"`
	PositionBuckets      int        `json:"position_buckets"`
	PositionBiasedInput  bool       `json:"position_biased_input"`
	PosAttType           PosAttType `json:"pos_att_type"`
	ShareAttKey          bool       `json:"share_att_key"`
	NormRelEbd           string     `json:"norm_rel_ebd"`
	PoolerDropout        float64    `json:"pooler_dropout"`
	PoolerHiddenAct      string     `json:"pooler_hidden_act"`

	// MPNet's relative attention bias table has this many rows (hf/mpnet.go).
	RelativeAttentionNumBuckets int `json:"relative_attention_num_buckets"`

	// NomicBERT's own fields (hf/nomicbert.go): the share of each head rotary positions
	// rotate, their base and layout (pairs of neighbours, else halves), the dynamic NTK
	// scaling past max_trained_positions (nil: none), and the biases of Wqkv and
	// out_proj, fc11 and fc12, fc2.
	RotaryEmbFraction    float64  `json:"rotary_emb_fraction"`
	RotaryEmbBase        float64  `json:"rotary_emb_base"`
	RotaryEmbInterleaved bool     `json:"rotary_emb_interleaved"`
	RotaryScalingFactor  *float64 `json:"rotary_scaling_factor"`
	MaxTrainedPositions  int      `json:"max_trained_positions"`
	QKVProjBias          bool     `json:"qkv_proj_bias"`
	MLPFc1Bias           bool     `json:"mlp_fc1_bias"`
	MLPFc2Bias           bool     `json:"mlp_fc2_bias"`

	ID2Label map[int]string `json:"id2label"`
	Label2ID map[string]int `json:"label2id"`

	extra map[string]json.RawMessage
}

// DefaultConfig is transformers' BertConfig() with no arguments: bert-base
// sizes and two labels, which is also what a config.json that omits a field means.
// NewConfig gives the other families'.
func DefaultConfig() *BertConfig {
	c := &BertConfig{
		VocabSize:                 30522,
		HiddenSize:                768,
		NumHiddenLayers:           12,
		NumAttentionHeads:         12,
		IntermediateSize:          3072,
		HiddenAct:                 "gelu",
		HiddenDropoutProb:         0.1,
		AttentionProbsDropoutProb: 0.1,
		MaxPositionEmbeddings:     512,
		TypeVocabSize:             2,
		InitializerRange:          0.02,
		LayerNormEps:              1e-12,
		PositionEmbeddingType:     "absolute",
		ModelType:                 "bert",
	}
	c.SetNumLabels(2)
	return c
}

// SetLabels names the classes; class i is labels[i].
func (c *BertConfig) SetLabels(labels []string) {
	c.ID2Label = make(map[int]string, len(labels))
	c.Label2ID = make(map[string]int, len(labels))
	for i, l := range labels {
		c.ID2Label[i] = l
		c.Label2ID[l] = i
	}
}

// SetNumLabels sets n classes named LABEL_0..LABEL_n-1, as transformers does.
func (c *BertConfig) SetNumLabels(n int) {
	labels := make([]string, n)
	for i := range labels {
		labels[i] = "LABEL_" + strconv.Itoa(i)
	}
	c.SetLabels(labels)
}

// NumLabels is the number of classes.
func (c *BertConfig) NumLabels() int { return len(c.ID2Label) }

// Labels lists the class names by id.
func (c *BertConfig) Labels() []string {
	labels := make([]string, len(c.ID2Label))
	for i := range labels {
		labels[i] = c.ID2Label[i]
	}
	return labels
}

// HeadSize is the width of one attention head.
func (c *BertConfig) HeadSize() int { return c.HiddenSize / c.NumAttentionHeads }

// FieldError names the config.json field that is wrong.
type FieldError struct {
	File  string // empty when the config did not come from a file
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	s := "bert config"
	if e.File != "" {
		s = e.File
	}
	return fmt.Sprintf("%s: field %q: %v", s, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// activations are the names transformers' ACT2FN accepts.
var activations = []string{"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "quick_gelu", "relu", "relu6", "silu", "swish", "tanh", "sigmoid", "mish", "linear"}

// Validate checks that the configuration describes a model that can be built.
func (c *BertConfig) Validate() error {
	f, err := familyOf(c.ModelType)
	if err != nil {
		return err
	}
	name := f.fieldName
	positive := []struct {
		field string
		v     int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"intermediate_size", c.IntermediateSize},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fieldErr(name(p.field), "must be positive, got %d", p.v)
		}
	}
	// Upper bounds, generous for real checkpoints (xlm-roberta-xxl: 250k words, width
	// 4096, 48 layers), so that a corrupt config is refused here, naming its field,
	// rather than make model building allocate terabytes.
	limits := []struct {
		field  string
		v, max int
	}{
		{"vocab_size", c.VocabSize, 1 << 21}, {"hidden_size", c.HiddenSize, 1 << 15}, {"num_hidden_layers", c.NumHiddenLayers, 1 << 10},
		{"intermediate_size", c.IntermediateSize, 1 << 17}, {"max_position_embeddings", c.MaxPositionEmbeddings, 1 << 17},
		{"type_vocab_size", c.TypeVocabSize, 1 << 10}, {"embedding_size", c.EmbeddingSize, 1 << 15}, {"inner_group_num", c.InnerGroupNum, 1 << 10},
	}
	for _, l := range limits {
		if l.v > l.max {
			return fieldErr(name(l.field), "%d is more than %d, the most this version builds", l.v, l.max)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fieldErr(name("num_attention_heads"), "%s %d is not divisible by %d heads", name("hidden_size"), c.HiddenSize, c.NumAttentionHeads)
	}
	acts := activations
	if f.acts != nil {
		acts = f.acts
	}
	if !slices.Contains(acts, c.HiddenAct) {
		return fieldErr(name("hidden_act"), "unknown activation %q (known: %v)", c.HiddenAct, acts)
	}
	probs := []struct {
		field string
		v     *float64
	}{
		{"hidden_dropout_prob", &c.HiddenDropoutProb}, {"attention_probs_dropout_prob", &c.AttentionProbsDropoutProb},
		{"classifier_dropout", c.ClassifierDropout}, {"qa_dropout", &c.QADropout},
	}
	for _, p := range probs {
		if p.v != nil && !(*p.v >= 0 && *p.v < 1) {
			return fieldErr(name(p.field), "must be in [0, 1), got %v", *p.v)
		}
	}
	if !(c.InitializerRange > 0) {
		return fieldErr("initializer_range", "must be positive, got %v", c.InitializerRange)
	}
	if !(c.LayerNormEps > 0) {
		return fieldErr(name("layer_norm_eps"), "must be positive, got %v", c.LayerNormEps)
	}
	if c.PadTokenID < 0 || c.PadTokenID >= c.VocabSize {
		return fieldErr("pad_token_id", "%d is outside the vocabulary of %d", c.PadTokenID, c.VocabSize)
	}
	if c.PositionEmbeddingType != "absolute" {
		return fieldErr("position_embedding_type", "only \"absolute\" is supported, got %q", c.PositionEmbeddingType)
	}
	if err := f.check(c); err != nil {
		return err
	}
	if n := c.params(); n > maxParams {
		return fieldErr(name("hidden_size"), "%d words and %d layers of width %d (intermediate %d) make %.3g parameters, more than the %.3g this version builds",
			c.VocabSize, c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, n, float64(maxParams))
	}
	switch c.ProblemType {
	case "", "single_label_classification", "multi_label_classification", "regression":
	default:
		return fieldErr("problem_type", "unknown problem type %q", c.ProblemType)
	}
	if len(c.ID2Label) == 0 || len(c.ID2Label) > maxLabels {
		return fieldErr("id2label", "%d labels: want 1 to %d", len(c.ID2Label), maxLabels)
	}
	for i := range len(c.ID2Label) {
		l, ok := c.ID2Label[i]
		if !ok {
			return fieldErr("id2label", "ids must be 0..%d, %d is missing", len(c.ID2Label)-1, i)
		}
		if id, ok := c.Label2ID[l]; !ok || id != i {
			return fieldErr("label2id", "label %q must map to %d like id2label says", l, i)
		}
	}
	if len(c.Label2ID) != len(c.ID2Label) {
		return fieldErr("label2id", "has %d labels, id2label has %d", len(c.Label2ID), len(c.ID2Label))
	}
	return nil
}

// maxParams bounds the parameters of a model Validate accepts: 128 GiB of float32
// weights, 3 times xlm-roberta-xxl's.
const maxParams = 1 << 35

// maxLabels bounds the classes: generous for fine-tuning a classifier, and small enough
// that parsing num_labels, which names as many labels, takes milliseconds.
const maxLabels = 1 << 16

// params estimates the model's parameters: the embeddings, the encoder's distinct
// layers and the classifier; biases and norms are small beside them. It counts in
// float64, which no size overflows.
func (c *BertConfig) params() float64 {
	h, e := float64(c.HiddenSize), float64(c.HiddenSize)
	if c.EmbeddingSize > 0 {
		e = float64(c.EmbeddingSize)
	}
	n := (float64(c.VocabSize) + float64(c.MaxPositionEmbeddings) + float64(max(c.TypeVocabSize, 0))) * e
	if e != h { // the projection of factorized embeddings
		n += e * h
	}
	layers := float64(c.NumHiddenLayers)
	if c.ModelType == "albert" { // groups of layers shared among the depths
		layers = float64(c.NumHiddenGroups) * float64(c.InnerGroupNum)
	}
	return n + layers*(4*h*h+2*h*float64(c.IntermediateSize)) + float64(len(c.ID2Label))*h
}

// ParseConfig parses config.json content. Absent fields take transformers'
// defaults; a "num_labels" without id2label creates LABEL_i names.
func ParseConfig(data []byte) (*BertConfig, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, syntaxErr(data, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("want a JSON object of config fields, got null")
	}
	modelType := "bert" // what transformers' BertConfig assumes
	if v, ok := raw["model_type"]; ok {
		if err := json.Unmarshal(v, &modelType); err != nil {
			return nil, fieldErr("model_type", "cannot use %s: %v", v, unwrapTypeErr(err))
		}
	}
	c, err := NewConfig(modelType)
	if err != nil {
		return nil, err
	}
	// Decode the known fields one by one so a type error names its field.
	known := map[string]any{}
	for _, f := range c.family().fields() {
		known[f.name] = f.ptr(c)
	}
	c.extra = map[string]json.RawMessage{}
	var numLabels *int
	for k, v := range raw {
		if k == "num_labels" {
			numLabels = new(int)
			if err := json.Unmarshal(v, numLabels); err != nil || *numLabels <= 0 || *numLabels > maxLabels {
				return nil, fieldErr(k, "want a positive integer up to %d, got %s", maxLabels, v)
			}
			continue
		}
		ptr, ok := known[k]
		if !ok {
			c.extra[k] = v
			continue
		}
		// json.Unmarshal merges into a non-nil map; the defaults must go.
		switch k {
		case "id2label":
			c.ID2Label = nil
		case "label2id":
			c.Label2ID = nil
		}
		if err := json.Unmarshal(v, ptr); err != nil {
			return nil, fieldErr(k, "cannot use %s: %v", v, unwrapTypeErr(err))
		}
	}
	_, hasID2Label := raw["id2label"]
	switch {
	case !hasID2Label && numLabels != nil:
		c.SetNumLabels(*numLabels)
	case hasID2Label && raw["label2id"] == nil:
		c.Label2ID = make(map[string]int, len(c.ID2Label))
		for i, l := range c.ID2Label {
			c.Label2ID[l] = i
		}
	}
	if numLabels != nil && *numLabels != len(c.ID2Label) {
		return nil, fieldErr("num_labels", "is %d but id2label has %d labels", *numLabels, len(c.ID2Label))
	}
	if p := c.family().parsed; p != nil {
		if err := p(c); err != nil {
			return nil, err
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func unwrapTypeErr(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)
	}
	return err
}

// syntaxErr turns a JSON syntax error's byte offset into line:column.
func syntaxErr(data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	// Offset counts the offending byte itself.
	before := data[:max(0, min(int(se.Offset)-1, len(data)))]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("line %d, column %d: %v", line, col, err)
}

// configField is a typed field by its JSON name.
type configField struct {
	name string
	ptr  func(c *BertConfig) any
}

// bertFields are BERT's config.json fields, which RoBERTa, ALBERT and ELECTRA share.
var bertFields = []configField{
	{"vocab_size", func(c *BertConfig) any { return &c.VocabSize }},
	{"hidden_size", func(c *BertConfig) any { return &c.HiddenSize }},
	{"num_hidden_layers", func(c *BertConfig) any { return &c.NumHiddenLayers }},
	{"num_attention_heads", func(c *BertConfig) any { return &c.NumAttentionHeads }},
	{"intermediate_size", func(c *BertConfig) any { return &c.IntermediateSize }},
	{"hidden_act", func(c *BertConfig) any { return &c.HiddenAct }},
	{"hidden_dropout_prob", func(c *BertConfig) any { return &c.HiddenDropoutProb }},
	{"attention_probs_dropout_prob", func(c *BertConfig) any { return &c.AttentionProbsDropoutProb }},
	{"max_position_embeddings", func(c *BertConfig) any { return &c.MaxPositionEmbeddings }},
	{"type_vocab_size", func(c *BertConfig) any { return &c.TypeVocabSize }},
	{"initializer_range", func(c *BertConfig) any { return &c.InitializerRange }},
	{"layer_norm_eps", func(c *BertConfig) any { return &c.LayerNormEps }},
	{"pad_token_id", func(c *BertConfig) any { return &c.PadTokenID }},
	{"position_embedding_type", func(c *BertConfig) any { return &c.PositionEmbeddingType }},
}

// commonFields are in every family's config.json.
var commonFields = []configField{
	{"architectures", func(c *BertConfig) any { return &c.Architectures }},
	{"model_type", func(c *BertConfig) any { return &c.ModelType }},
	{"problem_type", func(c *BertConfig) any { return &c.ProblemType }},
	{"id2label", func(c *BertConfig) any { return &c.ID2Label }},
	{"label2id", func(c *BertConfig) any { return &c.Label2ID }},
}

// Marshal renders config.json as transformers writes it: keys sorted,
// two-space indent, trailing newline; unknown fields from ParseConfig included.
func (c *BertConfig) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := maps.Clone(c.extra)
	if out == nil {
		out = map[string]json.RawMessage{}
	}
	for _, f := range c.family().fields() {
		v, err := json.Marshal(f.ptr(c))
		if err != nil {
			return nil, fieldErr(f.name, "%v", err)
		}
		out[f.name] = v
	}
	if len(c.Architectures) == 0 {
		delete(out, "architectures")
	}
	if c.ProblemType == "" {
		delete(out, "problem_type")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadConfig reads and validates a config.json file.
func ReadConfig(path string) (*BertConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.File = path
			return nil, fe
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteConfig writes c to path atomically.
func WriteConfig(path string, c *BertConfig) error {
	data, err := c.Marshal()
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.File = path
		}
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}
