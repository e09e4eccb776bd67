package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"
)

// fusedParams spans several work chunks, with two runs of decayed weights whose edges
// fall inside chunks, and a frozen parameter after the trainable ones.
func fusedParams(t *testing.T) *Params {
	t.Helper()
	ManualSeed(3)
	ps := newParams(gotch.CPU)
	ps.add("dense.weight", []int64{300, 701}, InitNormal)
	ps.add("dense.bias", []int64{701}, InitZeros)
	ps.add("norm.weight", []int64{5000}, InitOnes)
	ps.add("dense2.weight", []int64{100, 701}, InitNormal)
	ps.add("frozen.weight", []int64{999}, InitNormal).Trainable = false
	ps.build(0.02)
	keepAlive(t, ps)
	if len(ps.Decay) != 2 || ps.Decay[0][1]/chunkLen != ps.Decay[1][0]/chunkLen || ps.Decay[0][1]%chunkLen == 0 || ps.TrainEnd < 3*chunkLen {
		t.Fatalf("layout Decay %v, TrainEnd %d does not exercise the chunking", ps.Decay, ps.TrainEnd)
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
// does not depend on the thread count. ClipAndUpdate is ClipGradNorm and Update bit
// for bit, and leaves the gradient as it was.
func TestFusedAdamWMatchesLibtorch(t *testing.T) {
	lockThread(t)
	SetThreads(2)
	fused, ref, one := fusedParams(t), fusedParams(t), fusedParams(t)
	if i := firstDiff(fused.FlatSlice(), ref.FlatSlice()); i >= 0 {
		t.Fatalf("the two models start apart at %d", i)
	}
	frozen := append([]float32(nil), fused.FlatSlice()[fused.TrainEnd:]...)
	const wd = 0.01
	of, or, oo := NewAdamW(fused, wd), NewAdamW(ref, wd), NewAdamW(one, wd)
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
		copy(one.GradSlice(), grad)
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
		if no := oo.ClipAndUpdate(lr, maxNorm); no != nf {
			t.Fatalf("step %d: ClipAndUpdate's norm %v, ClipGradNorm's %v", step, no, nf)
		}
		if i := firstDiff(one.GradSlice(), grad); i >= 0 {
			t.Fatalf("step %d: ClipAndUpdate changed gradient %d", step, i)
		}
		if i := firstDiff(one.FlatSlice(), fused.FlatSlice()); i >= 0 {
			t.Fatalf("step %d: ClipAndUpdate's weight %d is %g, ClipGradNorm and Update's %g", step, i, one.FlatSlice()[i], fused.FlatSlice()[i])
		}
		sf, sr, so := of.State(), or.State(), oo.State()
		if i, j := firstDiff(so.M, sf.M), firstDiff(so.V, sf.V); i >= 0 || j >= 0 || so.Step != sf.Step {
			t.Fatalf("step %d: ClipAndUpdate's moments differ at %d, %d (step %d, %d)", step, i, j, so.Step, sf.Step)
		}
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

// The AVX2 loop computes what the scalar one does: bit for bit, except where the
// scalar lerp's float64 rounding differs from a fused multiply-add (one value in
// hundreds of millions, and then by one unit in the last place).
func TestAdamWVectorMatchesScalar(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2 with FMA: only the scalar loop runs")
	}
	r := rand.New(rand.NewPCG(7, 7))
	value := func(s float64) float32 {
		switch r.IntN(40) {
		case 0:
			return 0
		case 1:
			return float32(r.NormFloat64() * 1e-39)
		}
		return float32(r.NormFloat64() * s)
	}
	const n = 1003 // the vector loop takes 1000, the scalar one the rest
	differ := 0
	for round := range 200 {
		k := adamwKernel{
			clip: []float32{1, float32(r.Float64())}[round%2], decay: 1 - float32(r.Float64())*1e-3,
			w1: 0.1, b2: 0.999, w2: 1 - 0.999, bc2: float32(math.Sqrt(1 - math.Pow(0.999, float64(round+1)))),
			eps: 1e-8, stepSz: -float32(r.Float64()) * 1e-2,
		}
		var in [4][]float32 // p, g, m, v
		for i, s := range []float64{0.05, math.Pow(10, float64(r.IntN(8)-5)), 1e-3, 1e-6} {
			in[i] = make([]float32, n)
			for j := range in[i] {
				in[i][j] = value(s)
			}
		}
		in[3] = slicesAbs(in[3])
		vec, sc := cloneAll(in), cloneAll(in)
		d := []float32{1, k.decay}[round%2]
		if got := k.vector(vec[0], vec[1], vec[2], vec[3], d); got != n&^7 {
			t.Fatalf("the vector loop took %d of %d values", got, n)
		}
		k.scalar(vec[0][n&^7:], vec[1][n&^7:], vec[2][n&^7:], vec[3][n&^7:], d)
		k.scalar(sc[0], sc[1], sc[2], sc[3], d)
		for b, name := range []string{"weight", "gradient", "first moment", "second moment"} {
			for j := range n {
				if u := ulps(vec[b][j], sc[b][j]); u > 1 || b == 1 && u != 0 {
					t.Fatalf("round %d: %s %d is %g in the vector loop, %g in the scalar one", round, name, j, vec[b][j], sc[b][j])
				} else if u != 0 {
					differ++
				}
			}
		}
	}
	if differ > 10 {
		t.Fatalf("%d of %d values differ by a unit in the last place", differ, 200*4*n)
	}
}

func slicesAbs(x []float32) []float32 {
	for i := range x {
		x[i] = float32(math.Abs(float64(x[i])))
	}
	return x
}

func cloneAll(in [4][]float32) (out [4][]float32) {
	for i := range in {
		out[i] = append([]float32(nil), in[i]...)
	}
	return out
}

// The clip's vector loops: Σx² agrees with a plain float64 sum to its rounding (the
// order of the additions differs) and scaling is bit for bit the scalar product.
func TestClipVectorMatchesScalar(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("this CPU has no AVX2 with FMA: only the scalar loops run")
	}
	r := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{16, 1000, 1013} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(12)-8)))
		}
		var want float64
		for _, v := range x {
			want += float64(v) * float64(v)
		}
		if got := sumSquares(x); math.Abs(got-want) > 1e-14*want {
			t.Fatalf("%d values: Σx² %.17g, in order %.17g", n, got, want)
		}
		f := float32(r.Float64())
		y := append([]float32(nil), x...)
		scale(y, f, 2)
		for i := range x {
			if y[i] != x[i]*f {
				t.Fatalf("%d values: %g scaled by %g is %g, want %g", n, x[i], f, y[i], x[i]*f)
			}
		}
	}
}
