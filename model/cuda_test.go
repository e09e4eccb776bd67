package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bertnode/bertnode/hf"
	"github.com/sugarme/gotch"
)

// These run only where libtorch has a CUDA device (scripts/gpu-check.sh runs them on a
// GPU machine); CI has none.
func needCUDA(t *testing.T) gotch.Device {
	t.Helper()
	if !cuda.IsAvailable() {
		t.Skip("no CUDA device in this libtorch/machine")
	}
	return gotch.CudaBuilder(0)
}

// cpuAndCUDA are a model of cfg on the CPU and the same weights on dev.
func cpuAndCUDA(t *testing.T, cfg *hf.BertConfig, opts Options, dev gotch.Device) (cpu, gpu *Model) {
	cpu = newModel(t, cfg, opts, 7)
	opts.Device = dev
	gpu = newModel(t, cfg, opts, 8)
	dir := t.TempDir()
	if err := cpu.Save(dir, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gpu.LoadWeights(filepath.Join(dir, SafetensorsFile)); err != nil {
		t.Fatal(err)
	}
	return cpu, gpu
}

// The same weights give the same logits and loss on CUDA as on the CPU, for every task.
func TestCUDAMatchesCPU(t *testing.T) {
	dev := needCUDA(t)
	for _, tc := range taskCases {
		t.Run(tc.name, func(t *testing.T) {
			lockThread(t)
			cpu, gpu := cpuAndCUDA(t, smallConfig(0), tc.opts, dev)
			b := randomBatch(rand.New(rand.NewPCG(1, 2)), cpu, 16, []int{16, 9, 3})
			lc, lossC, err := cpu.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			lg, lossG, err := gpu.Infer(b)
			if err != nil {
				t.Fatal(err)
			}
			for i := range lc {
				if math.Abs(float64(lc[i]-lg[i])) > 1e-4 {
					t.Fatalf("logit %d: cpu %v cuda %v", i, lc[i], lg[i])
				}
			}
			if math.Abs(lossC-lossG) > 1e-4 {
				t.Fatalf("loss: cpu %v cuda %v", lossC, lossG)
			}
			// The gradient reaches the host buffer the all-reduce reads.
			gpu.Params.ZeroGrad()
			if _, err := gpu.Backward(b, 1); err != nil {
				t.Fatal(err)
			}
			var norm float64
			for _, g := range gpu.Params.HostGrad() {
				norm += float64(g) * float64(g)
			}
			if want := gpu.Params.ClipGradNorm(0); math.Abs(math.Sqrt(norm)-want) > 1e-3*want {
				t.Fatalf("host gradient norm %v, device %v", math.Sqrt(norm), want)
			}
		})
	}
}

// Every family and head (embedding models and masked LM too, where the family has one)
// gives the CPU's logits and loss on CUDA, where libtorch 2 runs attention fused
// (ModernBERT's local windows as a mask; DeBERTa op by op), with TF32 off so that the
// comparison is fp32's; packed (no labels) and padded (labels) alike.
func TestCUDAFamiliesMatchCPU(t *testing.T) {
	dev := needCUDA(t)
	defer SetTF32(TF32())
	SetTF32(false)
	tasks := append(slices.Clone(familyTasks), Options{Task: Embed, Pooling: PoolMean}, Options{Task: MLM})
	for _, mt := range modelTypes {
		for _, opts := range tasks {
			t.Run(mt+"/"+string(opts.Task), func(t *testing.T) {
				lockThread(t)
				cpu, gpu := cpuAndCUDA(t, familyConfig(t, mt, 0), opts, dev)
				b := randomBatch(rand.New(rand.NewPCG(1, 2)), cpu, 24, []int{24, 9, 17, 3})
				for _, labels := range []bool{false, true} {
					bb := *b
					if !labels {
						bb.Labels, bb.Targets = nil, nil
					}
					lc, lossC, err := cpu.Infer(&bb)
					if err != nil {
						t.Fatal(err)
					}
					lg, lossG, err := gpu.Infer(&bb)
					if err != nil {
						t.Fatal(err)
					}
					for i := range lc {
						if !underPadding(cpu, &bb, len(lc), i) && math.Abs(float64(lc[i]-lg[i])) > 1e-4 {
							t.Fatalf("labels %v: logit %d: cpu %v cuda %v", labels, i, lc[i], lg[i])
						}
					}
					if labels && math.Abs(lossC-lossG) > 1e-4 {
						t.Fatalf("loss: cpu %v cuda %v", lossC, lossG)
					}
				}
			})
		}
	}
}

// Mixed precision trains: TF32 matmuls and bf16 and fp16 autocast give finite losses
// that fall over a few steps, and the step is timed against fp32's, batch 32 x 128 (the
// shapes of torch_gpu_step.py, which scripts/gpu-check.sh runs beside it).
func TestCUDAMixedPrecision(t *testing.T) {
	dev := needCUDA(t)
	defer SetTF32(TF32())
	// With libtorch 2.x, tf32 and bf16 once more with attention and AdamW op by op: the
	// fused ops' gain, side by side.
	variants := []string{"fp32", "tf32", "bf16", "fp16"}
	if fusedAttention() || fusedAdamW() {
		variants = append(variants, "tf32/op-by-op", "bf16/op-by-op")
	}
	for _, name := range []string{"tiny", "base"} {
		for _, variant := range variants {
			prec, opByOp := strings.CutSuffix(variant, "/op-by-op")
			ac := prec
			if prec == "fp32" || prec == "tf32" {
				ac = ""
			}
			t.Run(name+"/"+variant, func(t *testing.T) {
				lockThread(t)
				defer func(a, o bool) { fusedAttentionOff, fusedAdamWOff = a, o }(fusedAttentionOff, fusedAdamWOff)
				fusedAttentionOff, fusedAdamWOff = opByOp, opByOp
				SetTF32(prec == "tf32")
				cfg, err := hf.Preset(name)
				if err != nil {
					t.Fatal(err)
				}
				m := newModel(t, cfg, Options{Task: Classify, NumLabels: 2, Device: dev, Autocast: ac}, 3)
				opt := NewAdamW(m.Params, 0.01)
				b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 128, []int{128, 128, 100, 90, 128, 64, 128, 128,
					128, 128, 100, 90, 128, 64, 128, 128, 128, 128, 100, 90, 128, 64, 128, 128, 128, 128, 100, 90, 128, 64, 128, 128})
				first := evalLoss(t, m, b)
				for range 3 { // warm-up: cuBLAS handles, autotuning
					trainStep(t, m, opt, b, 1e-4)
				}
				m.Params.ClipGradNorm(0) // reads a value back: the GPU has caught up
				const steps = 10
				start := time.Now()
				for range steps {
					trainStep(t, m, opt, b, 1e-4)
				}
				last := evalLoss(t, m, b) // Infer copies to the host: the GPU has finished
				per := time.Since(start) / steps
				t.Logf("%s %s: batch 32 x 128: %v per step (%.0f seq/s); loss %.4f -> %.4f", name, variant, per.Round(time.Microsecond), 32/per.Seconds(), first, last)
				if math.IsNaN(last) || math.IsInf(last, 0) || !(last < first) {
					t.Fatalf("loss %v -> %v: not learning", first, last)
				}
			})
		}
	}
}

// The TF32 switch reaches libtorch's global context (on a CPU it changes no result).
func TestTF32Switch(t *testing.T) {
	defer SetTF32(TF32())
	for _, on := range []bool{true, false, true} {
		SetTF32(on)
		if TF32() != on {
			t.Fatalf("SetTF32(%v): libtorch says %v", on, TF32())
		}
	}
}

// Gradient checkpointing on CUDA replays each layer's dropout from libtorch's CUDA
// generator, saved before the layer: the gradient is the whole graph's (within the
// device's float rounding, its embedding backward adding in any order) and the
// generator ends where it would have.
func TestCUDAGradientCheckpointing(t *testing.T) {
	dev := needCUDA(t)
	for _, mt := range []string{"bert", "modernbert", "deberta-v2"} {
		t.Run(mt, func(t *testing.T) {
			lockThread(t)
			step := func(ckpt bool) ([]float32, []byte) {
				opts := Options{Task: Classify, NumLabels: 3, Device: dev, GradientCheckpointing: ckpt}
				m := newModel(t, familyConfig(t, mt, 0.1), opts, 7)
				b := randomBatch(rand.New(rand.NewPCG(3, 4)), m, 12, []int{12, 5, 9, 3})
				b.TokenTypeIDs = nil
				m.Params.ZeroGrad()
				ManualSeed(11)
				if _, err := m.Backward(b, 1); err != nil {
					t.Fatal(err)
				}
				rng, err := RNGState(dev)
				if err != nil {
					t.Fatal(err)
				}
				return slices.Clone(m.Params.HostGrad()), rng
			}
			whole, rw := step(false)
			ckpt, rc := step(true)
			if !bytes.Equal(rw, rc) {
				t.Error("the CUDA generator's state after the step differs")
			}
			var norm, worst float64
			for i := range whole {
				norm = math.Max(norm, math.Abs(float64(whole[i])))
				worst = math.Max(worst, math.Abs(float64(whole[i]-ckpt[i])))
			}
			if norm == 0 || worst > 1e-5*norm {
				t.Fatalf("gradients differ by %g (largest value %g)", worst, norm)
			}
		})
	}
}
