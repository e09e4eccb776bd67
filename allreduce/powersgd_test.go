package allreduce

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestPowerSGDErrorFeedback: ranks whose gradients share a low-rank signal under
// full-rank noise reduce with rank-2 PowerSGD for many steps. Every step leaves the same
// bits on every rank; the running sum of outputs converges to the running sum of the
// exact averages (relative error falling roughly as 1/steps), which is what error
// feedback buys; and the wire carries a fraction of the raw bytes.
func TestPowerSGDErrorFeedback(t *testing.T) {
	const n, rows, cols, steps = 3, 60, 48, 60
	rings := tcpRings(t, n, func(c *Config) {
		c.Codec, c.PowerSGD = CodecPowerSGD, PowerSGDParams{Rank: 2, Cols: cols, Seed: 7}
		c.BucketElems = rows * cols / 4 // four buckets: the per-bucket state, and the pipeline reusing its stages
	})
	rng := rand.New(rand.NewPCG(31, 32))
	signal := make([][]float64, n)
	for i := range signal {
		u, v := make([]float64, rows), make([]float64, cols)
		for j := range u {
			u[j] = rng.NormFloat64()
		}
		for j := range v {
			v[j] = rng.NormFloat64()
		}
		signal[i] = make([]float64, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				signal[i][r*cols+c] = u[r] * v[c]
			}
		}
	}
	sumOut := make([]float64, rows*cols)
	sumExact := make([]float64, rows*cols)
	relErr := func() float64 {
		var d, e float64
		for j := range sumOut {
			d += (sumOut[j] - sumExact[j]) * (sumOut[j] - sumExact[j])
			e += sumExact[j] * sumExact[j]
		}
		return math.Sqrt(d / e)
	}
	var first float64
	bufs := make([][]float32, n)
	for step := 1; step <= steps; step++ {
		for i := range bufs {
			bufs[i] = make([]float32, rows*cols)
			for j := range bufs[i] {
				g := signal[i][j] + 0.5*rng.NormFloat64()
				bufs[i][j] = float32(g)
				sumExact[j] += float64(bufs[i][j]) / n
			}
		}
		mustReduce(t, rings, bufs, OpAvg)
		for i := 1; i < n; i++ {
			if j := sameBits(bufs[i], bufs[0]); j >= 0 {
				t.Fatalf("step %d: rank %d differs from rank 0 at %d", step, i, j)
			}
		}
		for j := range sumOut {
			sumOut[j] += float64(bufs[0][j])
		}
		if step == 1 {
			first = relErr()
		}
	}
	last := relErr()
	t.Logf("relative error of the running sum: %.3f after 1 step, %.4f after %d", first, last, steps)
	if first < 0.2 {
		t.Errorf("one step already has error %.3f: the codec is not compressing", first)
	}
	if last > first/10 {
		t.Errorf("running-sum error %.4f after %d steps, want below a tenth of %.3f", last, steps, first)
	}
	if s := rings[0].Stats(); s.Ratio() < 3 {
		t.Errorf("compression ratio %.1f, want >= 3 for rank 2 of %dx%d in four buckets", s.Ratio(), rows, cols)
	}
}

// withScalarPowerSGD runs fn with PowerSGD's vector loops turned off.
func withScalarPowerSGD(fn func()) {
	defer func(v bool) { psgdVector = v }(psgdVector)
	psgdVector = false
	fn()
}

// TestPowerSGDKernels: for ranks that fill four columns or leave some padding, and
// rows that fill the vector loops or leave a scalar tail (and a short last row), the
// vector and scalar loops agree with a float64 reference within float32 rounding of the
// terms' magnitudes (project, backProject: their sums go through the ring, so their
// order may differ), and give exactly the same bits for M + memory, the memory and the
// output (reconstruct: the output must be the same bits on every rank).
func TestPowerSGDKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, c := range []struct{ cols, rk, len int }{
		{768, 4, 768*9 + 100}, {768, 1, 768 * 3}, {768, 6, 768*5 + 17}, {40, 8, 40*7 + 5}, {23, 3, 23 * 4},
	} {
		rows := (c.len + c.cols - 1) / c.cols
		m0, mem0 := make([]float32, c.len), make([]float32, c.len)
		for i := range m0 {
			m0[i] = float32(rng.NormFloat64())
			mem0[i] = float32(rng.NormFloat64() * 0.1)
		}
		p0 := make([]float32, rows*c.rk)
		for i := range p0 {
			p0[i] = float32(rng.NormFloat64())
		}
		qt, qt2 := make([]float32, rk4(c.rk)*c.cols), make([]float32, rk4(c.rk)*c.cols)
		for i := range qt {
			qt[i], qt2[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		type result struct{ m, mem, p, qlt []float32 }
		run := func() result {
			r := result{m: slices.Clone(m0), mem: slices.Clone(mem0), p: make([]float32, len(p0)),
				qlt: make([]float32, len(qt))}
			project(r.m, r.mem, qt, r.p, c.cols, c.rk)
			backProject(r.m, p0, r.qlt, c.cols, c.rk)
			reconstruct(r.m, r.mem, p0, qt2, c.cols, c.rk, 1/float32(3), 1)
			return r
		}
		vec := run()
		var sc result
		withScalarPowerSGD(func() { sc = run() })
		for _, cmp := range []struct {
			name     string
			got, ref []float32
		}{{"output", vec.m, sc.m}, {"memory", vec.mem, sc.mem}} {
			if i := sameBits(cmp.got, cmp.ref); i >= 0 {
				t.Fatalf("%+v: %s %d: vector %#08x, scalar %#08x", c, cmp.name, i, math.Float32bits(cmp.got[i]), math.Float32bits(cmp.ref[i]))
			}
		}
		// float64 references for P = (M + memory) Q and Q_localᵀ = (Mᵀ P)ᵀ, with the sum
		// of the terms' magnitudes for the tolerance
		m := make([]float32, c.len)
		for i := range m {
			m[i] = m0[i] + mem0[i]
		}
		for _, got := range []result{vec, sc} {
			for i := 0; i < rows; i++ {
				for j := 0; j < c.rk; j++ {
					var ref, mag float64
					for k := i * c.cols; k < min((i+1)*c.cols, c.len); k++ {
						x := float64(m[k]) * float64(qt[j*c.cols+k-i*c.cols])
						ref, mag = ref+x, mag+math.Abs(x)
					}
					if d := math.Abs(float64(got.p[i*c.rk+j]) - ref); d > 1e-6*mag {
						t.Fatalf("%+v: P[%d,%d] = %g, want %g (magnitude %g)", c, i, j, got.p[i*c.rk+j], ref, mag)
					}
				}
			}
			for j := 0; j < c.rk; j++ {
				for k := 0; k < c.cols; k++ {
					var ref, mag float64
					for i := 0; i*c.cols+k < c.len; i++ {
						x := float64(m[i*c.cols+k]) * float64(p0[i*c.rk+j])
						ref, mag = ref+x, mag+math.Abs(x)
					}
					if d := math.Abs(float64(got.qlt[j*c.cols+k]) - ref); d > 1e-6*mag {
						t.Fatalf("%+v: Q_local[%d,%d] = %g, want %g (magnitude %g)", c, k, j, got.qlt[j*c.cols+k], ref, mag)
					}
				}
			}
		}
	}
}

// TestPowerSGDWarmupIsCodecNone: with StartStep 2, the first two steps give exactly
// codec none's bits (buckets, last short bucket and all), the third is compressed and
// still the same bits on every rank; buffers too small to compress are exact whatever
// the step and do not count as steps; SetStep moves the count both ways.
func TestPowerSGDWarmupIsCodecNone(t *testing.T) {
	const n, size, bucket = 3, 40*64 + 1000, 40 * 64 // two buckets: 40 rows of 64, and 1000 values
	psgd := tcpRings(t, n, func(c *Config) {
		c.Codec, c.PowerSGD, c.BucketElems = CodecPowerSGD, PowerSGDParams{Rank: 2, Cols: 64, StartStep: 2}, bucket
	})
	none := tcpRings(t, n, func(c *Config) { c.BucketElems = bucket })
	rng := rand.New(rand.NewPCG(61, 62))
	var tailExact bool
	// reduce runs one step on both rings and reports whether PowerSGD gave none's bits.
	reduce := func(size int) bool {
		t.Helper()
		a, b := make([][]float32, n), make([][]float32, n)
		for i := range a {
			a[i] = make([]float32, size)
			gradientLike(rng, a[i])
			b[i] = slices.Clone(a[i])
		}
		mustReduce(t, psgd, a, OpAvg)
		mustReduce(t, none, b, OpAvg)
		for i := 1; i < n; i++ {
			if j := sameBits(a[i], a[0]); j >= 0 {
				t.Fatalf("rank %d differs from rank 0 at %d", i, j)
			}
		}
		tailExact = sameBits(a[0][min(bucket, size):], b[0][min(bucket, size):]) < 0
		return sameBits(a[0], b[0]) < 0
	}
	for _, c := range []struct {
		what  string
		size  int
		exact bool
	}{
		{"step 0", size, true},
		{"a small buffer", 10, true}, // not a step
		{"step 1", size, true},
		{"step 2", size, false},
		{"a small buffer after", 3 + n, true},
		{"step 3", size, false},
	} {
		if got := reduce(c.size); got != c.exact {
			t.Fatalf("%s: exactly codec none's bits: %v, want %v", c.what, got, c.exact)
		}
	}
	for _, r := range psgd {
		r.SetStep(1)
	}
	if !reduce(size) {
		t.Fatal("SetStep(1): step 1 was compressed")
	}
	if reduce(size) {
		t.Fatal("after SetStep(1), step 2 was not compressed")
	}
	for _, r := range psgd {
		r.SetStep(100)
	}
	if reduce(size) {
		t.Fatal("SetStep(100): not compressed")
	}
	// A last bucket too small to compress (100 values) is reduced exactly within a
	// compressed step. A different length starts the memory afresh.
	if reduce(bucket + 100) {
		t.Fatal("step with a short last bucket: not compressed")
	}
	if !tailExact {
		t.Fatal("the short last bucket was compressed")
	}
}

// TestPowerSGDParamsValidate: each bad parameter is refused naming its field, and
// ranks that disagree on one refuse each other at the handshake.
func TestPowerSGDParamsValidate(t *testing.T) {
	for _, c := range []struct {
		p     PowerSGDParams
		field string
	}{
		{PowerSGDParams{Rank: 65}, "PowerSGD.Rank"},
		{PowerSGDParams{Rank: -1}, "PowerSGD.Rank"},
		{PowerSGDParams{Cols: 1 << 17}, "PowerSGD.Cols"},
		{PowerSGDParams{StartStep: -3}, "PowerSGD.StartStep"},
		{PowerSGDParams{MinCompression: 0.5}, "PowerSGD.MinCompression"},
		{PowerSGDParams{MinCompression: math.NaN()}, "PowerSGD.MinCompression"},
	} {
		cfg := Config{Peers: []string{"a"}, Codec: CodecPowerSGD, PowerSGD: c.p}
		_, err := cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.p, err, c.field)
		}
	}
	for _, edit := range []func(*PowerSGDParams){
		func(p *PowerSGDParams) { p.StartStep = 7 },
		func(p *PowerSGDParams) { p.MinCompression = 3 },
	} {
		cfgs := pairConfigs(t)
		for i := range cfgs {
			cfgs[i].Codec = CodecPowerSGD
		}
		edit(&cfgs[1].PowerSGD)
		for i, err := range setupErrors(cfgs) {
			if !errors.Is(err, ErrConfigMismatch) {
				t.Errorf("%+v against the defaults: rank %d: %v, want ErrConfigMismatch", cfgs[1].PowerSGD, i, err)
			}
		}
	}
}
