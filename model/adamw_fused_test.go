package model

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
)

// The fused kernel's lists cover the trainable prefix once: the decayed runs as they
// are, the gaps between them (biases, LayerNorm weights) as the rest.
func TestSplitDecay(t *testing.T) {
	for _, tc := range []struct {
		decay     [][2]int64
		end       int64
		want, not [][2]int64
	}{
		{nil, 10, nil, [][2]int64{{0, 10}}},
		{[][2]int64{{0, 10}}, 10, [][2]int64{{0, 10}}, nil},
		{[][2]int64{{2, 5}, {7, 9}}, 12, [][2]int64{{2, 5}, {7, 9}}, [][2]int64{{0, 2}, {5, 7}, {9, 12}}},
		{[][2]int64{{0, 4}, {6, 12}}, 12, [][2]int64{{0, 4}, {6, 12}}, [][2]int64{{4, 6}}},
		{nil, 0, nil, nil},
	} {
		got := splitDecay(tc.decay, tc.end)
		if !reflect.DeepEqual(got[0], tc.want) || !reflect.DeepEqual(got[1], tc.not) {
			t.Errorf("splitDecay(%v, %d) = %v, %v; want %v, %v", tc.decay, tc.end, got[0], got[1], tc.want, tc.not)
		}
	}
	// A real model's layout: the runs tile [0, TrainEnd) in order.
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 3}, 7)
	runs := splitDecay(m.Params.Decay, m.Params.TrainEnd)
	if len(runs[0]) == 0 || len(runs[1]) == 0 {
		t.Fatalf("BERT has decayed and undecayed parameters; got %d and %d runs", len(runs[0]), len(runs[1]))
	}
	all := append(append([][2]int64{}, runs[0]...), runs[1]...)
	covered := make([]int, m.Params.TrainEnd)
	for _, r := range all {
		for i := r[0]; i < r[1]; i++ {
			covered[i]++
		}
	}
	for i, c := range covered {
		if c != 1 {
			t.Fatalf("position %d is in %d runs", i, c)
		}
	}
}

// AdamW's fused kernel steps as the op-by-op update does, up to float rounding, weight
// decay on the decayed runs alone included: on CUDA (libtorch 2.0 on), where Update
// takes it, and on the CPU where libtorch has the kernel there too (2.4 on), which
// checks the call into it on a machine without a GPU. Update itself runs on the CPU in
// Go (adamw_cpu.go), so the test calls the two GPU paths directly.
func TestFusedAdamW(t *testing.T) {
	if LibtorchVersion() < 200 {
		t.Skipf("libtorch %s has no fused AdamW kernel (2.0 and later do; scripts/gpu-check.sh and scripts/libtorch2-check.sh run this)", libtorchName())
	}
	var devs []gotch.Device
	if LibtorchVersion() >= 204 {
		devs = append(devs, gotch.CPU)
	}
	if cuda.IsAvailable() {
		devs = append(devs, gotch.CudaBuilder(0))
	}
	if len(devs) == 0 {
		t.Skipf("libtorch %s has the fused kernel for CUDA alone, and there is no CUDA device", libtorchName())
	}
	for _, dev := range devs {
		name := "cpu"
		if dev.IsCuda() {
			name = "cuda"
		}
		t.Run(name, func(t *testing.T) { testFusedAdamW(t, dev) })
	}
}

func testFusedAdamW(t *testing.T, dev gotch.Device) {
	lockThread(t)
	// The embeddings frozen: a frozen tail past TrainEnd that the kernel must not touch.
	o := Options{Task: Classify, NumLabels: 3, Device: dev, Freeze: Freeze{Embeddings: true}}
	m := newModel(t, smallConfig(0), o, 7)
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 16, []int{16, 9, 3})
	m.Params.ZeroGrad()
	if _, err := m.Backward(b, 1); err != nil { // one gradient for every step
		t.Fatal(err)
	}
	ps := m.Params
	w0 := make([]float32, ps.Total)
	readFloats(ps.Flat, w0)
	steps := func(fused bool) (w []float32, st State) {
		writeFloats(ps.Flat, w0)
		opt := NewAdamW(ps, 0.1)
		for range 3 {
			opt.Step++
			if fused {
				opt.updateFused(1e-2)
			} else {
				opt.updateTorch(1e-2)
			}
		}
		w = make([]float32, ps.Total)
		readFloats(ps.Flat, w)
		return w, opt.State()
	}
	wf, sf := steps(true)
	wt, st := steps(false)
	for _, c := range []struct {
		what string
		a, b []float32
	}{{"weight", wf, wt}, {"first moment", sf.M, st.M}, {"second moment", sf.V, st.V}} {
		for i := range c.b {
			if d := math.Abs(float64(c.a[i] - c.b[i])); d > 1e-6*(1+math.Abs(float64(c.b[i]))) {
				t.Fatalf("%s %d: fused %v, op by op %v", c.what, i, c.a[i], c.b[i])
			}
		}
	}
	moved := 0
	for i := range wf[:ps.TrainEnd] {
		if wf[i] != w0[i] {
			moved++
		}
	}
	if moved < int(ps.TrainEnd)/2 {
		t.Fatalf("only %d of %d weights moved", moved, ps.TrainEnd)
	}
	if ps.TrainEnd == ps.Total {
		t.Fatal("nothing frozen")
	}
	if !slices.Equal(wf[ps.TrainEnd:], w0[ps.TrainEnd:]) {
		t.Fatal("the fused kernel changed weights past the trainable prefix")
	}
}
