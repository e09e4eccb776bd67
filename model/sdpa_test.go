package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
)

// The fused ops follow the libtorch: scaled_dot_product_attention and the fused AdamW
// kernel came with torch 2.0, and the probe finds the one exactly where they exist
// (Debian 12's 1.13 here; Debian 13's 2.6 in scripts/libtorch2-check.sh; the GPU
// machine's wheel in scripts/gpu-check.sh).
func TestFusedOpsFollowTheLibtorch(t *testing.T) {
	v := LibtorchVersion()
	if v < 100 || v >= 1000 {
		t.Fatalf("libtorch version %d: want major*100 + minor", v)
	}
	if got, want := probeSDPA(), v >= 200; got != want {
		t.Errorf("libtorch %s: scaled_dot_product_attention found %v, want %v", libtorchName(), got, want)
	}
	if got, want := fusedAdamW(), v >= 200; got != want {
		t.Errorf("libtorch %s: fused AdamW %v, want %v", libtorchName(), got, want)
	}
}

func libtorchName() string { return fmt.Sprintf("%d.%d", LibtorchVersion()/100, LibtorchVersion()%100) }

// The fused attention gives the op-by-op attention's logits, loss and gradient, padded
// and packed (inference without padding), on the CPU and on CUDA where there is one.
// It needs libtorch 2.0 or later: scripts/libtorch2-check.sh runs it on the CPU,
// scripts/gpu-check.sh on the GPU machine.
func TestFusedAttention(t *testing.T) {
	if !probeSDPA() {
		t.Skipf("libtorch %s has no scaled_dot_product_attention (2.0 and later do; scripts/libtorch2-check.sh runs this)", libtorchName())
	}
	defer SetTF32(TF32())
	SetTF32(false) // the op-by-op path's matmuls in full float32, as the fused kernels compute
	devs := []gotch.Device{gotch.CPU}
	if cuda.IsAvailable() {
		devs = append(devs, gotch.CudaBuilder(0))
	}
	for _, dev := range devs {
		for _, tc := range taskCases {
			name := "cpu/" + tc.name
			if dev.IsCuda() {
				name = "cuda/" + tc.name
			}
			t.Run(name, func(t *testing.T) {
				lockThread(t)
				o := tc.opts
				o.Device = dev
				m := newModel(t, smallConfig(0), o, 7)
				b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 16, []int{16, 9, 3})
				unlabelled := *b // no labels: every head takes the packed path
				unlabelled.Labels, unlabelled.Targets = nil, nil
				type result struct {
					logits, packed, grad []float32
					loss, trainLoss      float64
				}
				run := func(off bool) (r result) {
					defer func(v bool) { fusedAttentionOff = v }(fusedAttentionOff)
					fusedAttentionOff = off
					var err error
					if r.logits, r.loss, err = m.Infer(b); err != nil {
						t.Fatal(err)
					}
					if r.packed, _, err = m.Infer(&unlabelled); err != nil {
						t.Fatal(err)
					}
					m.Params.ZeroGrad()
					if r.trainLoss, err = m.Backward(b, 1); err != nil { // dropout 0: no noise
						t.Fatal(err)
					}
					r.grad = slices.Clone(m.Params.HostGrad())
					return r
				}
				fused, plain := run(false), run(true)
				near := func(what string, a, b []float32, tol float64) {
					t.Helper()
					if len(a) != len(b) {
						t.Fatalf("%s: %d values fused, %d op by op", what, len(a), len(b))
					}
					for i := range a {
						if d := math.Abs(float64(a[i] - b[i])); d > tol*(1+math.Abs(float64(b[i]))) {
							t.Fatalf("%s %d: fused %v, op by op %v", what, i, a[i], b[i])
						}
					}
				}
				near("logit", fused.logits, plain.logits, 1e-5)
				near("packed logit", fused.packed, plain.packed, 1e-5)
				near("gradient", fused.grad, plain.grad, 1e-4)
				for _, l := range [][2]float64{{fused.loss, plain.loss}, {fused.trainLoss, plain.trainLoss}} {
					if math.Abs(l[0]-l[1]) > 1e-5*(1+math.Abs(l[1])) {
						t.Fatalf("loss: fused %v, op by op %v", l[0], l[1])
					}
				}
			})
		}
	}
}

// On CUDA dropout draws from the device's generator (inside the fused attention op
// where libtorch has it): restoring the generator's state repeats a training forward's
// loss, so a resumed job replays its steps.
func TestCUDADropoutReplays(t *testing.T) {
	dev := needCUDA(t)
	lockThread(t)
	m := newModel(t, smallConfig(0.3), Options{Task: Classify, NumLabels: 3, Device: dev}, 7)
	b := randomBatch(rand.New(rand.NewPCG(1, 2)), m, 16, []int{16, 9, 3})
	state, err := RNGState(dev)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		m.Params.ZeroGrad()
		l, err := m.Backward(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	first, second := loss(), loss()
	if err := SetRNGState(dev, state); err != nil {
		t.Fatal(err)
	}
	if again := loss(); again != first {
		t.Fatalf("loss after restoring the generator %v, first time %v", again, first)
	}
	if second == first {
		t.Fatalf("two forwards with dropout 0.3 gave the same loss %v: no noise drawn", first)
	}
}
