package allreduce

import (
	"math"
	"math/rand/v2"
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
		c.BucketElems = rows * cols / 2 // two buckets, to cover the per-bucket state
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
	if s := rings[0].Stats(); s.Ratio() < 5 {
		t.Errorf("compression ratio %.1f, want >= 5 for rank 2 of %dx%d", s.Ratio(), rows, cols)
	}
}
