package model

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
)

// twoLayerParams are two weights (the second all zeros, so its first trust ratio has
// ‖w‖ = 0), a bias between them in the buffer (two decayed runs), a LayerNorm weight and
// a frozen weight.
func twoLayerParams(t *testing.T) *Params {
	t.Helper()
	ManualSeed(3)
	ps := newParams(gotch.CPU)
	ps.add("a.weight", []int64{2, 3}, InitNormal)
	ps.add("dense.bias", []int64{2}, InitZeros)
	ps.add("b.weight", []int64{4}, InitZeros).Decay = true
	ps.add("norm.weight", []int64{2}, InitOnes)
	ps.add("frozen.weight", []int64{3}, InitNormal).Trainable = false
	ps.build(0.5)
	keepAlive(t, ps)
	if fmt.Sprint(ps.Decay) != "[[2 6] [8 14]]" || ps.TrainEnd != 14 || ps.Total != 17 || ps.Get("b.weight").Offset != 2 {
		t.Fatalf("layout: Decay %v, TrainEnd %d, Total %d", ps.Decay, ps.TrainEnd, ps.Total)
	}
	return ps
}

// optGrads are three steps' gradients over twoLayerParams' 14 trainable values, with
// their learning rates.
var (
	optGrads = [][]float32{
		{0.5, -1, 2, 1e-9, -0.25, 3, 0.1, -0.1, 4, -2, 0.3, -0.7, 1, 0.2},
		{-0.5, 1, 2, 1e-9, 0.75, -3, 0.2, 0.3, 0, 1, -0.3, 0.1, 0.5, -1},
		{0.1, 0.1, -2, -1e-9, 0.5, 2, -0.1, 0.05, -4, 1, 0.2, 0.2, -0.5, 0.4},
	}
	optLRs = []float64{1e-2, 5e-3, 2e-2}
)

// checkSteps runs optGrads through opt and, after each step, compares the trainable
// weights with ref's float64 ones (ref takes the step number from 1, the learning rate,
// the gradient and the weights to update in place). Frozen weights must not move.
func checkSteps(t *testing.T, ps *Params, opt Optimizer, rel float64, ref func(step int, lr float64, g []float64, w []float64)) {
	t.Helper()
	n := int(ps.TrainEnd)
	w := make([]float64, n)
	for i, v := range ps.FlatSlice()[:n] {
		w[i] = float64(v)
	}
	frozen := slices.Clone(ps.FlatSlice()[n:])
	for s, g := range optGrads {
		copy(ps.GradSlice(), g)
		opt.Update(optLRs[s])
		g64 := make([]float64, n)
		for i, x := range g {
			g64[i] = float64(x)
		}
		ref(s+1, optLRs[s], g64, w)
		for i, got := range ps.FlatSlice()[:n] {
			if !closeRel(got, w[i], rel) {
				t.Fatalf("step %d, value %d: %.9g, reference %.9g", s+1, i, got, w[i])
			}
		}
	}
	if i := firstDiff(ps.FlatSlice()[n:], frozen); i >= 0 {
		t.Fatalf("frozen value %d moved", i)
	}
	if g := ps.GradSlice(); firstDiff(g, optGrads[len(optGrads)-1]) >= 0 {
		t.Fatal("the optimizer changed the gradient")
	}
}

// SGD's steps agree with torch.optim.SGD's (dampening 0) computed by hand in float64:
// plain, with momentum, and with Nesterov momentum; L2 weight decay on weights only.
func TestSGDMatchesReference(t *testing.T) {
	lockThread(t)
	const wd = 0.1
	for _, c := range []struct {
		name     string
		mu       float64
		nesterov bool
	}{{"plain", 0, false}, {"momentum", 0.9, false}, {"nesterov", 0.9, true}} {
		t.Run(c.name, func(t *testing.T) {
			lockThread(t)
			ps := twoLayerParams(t)
			opt, err := NewSGD(ps, c.mu, c.nesterov, wd)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]float64, ps.TrainEnd)
			checkSteps(t, ps, opt, 1e-6, func(_ int, lr float64, g, w []float64) {
				for i := range w {
					d := g[i]
					if decays(ps, i) {
						d += wd * w[i]
					}
					if c.mu == 0 {
						w[i] -= lr * d
						continue
					}
					buf[i] = c.mu*buf[i] + d
					if c.nesterov {
						w[i] -= lr * (d + c.mu*buf[i])
					} else {
						w[i] -= lr * buf[i]
					}
				}
			})
			st := opt.Export()
			if c.mu == 0 {
				if len(st.Bufs) != 0 || st.Step != 3 {
					t.Fatalf("plain SGD exported %d buffers at step %d", len(st.Bufs), st.Step)
				}
				return
			}
			if !slices.Equal(st.Names, []string{"momentum_buffer"}) || st.Step != 3 {
				t.Fatalf("state %q at step %d", st.Names, st.Step)
			}
			for i, b := range buf {
				if !closeRel(st.Bufs[0][i], b, 1e-6) {
					t.Fatalf("momentum %d: %g, reference %g", i, st.Bufs[0][i], b)
				}
			}
		})
	}
	ps := twoLayerParams(t)
	if _, err := NewSGD(ps, 0, true, 0); err == nil || !strings.Contains(err.Error(), "Nesterov") {
		t.Fatalf("Nesterov without momentum: %v", err)
	}
	if _, err := NewSGD(ps, 1, false, 0); err == nil || !strings.Contains(err.Error(), "momentum") {
		t.Fatalf("momentum 1: %v", err)
	}
}

// LAMB's steps agree with the paper's update (apex's FusedLAMB defaults) computed by
// hand in float64: Adam's bias-corrected direction plus decoupled weight decay, scaled
// for each weight tensor by ‖w‖/‖u‖ over its own slice, 1 where a norm is zero (b.weight
// starts at zero), and unscaled for the bias and the LayerNorm weight.
func TestLAMBMatchesReference(t *testing.T) {
	for _, c := range []struct{ b1, b2, eps float64 }{{0, 0, 0}, {0.8, 0.98, 1e-4}} {
		t.Run(fmt.Sprintf("betas %v %v eps %v", c.b1, c.b2, c.eps), func(t *testing.T) {
			testLAMBMatchesReference(t, c.b1, c.b2, c.eps)
		})
	}
}

func testLAMBMatchesReference(t *testing.T, b1, b2, eps float64) {
	lockThread(t)
	const wd = 0.1
	ps := twoLayerParams(t)
	o, err := NewOptimizer(ps, OptimizerOptions{Name: "lamb", WeightDecay: wd, Beta1: b1, Beta2: b2, Eps: eps})
	if err != nil {
		t.Fatal(err)
	}
	opt := o.(*LAMB)
	if b1 == 0 { // torch-optimizer's defaults
		b1, b2, eps = 0.9, 0.999, 1e-6
	}
	n := int(ps.TrainEnd)
	m, v := make([]float64, n), make([]float64, n)
	layers := [][2]int{{2, 6}, {8, 14}}
	var ratios []float64
	checkSteps(t, ps, opt, 1e-5, func(step int, lr float64, g, w []float64) {
		u := make([]float64, n)
		bc1, bc2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
		for i := range n {
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			u[i] = (m[i] / bc1) / (math.Sqrt(v[i]/bc2) + eps)
			if decays(ps, i) {
				u[i] += wd * w[i]
			}
		}
		for _, l := range layers {
			var ws, us float64
			for i := l[0]; i < l[1]; i++ {
				ws += w[i] * w[i]
				us += u[i] * u[i]
			}
			r := 1.0
			if ws > 0 && us > 0 {
				r = math.Sqrt(ws) / math.Sqrt(us)
			}
			ratios = append(ratios, r)
			for i := l[0]; i < l[1]; i++ {
				u[i] *= r
			}
		}
		for i := range n {
			w[i] -= lr * u[i]
		}
	})
	// The reference must have exercised both branches of the ratio.
	if ratios[0] != 1 || ratios[1] == 1 || ratios[2] == 1 {
		t.Fatalf("trust ratios %v: want b.weight's first to be 1 and the others not", ratios)
	}
	st := opt.Export()
	if !slices.Equal(st.Names, []string{"exp_avg", "exp_avg_sq"}) || st.Step != 3 {
		t.Fatalf("state %q at step %d", st.Names, st.Step)
	}
	for i := range n {
		if !closeRel(st.Bufs[0][i], m[i], 1e-6) || !closeRel(st.Bufs[1][i], v[i], 1e-6) {
			t.Fatalf("moments %d: %g %g, reference %g %g", i, st.Bufs[0][i], st.Bufs[1][i], m[i], v[i])
		}
	}
}

// A snapshot of the wrong optimizer, or of another model's size, is refused with the
// buffers' names.
func TestOptimizerImportChecksTheState(t *testing.T) {
	lockThread(t)
	ps := twoLayerParams(t)
	sgd, _ := NewSGD(ps, 0.9, false, 0)
	lamb := NewLAMB(ps, 0)
	if err := sgd.Import(lamb.Export()); err == nil || !strings.Contains(err.Error(), "momentum_buffer") {
		t.Fatalf("sgd took lamb's state: %v", err)
	}
	st := lamb.Export()
	st.Bufs[1] = st.Bufs[1][1:]
	if err := lamb.Import(st); err == nil || !strings.Contains(err.Error(), "exp_avg_sq has 13 values") {
		t.Fatalf("lamb took a short buffer: %v", err)
	}
	if err := NewAdamW(ps, 0).Import(sgd.Export()); err == nil || !strings.Contains(err.Error(), "exp_avg") {
		t.Fatalf("adamw took sgd's state: %v", err)
	}
	if _, err := NewOptimizer(ps, OptimizerOptions{Name: "adam"}); err == nil || !strings.Contains(err.Error(), "adamw, sgd, lamb") {
		t.Fatalf("unknown optimizer: %v", err)
	}
}
