package model

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
)

// testParams are a weight, a bias, a LayerNorm weight and a frozen weight.
func testParams(t *testing.T) *Params {
	t.Helper()
	ManualSeed(1)
	ps := newParams(gotch.CPU)
	ps.add("dense.bias", []int64{2}, InitZeros)
	ps.add("dense.weight", []int64{2, 3}, InitNormal)
	ps.add("norm.weight", []int64{2}, InitOnes)
	ps.add("frozen.weight", []int64{3}, InitNormal).Trainable = false
	ps.build(0.5)
	keepAlive(t, ps)
	var order []string
	for _, p := range ps.List() {
		order = append(order, p.Name)
	}
	if got := strings.Join(order, " "); got != "norm.weight dense.weight dense.bias frozen.weight" ||
		fmt.Sprint(ps.Decay) != "[[2 8]]" || ps.TrainEnd != 10 || ps.Total != 13 {
		t.Fatalf("layout %s, Decay %v, TrainEnd %d, Total %d", got, ps.Decay, ps.TrainEnd, ps.Total)
	}
	return ps
}

// closeRel compares relative to |want|, or to 0.01 (the size of one update) for values
// that updates have cancelled down to near zero.
func closeRel(got float32, want, rel float64) bool {
	return math.Abs(float64(got)-want) <= rel*max(math.Abs(want), 0.01)
}

// Three AdamW steps agree with torch.optim.AdamW's update computed by hand in float64:
// decoupled weight decay on weights only, bias-corrected moments, eps outside the root;
// with torch's betas and eps, and with those OptimizerOptions set (RoBERTa's recipe).
func TestAdamWMatchesReference(t *testing.T) {
	for _, c := range []struct{ b1, b2, eps float64 }{{0, 0, 0}, {0.8, 0.98, 1e-6}} {
		t.Run(fmt.Sprintf("betas %v %v eps %v", c.b1, c.b2, c.eps), func(t *testing.T) {
			testAdamWMatchesReference(t, c.b1, c.b2, c.eps)
		})
	}
}

func testAdamWMatchesReference(t *testing.T, b1, b2, eps float64) {
	lockThread(t)
	ps := testParams(t)
	const wd = 0.1
	o, err := NewOptimizer(ps, OptimizerOptions{Name: "adamw", WeightDecay: wd, Beta1: b1, Beta2: b2, Eps: eps})
	if err != nil {
		t.Fatal(err)
	}
	opt := o.(*AdamW)
	if b1 == 0 { // torch's defaults
		b1, b2, eps = 0.9, 0.999, 1e-8
	}
	n := int(ps.TrainEnd)
	w := make([]float64, ps.Total)
	for i, v := range ps.FlatSlice() {
		w[i] = float64(v)
	}
	frozen := flatCopy(&Model{Params: ps})[n:]
	m, v := make([]float64, n), make([]float64, n)
	grads := [][]float32{
		{0.5, -1, 2, 1e-9, -0.25, 3, 0.1, -0.1, 4, -2},
		{-0.5, 1, 2, 1e-9, 0.75, -3, 0.2, 0.3, 0, 1},
		{0.1, 0.1, -2, -1e-9, 0.5, 2, -0.1, 0.05, -4, 1},
	}
	lrs := []float64{1e-2, 5e-3, 2e-2}
	for s, g := range grads {
		copy(ps.GradSlice(), g)
		opt.Update(lrs[s])
		step := float64(s + 1)
		for i := range n {
			if decays(ps, i) {
				w[i] *= 1 - lrs[s]*wd
			}
			gi := float64(g[i])
			m[i] = b1*m[i] + (1-b1)*gi
			v[i] = b2*v[i] + (1-b2)*gi*gi
			denom := math.Sqrt(v[i])/math.Sqrt(1-math.Pow(b2, step)) + eps
			w[i] -= lrs[s] / (1 - math.Pow(b1, step)) * m[i] / denom
		}
		for i, got := range ps.FlatSlice()[:n] {
			if !closeRel(got, w[i], 1e-6) {
				t.Fatalf("step %d, value %d: %.9g, reference %.9g", s+1, i, got, w[i])
			}
		}
	}
	if i := firstDiff(ps.FlatSlice()[n:], frozen); i >= 0 {
		t.Fatalf("frozen value %d moved", i)
	}
	st := opt.State()
	if st.Step != 3 || opt.Step != 3 {
		t.Fatalf("step %d/%d, want 3", st.Step, opt.Step)
	}
	for i := range n {
		if !closeRel(st.M[i], m[i], 1e-6) || !closeRel(st.V[i], v[i], 1e-6) {
			t.Fatalf("moments %d: %g %g, reference %g %g", i, st.M[i], st.V[i], m[i], v[i])
		}
	}
	if err := opt.SetState(State{Step: 1, M: st.M[:n-1], V: st.V}); err == nil {
		t.Fatal("SetState took moments of the wrong length")
	}
}

// ClipGradNorm measures and scales the trainable gradient as torch's clip_grad_norm_:
// coefficient max/(norm+1e-6), applied only when below 1.
func TestClipGradNorm(t *testing.T) {
	lockThread(t)
	ps := testParams(t)
	g := []float32{0.5, -1, 2, 1e-9, -0.25, 3, 0.1, -0.1, 4, -2}
	var sum float64
	for _, x := range g {
		sum += float64(x) * float64(x)
	}
	norm := math.Sqrt(sum)
	for _, maxNorm := range []float64{0, 10, norm / 4} {
		copy(ps.GradSlice(), g)
		got := ps.ClipGradNorm(maxNorm)
		if math.Abs(got-norm) > 1e-6*norm {
			t.Fatalf("max %g: norm %g, want %g", maxNorm, got, norm)
		}
		coef := maxNorm / (norm + 1e-6)
		for i, x := range ps.GradSlice() {
			if maxNorm == 0 || coef >= 1 {
				if x != g[i] {
					t.Fatalf("max %g: gradient %d changed from %g to %g", maxNorm, i, g[i], x)
				}
			} else if want := float64(g[i]) * coef; math.Abs(float64(x)-want) > 1e-6*math.Abs(want) {
				t.Fatalf("max %g: gradient %d is %g, want %g", maxNorm, i, x, want)
			}
		}
	}
}

// Optimizer state saved in the layout before backward order (decayed weights, then the
// rest, each sorted by name) moves to each parameter's place in this one.
func TestFromLegacyLayout(t *testing.T) {
	lockThread(t)
	ps := testParams(t)
	// legacy: dense.weight 0-5, dense.bias 6-7, norm.weight 8-9
	buf := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if err := ps.FromLegacyLayout(buf); err != nil {
		t.Fatal(err)
	}
	// now: norm.weight, dense.weight, dense.bias
	if want := []float32{8, 9, 0, 1, 2, 3, 4, 5, 6, 7}; firstDiff(buf, want) >= 0 {
		t.Fatalf("moved to %v, want %v", buf, want)
	}
	if err := ps.FromLegacyLayout(buf[:9]); err == nil || !strings.Contains(err.Error(), "10 trainable") {
		t.Fatalf("a buffer of 9: %v", err)
	}
}
