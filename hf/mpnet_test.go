package hf

import (
	"strings"
	"testing"
)

func TestMPNetConfig(t *testing.T) {
	c, err := ParseConfig([]byte(hubConfigs["all-mpnet-base-v2"]))
	if err != nil {
		t.Fatal(err)
	}
	if c.RelativeAttentionNumBuckets != 32 || c.PositionOffset() != 2 || c.MaxLength() != 512 || c.HasTokenTypes() ||
		c.PaddingIdx() != 1 || c.ArchitecturePrefix() != "MPNet" || c.ClassifierDropout != nil {
		t.Fatalf("all-mpnet-base-v2: %+v", c)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "type_vocab_size") || strings.Contains(string(out), "position_embedding_type") {
		t.Errorf("written with BERT fields MPNetConfig lacks:\n%s", out)
	}
	// MPNetEmbeddings.padding_idx is 1 whatever pad_token_id says.
	p, err := ParseConfig([]byte(`{"model_type": "mpnet", "pad_token_id": 0, "relative_attention_num_buckets": 40}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.PaddingIdx() != 1 || p.PositionOffset() != 2 || p.MaxLength() != 510 || p.RelativeAttentionNumBuckets != 40 {
		t.Errorf("parsed %+v: padding index %d, offset %d", p, p.PaddingIdx(), p.PositionOffset())
	}
	d, _ := ParseConfig([]byte(`{"model_type": "mpnet"}`))
	if d.VocabSize != 30527 || d.PadTokenID != 1 || d.LayerNormEps != 1e-12 || d.RelativeAttentionNumBuckets != 32 || d.TypeVocabSize != 0 {
		t.Errorf("defaults: %+v", d)
	}
}

func TestMPNetConfigErrors(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"relative_attention_num_buckets": 16}`, `field "relative_attention_num_buckets": want 32 to 65536`},
		{`{"relative_attention_num_buckets": "x"}`, `field "relative_attention_num_buckets": cannot use "x"`},
		{`{"max_position_embeddings": 2}`, `field "max_position_embeddings": 2 leaves no position after the offset 2`},
	} {
		text := `{"model_type": "mpnet", ` + c.json[1:]
		_, err := ParseConfig([]byte(text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", text, err, c.want)
		}
	}
}
