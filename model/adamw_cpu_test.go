package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"
)

// fusedParams spans several work chunks, with the end of the decayed weights inside
// one of them, and a frozen parameter after the trainable ones.
func fusedParams(t *testing.T) *Params {
	t.Helper()
	ManualSeed(3)
	ps := newParams(gotch.CPU)
	ps.add("dense.weight", []int64{300, 701}, InitNormal)
	ps.add("dense.bias", []int64{701}, InitZeros)
	ps.add("norm.weight", []int64{5000}, InitOnes)
	ps.add("frozen.weight", []int64{999}, InitNormal).Trainable = false
	ps.build(0.02)
	if ps.DecayEnd%chunkLen == 0 || ps.TrainEnd < 3*chunkLen {
		t.Fatalf("layout DecayEnd %d, TrainEnd %d does not exercise the chunking", ps.DecayEnd, ps.TrainEnd)
	}
	return ps
}

// ulps is how many float32 steps apart a and b are (0 when equal, including ±0).
func ulps(a, b float32) int64 {
	ord := func(x float32) int64 {
		i := int64(int32(math.Float32bits(x)))
		if i < 0 {
			i = math.MinInt32 - i
		}
		return i
	}
	d := ord(a) - ord(b)
	return max(d, -d)
}

// The fused CPU pass (Update, ClipGradNorm) follows the libtorch op sequence it
// replaces, kept for GPUs, to float rounding over 200 steps of clipped AdamW with
// changing learning rates and gradients of every scale (zeros and denormal-sized ones
// included): given the same gradient, the weights and moments stay within a few units
// in the last place of libtorch's, and the frozen weights do not move. The gradient
// norm is the float64 one (libtorch's, summed in float32, is within 1e-5 of it) and
// does not depend on the thread count.
func TestFusedAdamWMatchesLibtorch(t *testing.T) {
	lockThread(t)
	SetThreads(2)
	fused, ref := fusedParams(t), fusedParams(t)
	if i := firstDiff(fused.FlatSlice(), ref.FlatSlice()); i >= 0 {
		t.Fatalf("the two models start apart at %d", i)
	}
	frozen := append([]float32(nil), fused.FlatSlice()[fused.TrainEnd:]...)
	const wd = 0.01
	of, or := NewAdamW(fused, wd), NewAdamW(ref, wd)
	r := rand.New(rand.NewPCG(5, 5))
	n := int(fused.TrainEnd)
	grad := make([]float32, n)
	var worstP, worstM, worstV int64
	for step := 1; step <= 200; step++ {
		s := math.Pow(10, float64(r.IntN(9)-6)) // 1e-6 .. 1e2
		for i := range grad {
			switch r.IntN(50) {
			case 0:
				grad[i] = 0
			case 1:
				grad[i] = float32(r.NormFloat64() * 1e-38)
			default:
				grad[i] = float32(r.NormFloat64() * s)
			}
		}
		copy(fused.GradSlice(), grad)
		copy(ref.GradSlice(), grad)
		maxNorm := []float64{0, 1, 1e3}[step%3]
		var exact float64
		for _, g := range grad {
			exact += float64(g) * float64(g)
		}
		exact = math.Sqrt(exact)
		nf, nr := fused.ClipGradNorm(maxNorm), ref.clipGradNormTorch(maxNorm)
		if math.Abs(nf-exact) > 1e-12*exact || math.Abs(nr-exact) > 1e-5*exact {
			t.Fatalf("step %d: gradient norm %.12g, libtorch's %.12g, in float64 %.12g", step, nf, nr, exact)
		}
		gf, gr := fused.GradSlice(), ref.GradSlice()
		if maxNorm == 0 {
			if n1, n3 := norm2(gf, 1), norm2(gf, 3); n1 != nf || n3 != nf {
				t.Fatalf("step %d: the norm on 1, 2 and 3 threads: %v, %v, %v", step, n1, nf, n3)
			}
		}
		for i, g := range gf {
			if w := gr[i]; math.Abs(float64(g-w)) > max(1e-5*math.Abs(float64(w)), 1e-43) { // denormals have few digits
				t.Fatalf("step %d: clipped gradient %d is %g, libtorch's %g", step, i, g, ref.GradSlice()[i])
			}
		}
		copy(gr, gf) // the optimizers see the same gradient
		lr := 1e-3 * (1 + math.Sin(float64(step)))
		of.Update(lr)
		or.Step++
		or.updateTorch(lr)
		sf, sr := of.State(), or.State()
		pf, pr := fused.FlatSlice(), ref.FlatSlice()
		for i := range n {
			worstP = max(worstP, ulps(pf[i], pr[i]))
			worstM = max(worstM, ulps(sf.M[i], sr.M[i]))
			worstV = max(worstV, ulps(sf.V[i], sr.V[i]))
		}
		if worstP > 4 || worstM > 4 || worstV > 4 {
			t.Fatalf("step %d: weights, first and second moments up to %d, %d, %d ulps from libtorch's", step, worstP, worstM, worstV)
		}
	}
	if i := firstDiff(fused.FlatSlice()[n:], frozen); i >= 0 {
		t.Fatalf("frozen value %d moved", i)
	}
	t.Logf("after 200 steps: weights, first and second moments at most %d, %d, %d ulps from libtorch's", worstP, worstM, worstV)
}
