package model

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bertnode/bertnode/hf"
)

// NomicBERT's backward is the derivative of its loss for every head, through the rotary
// positions, the fused Wqkv and the gated MLP (fc11 and fc12 each), with partial and
// interleaved rotation and every bias too.
func TestNomicBERTGradientMatchesFiniteDifferences(t *testing.T) {
	want := []string{
		"word_embeddings", "token_type_embeddings", "emb_ln.weight", "layers.0.attn.Wqkv.weight", "layers.0.attn.Wqkv.bias",
		"layers.0.attn.out_proj.weight", "layers.0.mlp.fc11.weight", "layers.0.mlp.fc12.weight", "layers.0.mlp.fc12.bias",
		"layers.1.mlp.fc2.weight", "layers.1.norm1.weight", "layers.1.norm2.bias", "pooler.dense.weight", "classifier.weight", "qa_outputs.weight",
	}
	checkHeadGradients(t, func(t *testing.T) *hf.BertConfig {
		cfg := familyConfig(t, "nomic_bert", 0)
		cfg.HiddenAct, cfg.RotaryEmbFraction, cfg.RotaryEmbInterleaved = "geglu", 0.5, true
		cfg.QKVProjBias, cfg.MLPFc1Bias, cfg.MLPFc2Bias = true, true, true
		return cfg
	}, want)
}

// With rotary_scaling_factor set, NomicBERT's base changes for sequences longer than
// max_trained_positions (dynamic NTK scaling), which bertnode does not build: up to that
// length the model is the unscaled one, beyond it a batch is refused, not computed with
// the wrong angles.
func TestNomicBERTScalingBoundsTheLength(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "nomic_bert", 0)
	plain := newModel(t, cfg, Options{Task: NER, NumLabels: 3}, 1)
	scaled := *cfg
	scaled.RotaryScalingFactor, scaled.MaxTrainedPositions = new(float64), 12
	*scaled.RotaryScalingFactor = 2
	m := newModel(t, &scaled, Options{Task: NER, NumLabels: 3}, 1)
	b := randomBatch(rand.New(rand.NewPCG(5, 6)), m, 12, []int{12, 7})
	want, _, err := plain.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := m.Infer(b)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("logit %d differs from the unscaled model's", i)
	}
	long := randomBatch(rand.New(rand.NewPCG(5, 6)), m, 13, []int{13})
	if _, _, err := m.Infer(long); err == nil || !strings.Contains(err.Error(), "sequence length 13 over max_trained_positions 12") {
		t.Fatalf("13 tokens: %v", err)
	}
}
