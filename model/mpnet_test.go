package model

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// MPNet's buckets of the distance query - key, as transformers'
// relative_position_bucket gives them with torch 1.13 (printed once from its code):
// keys before the query in 0..15, keys after it in 17..31; one bucket per distance
// below 8, then 8 + ⌊8 · log(|r|/8) / log 16⌋, capped at 15. The exact boundaries 16,
// 32 and 64 (log ratios of 2, 4 and 6 in exact arithmetic) fall as float32 puts them.
func TestMPNetBuckets(t *testing.T) {
	firsts := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 23, 32, 46, 64, 91} // the first distance of buckets 0..15
	for r := -700; r <= 700; r++ {
		a := max(r, -r)
		want := int64(slices.IndexFunc(firsts, func(f int) bool { return f > a }) - 1)
		if want < 0 {
			want = 15
		}
		if r < 0 {
			want += 16
		}
		if got := mpnetBucket(r); got != want {
			t.Errorf("bucket(%d) = %d, want %d", r, got, want)
		}
	}
}

// MPNet's backward is the derivative of its loss for every head, through the relative
// attention bias every layer adds.
func TestMPNetGradientMatchesFiniteDifferences(t *testing.T) {
	want := []string{
		"word_embeddings", "position_embeddings", "embeddings.LayerNorm.weight", "relative_attention_bias",
		"layer.0.attention.attn.q.weight", "layer.0.attention.attn.k.weight", "layer.0.attention.attn.v.bias",
		"layer.0.attention.attn.o.weight", "layer.1.attention.LayerNorm.weight", "layer.1.output.dense.weight",
		"pooler.dense.weight", "classifier.dense.weight", "classifier.out_proj.weight", "classifier.weight", "qa_outputs.weight",
	}
	checkHeadGradients(t, func(t *testing.T) *hf.BertConfig { return familyConfig(t, "mpnet", 0) }, want)
}

// transformers' MPNetEmbeddings fixes the padding index at 1: pad_token_id changes
// nothing in the model's logits (a 0 inside a text is a token like any other), and a
// token of id 1 inside a text is not counted as a position
// (create_position_ids_from_input_ids with padding_idx 1).
func TestMPNetPaddingIndex(t *testing.T) {
	lockThread(t)
	opts := Options{Task: NER, NumLabels: 3}
	cfg := familyConfig(t, "mpnet", 0)
	one := newModel(t, cfg, opts, 4)
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), one, 10, []int{10, 6})
	b.Labels = nil
	for i, id := range b.InputIDs {
		if id == 1 || id == 0 {
			b.InputIDs[i] = 2
		}
	}
	b.InputIDs[3] = 0
	logits := func(m *Model, b *Batch) []float32 {
		got, _, err := m.Infer(b)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := logits(one, b)
	zero := *cfg
	zero.PadTokenID = 0
	other := newModel(t, &zero, opts, 9)
	copy(other.Params.FlatSlice(), one.Params.FlatSlice())
	if i := firstDiff(logits(other, b), want); i >= 0 {
		t.Fatalf("pad_token_id 0 changed logit %d", i)
	}
	// Position ids 2..11 for the first text, its 0 included; a 1 in its 4th place takes position 1 (the
	// padding row) and shifts the tokens after it back by one.
	pos := offsetPositions(b, int64(cfg.PaddingIdx()))
	if !slices.Equal(pos[:10], []int64{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("position ids %v", pos[:10])
	}
	b.InputIDs[3] = 1
	if pos = offsetPositions(b, int64(cfg.PaddingIdx())); !slices.Equal(pos[:10], []int64{2, 3, 4, 1, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("position ids with a 1 inside %v", pos[:10])
	}
}
