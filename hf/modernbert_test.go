package hf

import (
	"strings"
	"testing"
)

// transformers 5 writes the rotary bases as rope_parameters and each layer's attention
// as layer_types; both spellings give the same model, and rope_parameters wins where
// both are given, as in transformers 5.
func TestModernBERTConfigSpellings(t *testing.T) {
	v5 := `{"model_type": "modernbert", "num_hidden_layers": 4, "global_attn_every_n_layers": 3,
		"layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
		"rope_parameters": {"full_attention": {"rope_theta": 80000.0, "rope_type": "default"},
			"sliding_attention": {"rope_theta": 20000.0, "rope_type": "default"}},
		"global_rope_theta": 160000.0}`
	c, err := ParseConfig([]byte(v5))
	if err != nil {
		t.Fatal(err)
	}
	if c.GlobalRopeTheta != 80000 || c.LocalRopeTheta != 20000 {
		t.Fatalf("rotary bases %v, %v; want rope_parameters' 80000, 20000", c.GlobalRopeTheta, c.LocalRopeTheta)
	}
	for i, want := range []string{"full_attention", "sliding_attention", "sliding_attention", "full_attention"} {
		if c.LayerType(i) != want || c.GlobalLayer(i) != (want == "full_attention") {
			t.Errorf("layer %d: %s, global %v; want %s", i, c.LayerType(i), c.GlobalLayer(i), want)
		}
	}
	if c.RopeTheta(0) != 80000 || c.RopeTheta(1) != 20000 {
		t.Errorf("RopeTheta: %v, %v", c.RopeTheta(0), c.RopeTheta(1))
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if back.GlobalRopeTheta != 80000 || back.LocalRopeTheta != 20000 || !strings.Contains(string(out), `"global_rope_theta": 80000`) {
		t.Errorf("written back as\n%s", out)
	}

	d, err := ParseConfig([]byte(`{"model_type": "modernbert"}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.VocabSize != 50368 || d.NumHiddenLayers != 22 || d.IntermediateSize != 1152 || d.LayerNormEps != 1e-5 || d.PadTokenID != 50283 ||
		d.LocalAttention != 128 || d.GlobalAttnEvery != 3 || d.GlobalRopeTheta != 160000 || d.LocalRopeTheta != 10000 ||
		d.ClassifierPooling != "cls" || d.HasTokenTypes() || d.MaxLength() != 8192 || d.NormBias || d.ArchitecturePrefix() != "ModernBert" {
		t.Errorf("defaults: %+v", d)
	}
}

func TestModernBERTConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"classifier_pooling": "max"}`, `field "classifier_pooling": want "cls" or "mean", got "max"`},
		{`{"classifier_activation": "gelu2"}`, `field "classifier_activation": unknown activation "gelu2"`},
		{`{"global_attn_every_n_layers": 0}`, `field "global_attn_every_n_layers": must be positive, got 0`},
		{`{"local_rope_theta": -1}`, `field "local_rope_theta": must be positive`},
		{`{"embedding_dropout": 1}`, `field "embedding_dropout": must be in [0, 1), got 1`},
		{`{"hidden_size": 36, "num_attention_heads": 4}`, `field "num_attention_heads": rotary positions need an even head size`},
		{`{"hidden_activation": "gelu2"}`, `field "hidden_activation": unknown activation`},
		{`{"norm_eps": 0}`, `field "norm_eps": must be positive`},
		{`{"num_hidden_layers": 2, "layer_types": ["full_attention"]}`, `field "layer_types": 1 entries for 2 layers`},
		{`{"num_hidden_layers": 2, "layer_types": ["full_attention", "full_attention"]}`,
			`field "layer_types": layer 1 is "full_attention", but global_attn_every_n_layers 3 makes it "sliding_attention"`},
		{`{"rope_parameters": {"full_attention": {"rope_type": "yarn", "rope_theta": 1.0}}}`,
			`field "rope_parameters": full_attention: rope_type "yarn": only "default" rotary positions are supported`},
		{`{"rope_parameters": [1]}`, `field "rope_parameters": want {"full_attention"`},
	} {
		text := `{"model_type": "modernbert", ` + c.json[1:]
		_, err := ParseConfig([]byte(text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", text, err, c.want)
		}
	}
}
