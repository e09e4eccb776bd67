package hf

import (
	"encoding/json"
	"strings"
	"testing"
)

// nomicEmbedV15 has the fields of nomic-ai/nomic-embed-text-v1.5's config.json (a
// GPT2Config's names; auto_map and the fused-kernel switches, which change nothing
// computed, kept as the hub has them).
const nomicEmbedV15 = `{
  "activation_function": "swiglu",
  "architectures": ["NomicBertModel"],
  "attn_pdrop": 0.0,
  "auto_map": {"AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig",
               "AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"},
  "bos_token_id": null, "causal": false, "dense_seq_output": true, "embd_pdrop": 0.0, "eos_token_id": null,
  "fused_bias_fc": true, "fused_dropout_add_ln": true, "initializer_range": 0.02, "layer_norm_epsilon": 1e-12,
  "max_trained_positions": 2048, "mlp_fc1_bias": false, "mlp_fc2_bias": false, "model_type": "nomic_bert",
  "n_embd": 768, "n_head": 12, "n_inner": 3072, "n_layer": 12, "n_positions": 8192, "pad_vocab_size_multiple": 64,
  "parallel_block": false, "parallel_block_tied_norm": false, "prenorm": false, "qkv_proj_bias": false,
  "reorder_and_upcast_attn": false, "resid_pdrop": 0.0, "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0,
  "rotary_emb_interleaved": false, "rotary_emb_scale_base": null, "rotary_scaling_factor": null,
  "scale_attn_by_inverse_layer_idx": false, "scale_attn_weights": true, "summary_activation": null,
  "summary_first_dropout": 0.0, "summary_proj_to_labels": true, "summary_type": "cls_index", "summary_use_proj": true,
  "torch_dtype": "float32", "transformers_version": "4.37.2", "type_vocab_size": 2, "use_cache": true,
  "use_flash_attn": true, "use_rms_norm": false, "use_xentropy": true, "vocab_size": 30528
}`

func TestNomicBERTConfig(t *testing.T) {
	c, err := ParseConfig([]byte(nomicEmbedV15))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 768 || c.NumHiddenLayers != 12 || c.NumAttentionHeads != 12 || c.IntermediateSize != 3072 ||
		c.VocabSize != 30528 || c.MaxLength() != 8192 || c.TypeVocabSize != 2 || c.LayerNormEps != 1e-12 ||
		c.RotaryDim() != 64 || c.RotaryEmbBase != 1000 || c.RotaryEmbInterleaved || c.RotaryScalingFactor != nil ||
		c.QKVProjBias || c.MLPFc1Bias || c.MLPFc2Bias || c.FeedForwardAct() != "silu" || c.HiddenDropoutProb != 0 ||
		c.ClassifierDropout == nil || *c.ClassifierDropout != 0 || c.ArchitecturePrefix() != "NomicBert" || !c.HasTokenTypes() {
		t.Fatalf("nomic-embed-text-v1.5: %+v", c)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var written map[string]any
	if err := json.Unmarshal(out, &written); err != nil {
		t.Fatal(err)
	}
	for _, bert := range []string{"hidden_size", "num_hidden_layers", "intermediate_size", "hidden_act", "layer_norm_eps", "max_position_embeddings", "position_embedding_type"} {
		if _, ok := written[bert]; ok {
			t.Errorf("written with BERT's %s:\n%s", bert, out)
		}
	}
	if written["n_embd"] != 768.0 || written["activation_function"] != "swiglu" || written["rotary_scaling_factor"] != nil ||
		written["auto_map"] == nil || written["pad_vocab_size_multiple"] != 64.0 {
		t.Errorf("written:\n%s", out)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Marshal(); string(again) != string(out) {
		t.Errorf("rewritten\n%s\nfirst\n%s", again, out)
	}

	// What NomicBertModel completes: the vocabulary padded up, n_inner None as the gated
	// MLP's 8/3 of the width, every width rounded up to 256, classifier_dropout from
	// embd_pdrop; with rotary_scaling_factor (the config class's default 1.0) the
	// rotary base changes past max_trained_positions, which bounds the length.
	d, err := ParseConfig([]byte(`{"model_type": "nomic_bert", "activation_function": "geglu", "rotary_emb_fraction": 0.5,
		"n_embd": 64, "n_head": 2, "n_inner": null, "vocab_size": 100, "pad_vocab_size_multiple": 8, "embd_pdrop": 0.2, "max_trained_positions": 512}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.VocabSize != 104 || d.IntermediateSize != 256 || *d.ClassifierDropout != 0.2 || d.RotaryDim() != 16 || d.MaxLength() != 512 ||
		d.MaxPositionEmbeddings != 1024 || d.FeedForwardAct() != "gelu" || !d.QKVProjBias || d.RotaryEmbBase != 1000 {
		t.Errorf("completed %+v", d)
	}
	p, err := Preset("nomic_bert-tiny")
	if err != nil {
		t.Fatal(err)
	}
	if p.HiddenSize != 128 || p.HiddenAct != "swiglu" || p.MaxLength() != 512 || p.QKVProjBias || p.RotaryDim() != 64 || p.Validate() != nil {
		t.Errorf("nomic_bert-tiny: %+v, %v", p, p.Validate())
	}
}

func TestNomicBERTConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{}`, `field "activation_function": unknown activation "gelu_new" (known: [swiglu geglu glu])`},
		{`{"activation_function": "swiglu"}`, `field "rotary_emb_fraction": want (0, 1]`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 0.3}`, `field "rotary_emb_fraction": 0.3 of the head size 64 is 19.2 dimensions`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "rotary_emb_base": 0}`, `field "rotary_emb_base": must be positive`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "prenorm": true}`, `field "prenorm": true is a NomicBERT variant bertnode does not build`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "use_rms_norm": true}`, `field "use_rms_norm": true is a NomicBERT variant`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "rotary_emb_scale_base": 512}`, `field "rotary_emb_scale_base": 512 is a NomicBERT variant`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "num_heads_kv": 4}`, `field "num_heads_kv": 4 key and value heads for 12 query heads`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "pad_vocab_size_multiple": 0}`, `field "pad_vocab_size_multiple": want 1 to 65536, got 0`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "embd_pdrop": "x"}`, `field "embd_pdrop": cannot use "x"`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "n_embd": 30}`, `field "n_head": n_embd 30 is not divisible by 12 heads`},
		{`{"activation_function": "swiglu", "rotary_emb_fraction": 1, "max_trained_positions": 0}`, `field "max_trained_positions": must be positive with rotary_scaling_factor set`},
	} {
		text := `{"model_type": "nomic_bert", ` + c.json[1:]
		if c.json == `{}` {
			text = `{"model_type": "nomic_bert"}`
		}
		_, err := ParseConfig([]byte(text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", text, err, c.want)
		}
	}
	// A config made in code is not rounded as a parsed one is.
	c, _ := Preset("nomic_bert-tiny")
	c.IntermediateSize = 300
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `field "n_inner": 300: NomicBERT's gated MLP rounds its width up to a multiple of 256 (512)`) {
		t.Errorf("n_inner 300: %v", err)
	}
}
