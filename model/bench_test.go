package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/bertnode/bertnode/hf"
)

// BenchmarkTrainStep is one training step of a preset (batch 8 of 128 tokens, 2 threads),
// as ../shared/bench/bert_step_torch.py times PyTorch's: zeroing the gradient, forward
// and backward into the flat gradient (fwd+bwd-ms), then clipping and AdamW (opt-ms).
// Two untimed steps first; the metrics are medians over the timed steps (-benchtime Nx).
// scripts/bench-step.sh runs it beside PyTorch; plain go test never runs benchmarks.
func BenchmarkTrainStep(b *testing.B) {
	for _, preset := range []string{"tiny", "mini", "base"} {
		b.Run(preset, func(b *testing.B) {
			m := benchModel(b, preset)
			lens := make([]int, 8)
			for i := range lens {
				lens[i] = 128
			}
			batch := randomBatch(rand.New(rand.NewPCG(1, 1)), m, 128, lens)
			opt := NewAdamW(m.Params, 0.01)
			var step, grad, upd []float64
			run := func() {
				t0 := time.Now()
				m.Params.ZeroGrad()
				if _, err := m.Backward(batch, 1); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				opt.ClipAndUpdate(1e-4, 1)
				t2 := time.Now()
				step, grad, upd = append(step, ms(t2.Sub(t0))), append(grad, ms(t1.Sub(t0))), append(upd, ms(t2.Sub(t1)))
			}
			run()
			run()
			step, grad, upd = nil, nil, nil
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
			b.ReportMetric(median(step), "ms/step")
			b.ReportMetric(median(grad), "fwd+bwd-ms")
			b.ReportMetric(median(upd), "opt-ms")
		})
	}
}

// BenchmarkGradientCheckpointing is a training step's forward and backward (dropout on)
// with and without gradient checkpointing, alternating, on batch 8 x 128 and 2 threads:
// what recomputing the layers costs. DeBERTa and MPNet also build state every layer
// reads (relative embeddings, position bias). With the embeddings and the lower half of
// the layers frozen, those layers need no backward, and no recomputation.
func BenchmarkGradientCheckpointing(b *testing.B) {
	for _, c := range []struct {
		name, preset string
		freeze       Freeze
	}{
		{"mini", "mini", Freeze{}},
		{"base", "base", Freeze{}},
		{"deberta-v2-mini", "deberta-v2-mini", Freeze{}},
		{"mpnet-mini", "mpnet-mini", Freeze{}},
		{"mini-frozen-half", "mini", Freeze{Embeddings: true, Layers: 2}},
		{"base-frozen-half", "base", Freeze{Embeddings: true, Layers: 6}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var models [2]*Model
			for i := range models {
				models[i] = benchModelFor(b, c.preset, Options{Task: Classify, NumLabels: 2, Freeze: c.freeze, GradientCheckpointing: i == 1})
			}
			batch := randomBatch(rand.New(rand.NewPCG(1, 1)), models[0], 128, slices.Repeat([]int{128}, 8))
			var times [2][]float64
			run := func() {
				for i, m := range models {
					t0 := time.Now()
					m.Params.ZeroGrad()
					if _, err := m.Backward(batch, 1); err != nil {
						b.Fatal(err)
					}
					times[i] = append(times[i], ms(time.Since(t0)))
				}
			}
			run()
			times = [2][]float64{}
			for b.Loop() {
				run()
			}
			b.ReportMetric(median(times[0]), "ms-whole")
			b.ReportMetric(median(times[1]), "ms-checkpointed")
			b.ReportMetric(median(times[1])/median(times[0]), "x")
		})
	}
}

// benchModel is a preset's classifier on 2 threads, for a benchmark's goroutine.
func benchModel(b *testing.B, preset string) *Model {
	return benchModelFor(b, preset, Options{Task: Classify, NumLabels: 2})
}

func benchModelFor(b *testing.B, preset string, opts Options) *Model {
	lockThread(b)
	SetThreads(2)
	cfg, err := hf.Preset(preset)
	if err != nil {
		b.Fatal(err)
	}
	return newModel(b, cfg, opts, 1)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkGradHandoff is what the all-reduce pays to reach the gradient: GradSlice, a
// view, against copying the same gradient out, through gotch's CopyData (what a
// copying hand-off would use) and with a plain memmove (the least any copy costs).
func BenchmarkGradHandoff(b *testing.B) {
	lockThread(b)
	cfg, err := hf.Preset("tiny")
	if err != nil {
		b.Fatal(err)
	}
	ps := newModel(b, cfg, Options{Task: Classify, NumLabels: 2}, 1).Params
	bytes := 4 * ps.TrainEnd
	b.Run("GradSlice", func(b *testing.B) {
		lockThread(b)
		b.SetBytes(bytes)
		b.ReportAllocs()
		var p unsafe.Pointer
		for b.Loop() {
			p = unsafe.Pointer(unsafe.SliceData(ps.GradSlice()))
		}
		if p != ps.Grad.MustDataPtr() {
			b.Fatal("GradSlice is not the tensor's memory")
		}
	})
	b.Run("CopyData", func(b *testing.B) {
		lockThread(b)
		b.SetBytes(bytes)
		b.ReportAllocs()
		dst := make([]float32, ps.TrainEnd)
		for b.Loop() {
			ps.Grad.MustCopyData(dst, uint(len(dst)))
		}
	})
	b.Run("memmove", func(b *testing.B) {
		lockThread(b)
		b.SetBytes(bytes)
		b.ReportAllocs()
		src, dst := ps.GradSlice(), make([]float32, ps.TrainEnd)
		for b.Loop() {
			copy(dst, src)
		}
	})
}

// BenchmarkAdamW is one optimizer step over a preset's trainable parameters (2 threads).
// Each iteration times, in turn: Update, the fused pass (28 bytes a parameter: weight,
// gradient and moments read, weight and moments written); the memory floor for the same
// traffic (memoryFloor: an add a value instead of AdamW's arithmetic, on the same
// goroutines); a chunked memmove (8 bytes a parameter); ClipAndUpdate, the clip's norm
// and the update; ClipGradNorm when it scales (norm and scale); and the libtorch op
// sequence Update replaced (updateTorch). Reported per parameter, in GB/s, and Update
// as a multiple of the floor.
func BenchmarkAdamW(b *testing.B) {
	for _, preset := range []string{"tiny", "mini", "base"} {
		b.Run(preset, func(b *testing.B) {
			ps := benchModel(b, preset).Params
			n := int(ps.TrainEnd)
			g, grad := ps.GradSlice(), make([]float32, n)
			for i := range grad {
				grad[i] = float32(i%1000-500) * 1e-5
			}
			copy(g, grad)
			opt := NewAdamW(ps, 0.01)
			ref := NewAdamW(ps, 0.01) // its moments are the floor's and memmove's buffers too
			p, m, v := ps.FlatSlice()[:n], floatSlice(ref.m, int64(n)), floatSlice(ref.v, int64(n))
			var update, floor, memmove, clipUpdate, clip, torch time.Duration
			timed := func(acc *time.Duration, fn func()) {
				t := time.Now()
				fn()
				*acc += time.Since(t)
			}
			round := func() {
				timed(&update, func() { opt.Update(1e-4) })
				timed(&floor, func() { memoryFloor(p, g, m, v) })
				timed(&memmove, func() {
					forChunks(n, Threads(), func(_, lo, hi int) { copy(v[lo:hi], m[lo:hi]) })
				})
				timed(&clipUpdate, func() { opt.ClipAndUpdate(1e-4, 1e-3) })
				timed(&clip, func() { ps.ClipGradNorm(1e-3) })
				copy(g, grad) // unclipped again
				timed(&torch, func() { ref.Step++; ref.updateTorch(1e-4) })
			}
			round() // untimed: libtorch's first call allocates and warms up
			update, floor, memmove, clipUpdate, clip, torch = 0, 0, 0, 0, 0, 0
			for b.Loop() {
				round()
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / float64(n) }
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(per(update), "update-ns/param")
			b.ReportMetric(per(floor), "floor-ns/param")
			b.ReportMetric(per(update)/per(floor), "update/floor")
			b.ReportMetric(28/per(update), "update-GB/s")
			b.ReportMetric(28/per(floor), "floor-GB/s")
			b.ReportMetric(8/per(memmove), "memmove-GB/s")
			b.ReportMetric(per(clipUpdate), "clip+update-ns/param")
			b.ReportMetric(per(clip), "clip-ns/param")
			b.ReportMetric(per(torch), "libtorch-ns/param")
		})
	}
}

// memoryFloor reads p, g, m and v and writes p, m and v, as Update does, with an add a
// value instead of AdamW's arithmetic: in the AVX2 loop's loads and stores where it
// runs, else in Go.
func memoryFloor(p, g, m, v []float32) {
	forChunks(len(p), Threads(), func(_, lo, hi int) {
		p, g, m, v := p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
		for i := floorVector(p, g, m, v); i < len(p); i++ {
			m[i] += g[i]
			v[i] += g[i]
			p[i] += m[i]
		}
	})
}

// BenchmarkInferUnpadded is inference on served batches' shapes, on the packed path
// Forward takes (unpad.go) and on the padded layers it replaced, each ms per batch:
// 18 texts of 8 to 42 tokens (fill 0.6), and 32 such texts one of which is 128 tokens
// long (fill 0.2: a batch that takes whatever is queued).
func BenchmarkInferUnpadded(b *testing.B) {
	for _, c := range []struct {
		preset     string
		opts       Options
		n, longest int
	}{{"tiny", Options{Task: Classify, NumLabels: 2}, 18, 42}, {"base", Options{Task: Classify, NumLabels: 2}, 18, 42},
		{"tiny", Options{Task: NER, NumLabels: 9}, 18, 42}, {"base", Options{Task: NER, NumLabels: 9}, 18, 42},
		{"tiny", Options{Task: Classify, NumLabels: 2}, 32, 128}, {"base", Options{Task: Classify, NumLabels: 2}, 32, 128},
		{"modernbert-small", Options{Task: Classify, NumLabels: 2}, 18, 42}, {"deberta-v2-small", Options{Task: Classify, NumLabels: 2}, 18, 42}} {
		b.Run(fmt.Sprintf("%s-%s-%dx%d", c.preset, c.opts.Task, c.n, c.longest), func(b *testing.B) {
			m := benchModelFor(b, c.preset, c.opts)
			r := rand.New(rand.NewPCG(2, 2))
			lens := make([]int, c.n)
			for i := range lens {
				lens[i] = 8 + r.IntN(35)
			}
			lens[0] = c.longest
			batch := randomBatch(r, m, c.longest, lens)
			batch.Labels = nil
			padded := func() { noGrad(func() { paddedLogits(m, batch).MustDrop() }) } // as Infer
			packed := func() {
				if _, _, err := m.Infer(batch); err != nil {
					b.Fatal(err)
				}
			}
			sideBySide(b, [2]string{"padded", "packed"}, [2]func(){padded, packed})
		})
	}
}

// sideBySide times two ways of doing the same work, alternating within one b.Loop after
// an untimed run of each, and reports each one's median ms and the first's over the
// second's (speedup).
func sideBySide(b *testing.B, names [2]string, ways [2]func()) {
	for _, f := range ways {
		f()
	}
	b.ResetTimer()
	var times [2][]float64
	for b.Loop() {
		for i, f := range ways {
			t0 := time.Now()
			f()
			times[i] = append(times[i], ms(time.Since(t0)))
		}
	}
	b.ReportMetric(median(times[0]), names[0]+"-ms")
	b.ReportMetric(median(times[1]), names[1]+"-ms")
	b.ReportMetric(median(times[0])/median(times[1]), "speedup")
}

// BenchmarkFusedAttention times libtorch's fused attention (sdpa.go) against the op-by-op
// chain, alternating in one run, on the CPU this runs on (ms per batch, speedup = op by
// op / fused): inference on served shapes (packed: 18 texts of 8 to 42 tokens), padded
// inference and a training forward and backward at 8 x 128 (attention dropout 0, so
// training takes the fused op on the CPU too). It needs libtorch 2.0 or later:
// scripts/libtorch2-check.sh ./model -run '^$' -bench FusedAttention.
func BenchmarkFusedAttention(b *testing.B) {
	if !probeSDPA() {
		b.Skipf("libtorch %s has no scaled_dot_product_attention", libtorchName())
	}
	for _, preset := range []string{"tiny", "base"} {
		for _, what := range []string{"packed", "padded", "train"} {
			b.Run(preset+"-"+what, func(b *testing.B) {
				lockThread(b)
				SetThreads(2)
				cfg, err := hf.Preset(preset)
				if err != nil {
					b.Fatal(err)
				}
				cfg.AttentionProbsDropoutProb = 0
				m := newModel(b, cfg, Options{Task: Classify, NumLabels: 2}, 1)
				r := rand.New(rand.NewPCG(2, 2))
				lens := []int{128, 128, 128, 128, 128, 128, 128, 128}
				if what == "packed" {
					lens = make([]int, 18)
					for i := range lens {
						lens[i] = 8 + r.IntN(35)
					}
				}
				batch := randomBatch(r, m, slices.Max(lens), lens)
				if what == "packed" {
					batch.Labels = nil // unlabelled: the packed path
				}
				run := func() {
					var err error
					if what == "train" {
						m.Params.ZeroGrad()
						_, err = m.Backward(batch, 1)
					} else {
						_, _, err = m.Infer(batch)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				defer func(v bool) { fusedAttentionOff = v }(fusedAttentionOff)
				sideBySide(b, [2]string{"op", "fused"}, [2]func(){
					func() { fusedAttentionOff = true; run() },
					func() { fusedAttentionOff = false; run() },
				})
			})
		}
	}
}

// BenchmarkInferInt8 times inference with the encoder's dense layers in int8
// (Quantize) against float32, alternating in one run on one thread, as a served
// instance runs (ms per batch, speedup = float32 / int8), on batches of full-length
// sequences (no padding), the shapes scripts/bench-int8.sh gives PyTorch: one SMS-length
// text, a served batch and 32 x 128.
func BenchmarkInferInt8(b *testing.B) {
	for _, preset := range []string{"tiny", "base"} {
		for _, shape := range []struct{ n, len int }{{1, 25}, {16, 40}, {32, 128}} {
			b.Run(fmt.Sprintf("%s-%dx%d", preset, shape.n, shape.len), func(b *testing.B) {
				opts := Options{Task: Classify, NumLabels: 2}
				f32 := benchModelFor(b, preset, opts)
				i8 := benchModelFor(b, preset, opts)
				SetThreads(1)
				if err := i8.Quantize(); err != nil {
					b.Fatal(err)
				}
				// Served inputs are each new: a repeated one hid that libtorch 1.x's
				// onednn rebuilt its kernels for every new input range (bn_steady_linear).
				r := rand.New(rand.NewPCG(2, 2))
				batches := make([]*Batch, 64)
				for i := range batches {
					batches[i] = randomBatch(r, f32, shape.len, slices.Repeat([]int{shape.len}, shape.n))
					batches[i].Labels = nil
				}
				infer := func(m *Model) func() {
					i := 0
					return func() {
						i++
						if _, _, err := m.Infer(batches[i%len(batches)]); err != nil {
							b.Fatal(err)
						}
					}
				}
				sideBySide(b, [2]string{"float32", "int8"}, [2]func(){infer(f32), infer(i8)})
			})
		}
	}
}
