package model

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
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

// On CUDA with libtorch 2.x, AdamW's fused kernel steps as the op-by-op update does, up
// to float rounding, weight decay on the decayed runs alone included.
func TestCUDAFusedAdamW(t *testing.T) {
	dev := needCUDA(t)
	if LibtorchVersion() < 200 {
		t.Skipf("libtorch %s has no fused AdamW kernel", libtorchName())
	}
	lockThread(t)
	m := newModel(t, smallConfig(0), Options{Task: Classify, NumLabels: 3, Device: dev}, 7)
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 16, []int{16, 9, 3})
	m.Params.ZeroGrad()
	if _, err := m.Backward(b, 1); err != nil { // one gradient for every step
		t.Fatal(err)
	}
	ps := m.Params
	w0 := make([]float32, ps.Total)
	readFloats(ps.Flat, w0)
	steps := func(off bool) (w []float32, st State) {
		defer func(v bool) { fusedAdamWOff = v }(fusedAdamWOff)
		fusedAdamWOff = off
		writeFloats(ps.Flat, w0)
		opt := NewAdamW(ps, 0.1)
		for range 3 {
			opt.Update(1e-2)
		}
		w = make([]float32, ps.Total)
		readFloats(ps.Flat, w)
		return w, opt.State()
	}
	wf, sf := steps(false)
	wt, st := steps(true)
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
	if sf.Step != 3 {
		t.Fatalf("step %d after 3 updates", sf.Step)
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
}
