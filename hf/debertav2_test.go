package hf

import (
	"slices"
	"strings"
	"testing"
)

func TestDebertaV2Config(t *testing.T) {
	c, err := ParseConfig([]byte(hubConfigs["deberta-v3-base"]))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.PosAttType, PosAttType{"p2c", "c2p"}) || !c.PosAttType.Has("c2p") || !c.PosAttType.Has("p2c") ||
		!c.RelativeAttention || c.PositionBiasedInput || !c.ShareAttKey || !c.NormRelEmbeddings() || c.HasTokenTypes() ||
		c.RelativeSpan() != 256 || c.MaxRelativeDistance() != 512 || c.EmbeddingSize != 0 || c.ClassifierDropout != nil {
		t.Fatalf("deberta-v3-base: %+v", c)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "embedding_size") || !strings.Contains(string(out), `"pos_att_type": [`) {
		t.Errorf("written as\n%s", out)
	}
	p, err := ParseConfig([]byte(`{"model_type": "deberta-v2", "pos_att_type": ["c2p"], "embedding_size": 64, "relative_attention": true,
		"max_relative_positions": 100, "cls_dropout": 0.2}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.PosAttType, PosAttType{"c2p"}) || p.EmbeddingSize != 64 || p.RelativeSpan() != 100 || *p.ClassifierDropout != 0.2 {
		t.Errorf("parsed %+v", p)
	}
	d, _ := ParseConfig([]byte(`{"model_type": "deberta-v2"}`))
	if d.VocabSize != 128100 || d.HiddenSize != 1536 || d.LayerNormEps != 1e-7 || !d.PositionBiasedInput || d.RelativeAttention ||
		d.PositionBuckets != -1 || d.RelativeSpan() != 512 || d.NormRelEmbeddings() || d.ArchitecturePrefix() != "DebertaV2" {
		t.Errorf("defaults: %+v", d)
	}
}

func TestDebertaV2ConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"pos_att_type": 3}`, `field "pos_att_type": cannot use 3`},
		{`{"relative_attention": true, "pos_att_type": "p2p|c2p"}`, `field "pos_att_type": "p2p": want c2p and p2c`},
		{`{"pos_att_type": ["c2p"]}`, `field "pos_att_type": [c2p] needs relative_attention`},
		{`{"position_biased_input": false}`, `field "relative_attention": false, with position_biased_input false`},
		{`{"conv_kernel_size": 3}`, `field "conv_kernel_size": 3: the convolution of deberta-v2-xlarge`},
		{`{"attention_head_size": 7}`, `field "attention_head_size": 7: only hidden_size / num_attention_heads (64)`},
		{`{"pooler_hidden_size": 7}`, `field "pooler_hidden_size": 7: only hidden_size (1536)`},
		{`{"norm_rel_ebd": "batch_norm"}`, `field "norm_rel_ebd": "batch_norm"`},
		{`{"relative_attention": true, "position_buckets": 2}`, `field "position_buckets": 2: want at least 4`},
		{`{"pooler_hidden_act": "gelu2"}`, `field "pooler_hidden_act": unknown activation`},
		{`{"embedding_size": "x"}`, `field "embedding_size": cannot use "x"`},
	} {
		text := `{"model_type": "deberta-v2", ` + c.json[1:]
		_, err := ParseConfig([]byte(text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", text, err, c.want)
		}
	}
}
