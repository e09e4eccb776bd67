package hf

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The config.json files of the families' reference checkpoints as published on the hub.
var hubConfigs = map[string]string{
	// sentence-transformers/all-mpnet-base-v2's config.json (microsoft/mpnet-base's
	// sizes): no type_vocab_size, pad_token_id 1, 514 positions.
	"all-mpnet-base-v2": `{
  "_name_or_path": "microsoft/mpnet-base",
  "architectures": [
    "MPNetForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 514,
  "model_type": "mpnet",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "relative_attention_num_buckets": 32,
  "transformers_version": "4.8.2",
  "vocab_size": 30527
}`,
	// microsoft/deberta-v3-base's config.json: pos_att_type as a string, as DeBERTa's
	// own code wrote it.
	"deberta-v3-base": `{
  "model_type": "deberta-v2",
  "attention_probs_dropout_prob": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 512,
  "relative_attention": true,
  "position_buckets": 256,
  "norm_rel_ebd": "layer_norm",
  "share_att_key": true,
  "pos_att_type": "p2c|c2p",
  "layer_norm_eps": 1e-7,
  "max_relative_positions": -1,
  "position_biased_input": false,
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "type_vocab_size": 0,
  "vocab_size": 128100
}`,
	// The layout of answerdotai/ModernBERT-base's config.json: the old spelling of the
	// rotary bases, both norm_eps and the sentence-transformers layer_norm_eps.
	"modernbert-base": `{
  "architectures": [
    "ModernBertForMaskedLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 50281,
  "classifier_activation": "gelu",
  "classifier_bias": false,
  "classifier_dropout": 0.0,
  "classifier_pooling": "mean",
  "cls_token_id": 50281,
  "decoder_bias": true,
  "deterministic_flash_attn": false,
  "embedding_dropout": 0.0,
  "eos_token_id": 50282,
  "global_attn_every_n_layers": 3,
  "global_rope_theta": 160000.0,
  "gradient_checkpointing": false,
  "hidden_activation": "gelu",
  "hidden_size": 768,
  "initializer_cutoff_factor": 2.0,
  "initializer_range": 0.02,
  "intermediate_size": 1152,
  "layer_norm_eps": 1e-05,
  "local_attention": 128,
  "local_rope_theta": 10000.0,
  "max_position_embeddings": 8192,
  "mlp_bias": false,
  "mlp_dropout": 0.0,
  "model_type": "modernbert",
  "norm_bias": false,
  "norm_eps": 1e-05,
  "num_attention_heads": 12,
  "num_hidden_layers": 22,
  "pad_token_id": 50283,
  "position_embedding_type": "absolute",
  "sep_token_id": 50282,
  "tie_word_embeddings": true,
  "torch_dtype": "float32",
  "transformers_version": "4.47.0.dev0",
  "vocab_size": 50368
}`,
	"distilbert-base-uncased": `{
  "activation": "gelu",
  "architectures": [
    "DistilBertForMaskedLM"
  ],
  "attention_dropout": 0.1,
  "dim": 768,
  "dropout": 0.1,
  "hidden_dim": 3072,
  "initializer_range": 0.02,
  "max_position_embeddings": 512,
  "model_type": "distilbert",
  "n_heads": 12,
  "n_layers": 6,
  "pad_token_id": 0,
  "qa_dropout": 0.1,
  "seq_classif_dropout": 0.2,
  "sinusoidal_pos_embds": false,
  "tie_weights_": true,
  "transformers_version": "4.10.0.dev0",
  "vocab_size": 30522
}
`,
	"roberta-base": `{
  "architectures": [
    "RobertaForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 514,
  "model_type": "roberta",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 1,
  "type_vocab_size": 1,
  "vocab_size": 50265
}
`,
	"xlm-roberta-base": `{
  "architectures": [
    "XLMRobertaForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0.1,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 514,
  "model_type": "xlm-roberta",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "output_past": true,
  "pad_token_id": 1,
  "position_embedding_type": "absolute",
  "transformers_version": "4.17.0.dev0",
  "type_vocab_size": 1,
  "use_cache": true,
  "vocab_size": 250002
}
`,
	"albert-base-v2": `{
  "architectures": [
    "AlbertForMaskedLM"
  ],
  "attention_probs_dropout_prob": 0,
  "bos_token_id": 2,
  "classifier_dropout_prob": 0.1,
  "down_scale_factor": 1,
  "embedding_size": 128,
  "eos_token_id": 3,
  "gap_size": 0,
  "hidden_act": "gelu_new",
  "hidden_dropout_prob": 0,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "inner_group_num": 1,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "albert",
  "net_structure_type": 0,
  "num_attention_heads": 12,
  "num_hidden_groups": 1,
  "num_hidden_layers": 12,
  "num_memory_blocks": 0,
  "pad_token_id": 0,
  "type_vocab_size": 2,
  "vocab_size": 30000
}
`,
	"electra-small-discriminator": `{
  "architectures": [
    "ElectraForPreTraining"
  ],
  "attention_probs_dropout_prob": 0.1,
  "embedding_size": 128,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 256,
  "initializer_range": 0.02,
  "intermediate_size": 1024,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "electra",
  "num_attention_heads": 4,
  "num_hidden_layers": 12,
  "pad_token_id": 0,
  "type_vocab_size": 2,
  "vocab_size": 30522
}
`,
}

// Each family's config.json reads into BERT's terms, and writes back under the family's
// own names with its unknown fields, as transformers' config class would.
func TestParseFamilyConfigs(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	want := map[string]func(c *BertConfig) BertConfig{
		"distilbert-base-uncased": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "distilbert", VocabSize: 30522, HiddenSize: 768, NumHiddenLayers: 6, NumAttentionHeads: 12,
				IntermediateSize: 3072, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 512,
				TypeVocabSize: 0, LayerNormEps: 1e-12, QADropout: 0.1, ClassifierDropout: f(0.2)}
		},
		"roberta-base": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "roberta", VocabSize: 50265, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
				IntermediateSize: 3072, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 514,
				TypeVocabSize: 1, LayerNormEps: 1e-5, PadTokenID: 1}
		},
		"xlm-roberta-base": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "xlm-roberta", VocabSize: 250002, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
				IntermediateSize: 3072, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 514,
				TypeVocabSize: 1, LayerNormEps: 1e-5, PadTokenID: 1}
		},
		"albert-base-v2": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "albert", VocabSize: 30000, EmbeddingSize: 128, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
				IntermediateSize: 3072, HiddenAct: "gelu_new", MaxPositionEmbeddings: 512, TypeVocabSize: 2, LayerNormEps: 1e-12,
				NumHiddenGroups: 1, InnerGroupNum: 1, ClassifierDropout: f(0.1)}
		},
		"modernbert-base": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "modernbert", VocabSize: 50368, HiddenSize: 768, NumHiddenLayers: 22, NumAttentionHeads: 12,
				IntermediateSize: 1152, HiddenAct: "gelu", MaxPositionEmbeddings: 8192, LayerNormEps: 1e-5, PadTokenID: 50283,
				ClassifierDropout: f(0)}
		},
		"deberta-v3-base": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "deberta-v2", VocabSize: 128100, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
				IntermediateSize: 3072, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 512,
				LayerNormEps: 1e-7}
		},
		"all-mpnet-base-v2": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "mpnet", VocabSize: 30527, HiddenSize: 768, NumHiddenLayers: 12, NumAttentionHeads: 12,
				IntermediateSize: 3072, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 514,
				LayerNormEps: 1e-5, PadTokenID: 1}
		},
		"electra-small-discriminator": func(c *BertConfig) BertConfig {
			return BertConfig{ModelType: "electra", VocabSize: 30522, EmbeddingSize: 128, HiddenSize: 256, NumHiddenLayers: 12, NumAttentionHeads: 4,
				IntermediateSize: 1024, HiddenAct: "gelu", HiddenDropoutProb: 0.1, AttentionProbsDropoutProb: 0.1, MaxPositionEmbeddings: 512,
				TypeVocabSize: 2, LayerNormEps: 1e-12}
		},
	}
	for name, text := range hubConfigs {
		t.Run(name, func(t *testing.T) {
			c, err := ParseConfig([]byte(text))
			if err != nil {
				t.Fatal(err)
			}
			w := want[name](c)
			got := BertConfig{ModelType: c.ModelType, VocabSize: c.VocabSize, EmbeddingSize: c.EmbeddingSize, HiddenSize: c.HiddenSize,
				NumHiddenLayers: c.NumHiddenLayers, NumAttentionHeads: c.NumAttentionHeads, IntermediateSize: c.IntermediateSize,
				HiddenAct: c.HiddenAct, HiddenDropoutProb: c.HiddenDropoutProb, AttentionProbsDropoutProb: c.AttentionProbsDropoutProb,
				MaxPositionEmbeddings: c.MaxPositionEmbeddings, TypeVocabSize: c.TypeVocabSize, LayerNormEps: c.LayerNormEps,
				PadTokenID: c.PadTokenID, NumHiddenGroups: c.NumHiddenGroups, InnerGroupNum: c.InnerGroupNum, QADropout: c.QADropout,
				ClassifierDropout: c.ClassifierDropout, SinusoidalPosEmbds: c.SinusoidalPosEmbds}
			if !reflect.DeepEqual(got, w) {
				t.Fatalf("parsed\n%+v\nwant\n%+v", got, w)
			}

			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var written, orig map[string]json.RawMessage
			if err := json.Unmarshal(out, &written); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal([]byte(text), &orig)
			// Every field of the hub's file is written back with the same value; the only
			// additions are the fields transformers' config class always writes.
			for k, v := range orig {
				var a, b any
				json.Unmarshal(v, &a)
				json.Unmarshal(written[k], &b)
				if k == "pos_att_type" && a == "p2c|c2p" { // transformers writes what it read as a list
					a = []any{"p2c", "c2p"}
				}
				if !reflect.DeepEqual(a, b) {
					t.Errorf("%s: wrote %s, the hub file has %s", k, written[k], v)
				}
			}
			allowed := map[string]bool{"id2label": true, "label2id": true, "classifier_dropout": true, "position_embedding_type": true,
				"qa_dropout": true, "seq_classif_dropout": true, "sinusoidal_pos_embds": true,
				"cls_dropout": true, "pooler_dropout": true, "pooler_hidden_act": true, "pad_token_id": true}
			for k := range written {
				if _, ok := orig[k]; !ok && !allowed[k] {
					t.Errorf("wrote %q, which %s's config.json does not have", k, c.ModelType)
				}
			}
			if c.ModelType == "distilbert" {
				for _, bert := range []string{"hidden_size", "num_hidden_layers", "type_vocab_size", "layer_norm_eps", "hidden_act", "classifier_dropout"} {
					if _, ok := written[bert]; ok {
						t.Errorf("a DistilBERT config.json got BERT's %q", bert)
					}
				}
			}
			again, err := ParseConfig(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, c) {
				t.Fatalf("round trip changed the config:\n%+v\n%+v", again, c)
			}
		})
	}
}

// A config.json that omits fields gets the family's transformers defaults, not BERT's.
func TestFamilyDefaults(t *testing.T) {
	for _, c := range []struct {
		json  string
		check func(c *BertConfig) bool
	}{
		{`{"model_type": "roberta"}`, func(c *BertConfig) bool { return c.VocabSize == 50265 && c.PadTokenID == 1 && c.TypeVocabSize == 2 }},
		{`{"model_type": "xlm-roberta"}`, func(c *BertConfig) bool {
			return c.VocabSize == 30522 && c.PadTokenID == 1 && c.LayerNormEps == 1e-12 && c.ArchitecturePrefix() == "XLMRoberta"
		}},
		{`{"model_type": "camembert"}`, func(c *BertConfig) bool {
			return c.VocabSize == 30522 && c.PadTokenID == 1 && c.PositionOffset() == 2 && c.ArchitecturePrefix() == "Camembert"
		}},
		{`{"model_type": "electra"}`, func(c *BertConfig) bool {
			return c.EmbeddingSize == 128 && c.HiddenSize == 256 && c.NumAttentionHeads == 4 && c.IntermediateSize == 1024
		}},
		{`{"model_type": "albert"}`, func(c *BertConfig) bool {
			return c.VocabSize == 30000 && c.HiddenSize == 4096 && c.NumAttentionHeads == 64 && c.HiddenAct == "gelu_new" &&
				c.HiddenDropoutProb == 0 && *c.ClassifierDropout == 0.1 && c.NumHiddenGroups == 1 && c.InnerGroupNum == 1
		}},
		{`{"model_type": "distilbert"}`, func(c *BertConfig) bool {
			return c.NumHiddenLayers == 6 && c.HiddenSize == 768 && *c.ClassifierDropout == 0.2 && c.QADropout == 0.1 &&
				c.TypeVocabSize == 0 && !c.SinusoidalPosEmbds
		}},
		{`{}`, func(c *BertConfig) bool {
			return c.ModelType == "bert" && c.TypeVocabSize == 2 && c.ClassifierDropout == nil
		}},
	} {
		cfg, err := ParseConfig([]byte(c.json))
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if !c.check(cfg) {
			t.Errorf("%s gave %+v", c.json, cfg)
		}
	}
}

// RoBERTa's positions start after its padding id; the others' at 0.
func TestPositionOffset(t *testing.T) {
	r, _ := ParseConfig([]byte(hubConfigs["roberta-base"]))
	if r.PositionOffset() != 2 || r.MaxLength() != 512 || r.HasTokenTypes() {
		t.Fatalf("roberta-base: offset %d, max length %d, token types %v", r.PositionOffset(), r.MaxLength(), r.HasTokenTypes())
	}
	if x, _ := ParseConfig([]byte(hubConfigs["xlm-roberta-base"])); x.PositionOffset() != 2 || x.MaxLength() != 512 {
		t.Fatalf("xlm-roberta-base: offset %d, max length %d", x.PositionOffset(), x.MaxLength())
	}
	for _, name := range []string{"distilbert-base-uncased", "albert-base-v2", "electra-small-discriminator"} {
		c, _ := ParseConfig([]byte(hubConfigs[name]))
		if c.PositionOffset() != 0 || c.MaxLength() != 512 || c.HasTokenTypes() != (c.ModelType != "distilbert") {
			t.Errorf("%s: offset %d, max length %d, token types %v", name, c.PositionOffset(), c.MaxLength(), c.HasTokenTypes())
		}
	}
}

// Every preset, BERT's and the other families', has its family and size, and is written
// and read back unchanged.
func TestFamilyPresets(t *testing.T) {
	for _, name := range PresetNames() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		size := name[strings.LastIndex(name, "-")+1:]
		w := sizes[size]
		if got := [4]int{c.NumHiddenLayers, c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize}; got != w || c.VocabSize != 30522 || c.PadTokenID != 0 {
			t.Errorf("%s: sizes %v, vocab %d, pad %d", name, got, c.VocabSize, c.PadTokenID)
		}
		family := "bert"
		if i := strings.LastIndex(name, "-"); i > 0 {
			family = name[:i]
		}
		if c.ModelType != family || c.MaxLength() != 512 {
			t.Errorf("%s: model_type %q, max length %d", name, c.ModelType, c.MaxLength())
		}
		if (family == "albert" || family == "electra") != (c.EmbeddingSize == min(128, c.HiddenSize/2)) {
			t.Errorf("%s: embedding size %d", name, c.EmbeddingSize)
		}
		path := filepath.Join(t.TempDir(), "config.json")
		if err := WriteConfig(path, c); err != nil {
			t.Fatal(err)
		}
		back, err := ReadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		back.extra = nil
		if !reflect.DeepEqual(back, c) {
			t.Errorf("%s changed on disk:\n%+v\n%+v", name, back, c)
		}
		if c.ArchitecturePrefix() == "" {
			t.Errorf("%s: no architecture prefix", name)
		}
	}
}
