package model

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// transformers' make_log_bucket_position with 8 buckets up to 64: distances within 4
// are themselves, beyond mid + ⌈log(|r|/4) / log(63/4) · 3⌉, odd in r.
func TestDebertaRelativeBuckets(t *testing.T) {
	b := relativeBuckets(101, 8, 64)
	at := func(r int) int64 { return b[r+100] }
	for r, want := range map[int]int64{0: 0, 1: 1, 3: 3, 4: 4, 5: 5, 20: 6, 62: 7, 100: 8} {
		if at(r) != want || at(-r) != -want {
			t.Errorf("bucket(%d) = %d, bucket(%d) = %d; want ±%d", r, at(r), -r, at(-r), want)
		}
	}
	plain := relativeBuckets(10, -1, 64)
	for k, v := range plain {
		if v != int64(k-9) {
			t.Fatalf("without buckets, distance %d became %d", k-9, v)
		}
	}
}

// DeBERTa's backward is the derivative of its loss, for every head, through the
// disentangled attention's gathers, with the layers' own projections of the relative
// embeddings (share_att_key) or pos_key_proj and pos_query_proj, and with c2p alone.
func TestDebertaGradientMatchesFiniteDifferences(t *testing.T) {
	want := []string{
		"word_embeddings", "embeddings.LayerNorm.weight", "rel_embeddings", "encoder.LayerNorm.weight",
		"layer.0.attention.self.query_proj.weight", "layer.0.attention.self.key_proj.weight", "layer.0.attention.self.value_proj.bias",
		"layer.1.attention.self.query_proj.bias", "layer.1.attention.output.dense.weight", "layer.1.output.LayerNorm.weight",
		"pos_key_proj.weight", "pos_query_proj.weight", "pooler.dense.weight", "classifier.weight", "qa_outputs.weight",
	}
	for _, variant := range []struct {
		name  string
		share bool
		types hf.PosAttType
	}{{"shared", true, hf.PosAttType{"p2c", "c2p"}}, {"own", false, hf.PosAttType{"p2c", "c2p"}}, {"c2p", true, hf.PosAttType{"c2p"}}} {
		for _, tc := range taskCases[:5] { // the custom head is as the other families'
			t.Run(variant.name+"/"+tc.name, func(t *testing.T) {
				lockThread(t)
				cfg := familyConfig(t, "deberta-v2", 0)
				cfg.ShareAttKey, cfg.PosAttType = variant.share, variant.types
				m := newModel(t, cfg, tc.opts, 3)
				b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 14, []int{14, 5, 11, 3})
				checkGradient(t, m, b, want, 9)
			})
		}
	}
}

// A checkpoint without relative attention (deberta-v2 as v1 was, positions in the
// input) and one whose embeddings are narrower than its layers (embed_proj) build,
// run, and declare what transformers has.
func TestDebertaVariants(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "deberta-v2", 0)
	cfg.RelativeAttention, cfg.PosAttType, cfg.PositionBiasedInput, cfg.TypeVocabSize, cfg.EmbeddingSize = false, nil, true, 2, 16
	m := newModel(t, cfg, Options{Task: Classify, NumLabels: 2}, 1)
	var names []string
	for _, p := range m.Params.List() {
		names = append(names, p.Name)
	}
	for _, n := range []string{"deberta.embeddings.position_embeddings.weight", "deberta.embeddings.token_type_embeddings.weight", "deberta.embeddings.embed_proj.weight"} {
		if !slices.Contains(names, n) {
			t.Errorf("no %s among %v", n, names)
		}
	}
	for _, n := range []string{"deberta.encoder.rel_embeddings.weight", "deberta.embeddings.embed_proj.bias"} {
		if slices.Contains(names, n) {
			t.Errorf("%s declared", n)
		}
	}
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 12, []int{12, 7})
	if _, _, err := m.Infer(b); err != nil {
		t.Fatal(err)
	}
}
