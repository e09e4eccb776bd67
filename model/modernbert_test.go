package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// ModernBERT's local layers see local_attention/2 positions either side and no padding;
// its global layers see every real token. Read from the attention probabilities the
// forward keeps, which sum to 1 over each real query's keys.
func TestModernBERTAttentionWindow(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "modernbert", 0) // layer 0 global, layer 1 local (window 8: 4 either side)
	m := newModel(t, cfg, Options{Task: NER, NumLabels: 3}, 1)
	lens := []int{20, 13}
	b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 20, lens)
	b.Labels = nil
	var probs [][]float32
	noGrad(func() {
		out, err := m.Forward(b, false, true)
		if err != nil {
			t.Fatal(err)
		}
		out.Logits.MustDrop()
		for _, a := range out.Attentions {
			probs = append(probs, hostFloats(a))
			a.MustDrop()
		}
	})
	if len(probs) != 2 {
		t.Fatalf("%d layers of attentions, want 2", len(probs))
	}
	H, L := cfg.NumAttentionHeads, b.L
	for layer, p := range probs {
		global := layer == 0
		farSeen := false
		for s, n := range lens {
			for h := range H {
				for i := range n { // real queries
					sum := 0.0
					for j := range L {
						w := p[((s*H+h)*L+i)*L+j]
						sum += float64(w)
						far := i-j > 4 || j-i > 4
						switch {
						case j >= n && w != 0:
							t.Fatalf("layer %d: sequence %d query %d attends to padding %d (%g)", layer, s, i, j, w)
						case !global && far && w != 0:
							t.Fatalf("local layer: sequence %d query %d attends to %d, outside its window (%g)", s, i, j, w)
						case global && far && j < n && w > 0:
							farSeen = true
						}
					}
					if math.Abs(sum-1) > 1e-5 {
						t.Fatalf("layer %d: sequence %d query %d: probabilities sum to %g", layer, s, i, sum)
					}
				}
			}
		}
		if global && !farSeen {
			t.Fatal("the global layer attends to nothing outside the local window")
		}
	}
}

// A sequence's logits are the same alone and padded in a batch, for every head: the
// local layers' window and the padding mask combine without letting padding in.
func TestModernBERTPaddingInvariance(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "modernbert", 0)
	for _, pooling := range []string{"cls", "mean"} {
		cfg.ClassifierPooling = pooling
		for _, opts := range familyTasks {
			m := newModel(t, cfg, opts, 2)
			lens := []int{30, 7, 18}
			batch := randomBatch(rand.New(rand.NewPCG(7, 8)), m, 30, lens)
			batch.Labels, batch.Targets = nil, nil
			all, _, err := m.Infer(batch)
			if err != nil {
				t.Fatal(err)
			}
			per := len(all) / len(lens) // logits per sequence
			for s, n := range lens {
				one := &Batch{B: 1, L: n, InputIDs: batch.InputIDs[s*30 : s*30+n], AttentionMask: batch.AttentionMask[s*30 : s*30+n]}
				alone, _, err := m.Infer(one)
				if err != nil {
					t.Fatal(err)
				}
				tokens := per / 30 // logits per position for token heads, else 0
				for i, v := range alone {
					at := s*per + i
					if tokens > 0 { // [L, N] rows of this sequence, first n of them
						at = s*per + (i/tokens)*tokens + i%tokens
					}
					if d := math.Abs(float64(v - all[at])); d > 2e-5 {
						t.Fatalf("%s %s: sequence %d logit %d: alone %g, in the batch %g", pooling, opts.Task, s, i, v, all[at])
					}
				}
			}
		}
	}
}

// ModernBERT's backward is the derivative of its loss, for every head, through the
// rotary positions, both kinds of attention, the GeGLU and the bias-free norms.
func TestModernBERTGradientMatchesFiniteDifferences(t *testing.T) {
	want := []string{
		"tok_embeddings", "embeddings.norm.weight", "layers.0.attn.Wqkv", "layers.0.attn.Wo", "layers.0.mlp_norm",
		"layers.0.mlp.Wi", "layers.0.mlp.Wo", "layers.1.attn_norm", "layers.1.attn.Wqkv", "layers.1.mlp.Wi", "layers.1.mlp.Wo",
		"final_norm", "head.dense", "head.norm", "classifier.weight", "classifier.bias",
	}
	for _, tc := range taskCases[:5] { // the custom head is refused
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			cfg := familyConfig(t, "modernbert", 0)
			cfg.ClassifierPooling = "mean"
			if tc.opts.Task == QA { // softmax over positions: at 0.2, curvature shows at gradEps
				cfg.InitializerRange = 0.1
			}
			m := newModel(t, cfg, tc.opts, 3)
			b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 14, []int{14, 5, 11, 3})
			checkGradient(t, m, b, want, 12)
		})
	}
}

// A local layer's mask lets each real position see the real tokens within the window
// and nothing else, and a padding position with no real token in reach see itself:
// no row is all masked, which fused attention answers otherwise than eager.
func TestModernBERTLocalMask(t *testing.T) {
	lockThread(t)
	cfg := familyConfig(t, "modernbert", 0) // window 8: 4 either side
	m := newModel(t, cfg, Options{Task: QA}, 1)
	lens := []int{20, 3}
	b := randomBatch(rand.New(rand.NewPCG(1, 1)), m, 20, lens)
	var got []float32
	noGrad(func() {
		mask := ts.MustOfSlice(b.AttentionMask).MustView([]int64{2, 20}, true)
		ext := additiveMask(mask, b)
		local := localMask(m, ext, 2, 20)
		got = hostFloats(local)
		for _, x := range []*ts.Tensor{mask, ext, local} {
			x.MustDrop()
		}
	})
	for s, n := range lens {
		for i := range 20 {
			for j := range 20 {
				open := got[(s*20+i)*20+j] == 0
				near := i-j <= 4 && j-i <= 4
				want := j < n && near || i >= n && i == j && i-(n-1) > 4
				if i >= n && i-(n-1) <= 4 { // padding that still reaches a real token
					want = j < n && near
				}
				if open != want {
					t.Fatalf("sequence %d (%d tokens): [%d, %d] open %v, want %v", s, n, i, j, open, want)
				}
			}
		}
	}
}
