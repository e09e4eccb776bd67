package model

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
)

// With gradient checkpointing every family's gradient is the one the whole graph gives,
// dropout on: bit for bit where each parameter receives one gradient per step, DeBERTa's
// relative embeddings and MPNet's position bias included (their gradient goes through
// the LayerNorm, the table lookup, once), within float rounding for ALBERT's shared
// layers (one gradient per layer, added in turn). Frozen layers under frozen embeddings
// run once, their inputs not kept. The loss is
// the same, and so is the dropout generator's state after the step, so the next steps
// draw the same noise. Sequence heads (the last layer computes the first token alone),
// token heads, masked LM (its decoder tied to the embeddings), LoRA and freezing.
func TestGradientCheckpointingGivesTheSameGradient(t *testing.T) {
	lockThread(t)
	shared := map[string]bool{"albert": true}
	type run struct {
		grad []float32
		loss float64
		rng  []byte
	}
	step := func(t *testing.T, modelType string, opts Options, ckpt bool, below int) run {
		opts.GradientCheckpointing = ckpt
		m := newModel(t, familyConfig(t, modelType, 0.1), opts, 7)
		b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 12, []int{12, 5, 9, 3})
		if modelType == "modernbert" || modelType == "deberta-v2" || modelType == "roberta" || modelType == "distilbert" || modelType == "mpnet" {
			b.TokenTypeIDs = nil
		}
		if ckpt { // the forward keeps the input of each layer from below, and no activation of it
			out, err := m.Forward(b, true, false)
			if err != nil {
				t.Fatal(err)
			}
			r := out.recompute
			if r == nil {
				t.Fatal("a checkpointed forward left nothing to recompute")
			}
			if r.first != below || len(r.inputs) != len(m.layers)-below && m.modern == nil {
				t.Fatalf("a checkpointed forward recomputes from layer %d and keeps %d inputs; want %d and %d", r.first, len(r.inputs), below, len(m.layers)-below)
			}
			r.free()
			out.Logits.MustDrop()
			out.Loss.MustDrop()
		}
		m.Params.ZeroGrad()
		ManualSeed(11)
		loss, err := m.Backward(b, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		rng, err := RNGState(gotch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		return run{slices.Clone(m.Params.GradSlice()), loss, rng}
	}
	type testCase struct {
		modelType string
		opts      Options
		below     int // the layers that run once: frozen, under frozen embeddings
	}
	cases := []testCase{
		{"bert", Options{Task: MLM}, 0},
		{"bert", Options{Task: NER, NumLabels: 5}, 0},
		{"bert", Options{Task: Classify, NumLabels: 3, LoRA: LoRA{R: 4, Alpha: 8, Dropout: 0.1}}, 0},
		{"bert", Options{Task: Classify, NumLabels: 3, Freeze: Freeze{Layers: 1}}, 0}, // the embeddings train
		{"bert", Options{Task: Classify, NumLabels: 3, Freeze: Freeze{Embeddings: true, Layers: 1}}, 1},
		{"bert", Options{Task: NER, NumLabels: 5, Freeze: Freeze{Base: true}}, 2},
		{"deberta-v2", Options{Task: Classify, NumLabels: 3, Freeze: Freeze{Embeddings: true, Layers: 1}}, 1},
		{"mpnet", Options{Task: Classify, NumLabels: 3, Freeze: Freeze{Embeddings: true, Layers: 1}}, 1},
		{"albert", Options{Task: Classify, NumLabels: 3, Freeze: Freeze{Embeddings: true}}, 0},
		{"albert", Options{Task: Classify, NumLabels: 3, Freeze: Freeze{Base: true}}, 3},
	}
	for _, mt := range modelTypes {
		cases = append(cases, testCase{mt, Options{Task: Classify, NumLabels: 3}, 0})
	}
	for _, c := range cases {
		name := c.modelType + "/" + string(c.opts.Task)
		if c.opts.LoRA.R > 0 {
			name += "/lora"
		}
		if f := c.opts.Freeze; f != (Freeze{}) {
			name += fmt.Sprintf("/freeze-embeddings-%t-layers-%d-base-%t", f.Embeddings, f.Layers, f.Base)
		}
		t.Run(name, func(t *testing.T) {
			lockThread(t)
			whole, ckpt := step(t, c.modelType, c.opts, false, c.below), step(t, c.modelType, c.opts, true, c.below)
			if whole.loss != ckpt.loss {
				t.Errorf("loss %v, %v without checkpointing", ckpt.loss, whole.loss)
			}
			if !bytes.Equal(whole.rng, ckpt.rng) {
				t.Errorf("the generator's state after the step differs from the one without checkpointing")
			}
			var norm float64
			for _, g := range whole.grad {
				norm = math.Max(norm, math.Abs(float64(g)))
			}
			if norm == 0 {
				t.Fatal("zero gradient")
			}
			if !shared[c.modelType] {
				if i := firstDiff(whole.grad, ckpt.grad); i >= 0 {
					t.Fatalf("gradient[%d] %v, %v without checkpointing", i, ckpt.grad[i], whole.grad[i])
				}
				return
			}
			var worst float64
			for i := range whole.grad {
				worst = math.Max(worst, math.Abs(float64(whole.grad[i]-ckpt.grad[i])))
			}
			if worst > 1e-5*norm {
				t.Fatalf("gradients differ by %g (largest value %g)", worst, norm)
			}
			t.Logf("largest difference %.2g of the largest value %.2g", worst, norm)
		})
	}
}
