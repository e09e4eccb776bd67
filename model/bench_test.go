package model

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/bertnode/bertnode/hf"
)

// BenchmarkTrainStep is one training step of a preset (batch 8 of 128 tokens, 2 threads):
// forward, backward into the flat gradient, clipping and AdamW. base takes seconds a
// step here, so b.Loop runs it once; plain go test never runs benchmarks.
func BenchmarkTrainStep(b *testing.B) {
	for _, preset := range []string{"tiny", "mini", "base"} {
		b.Run(preset, func(b *testing.B) {
			lockThread(b)
			SetThreads(2)
			cfg, err := hf.Preset(preset)
			if err != nil {
				b.Fatal(err)
			}
			m := newModel(b, cfg, Options{Task: Classify, NumLabels: 2}, 1)
			lens := make([]int, 8)
			for i := range lens {
				lens[i] = 128
			}
			batch := randomBatch(rand.New(rand.NewPCG(1, 1)), m, 128, lens)
			opt := NewAdamW(m.Params, 0.01)
			b.ReportAllocs()
			for b.Loop() {
				trainStep(b, m, opt, batch, 1e-4)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
		})
	}
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
