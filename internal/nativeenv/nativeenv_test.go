package nativeenv

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// The tests run as bertnode does: re-executed with the settings Ensure adds.
func TestMain(m *testing.M) {
	Ensure()
	os.Exit(m.Run())
}

func TestBetterCore(t *testing.T) {
	for _, c := range []struct {
		detected string
		level    int
		want     string
	}{
		{"Prescott", levelAVX512, "SkylakeX"}, // a Xeon newer than OpenBLAS 0.3.21's table
		{"Prescott", levelAVX2, "Haswell"},
		{"Sandybridge", levelAVX2, "Haswell"},
		{"Haswell", levelAVX512, "SkylakeX"},
		{"ZEN", levelAVX512, "SkylakeX"}, // Zen 4 before OpenBLAS knew it
		{"Haswell", levelAVX2, ""},
		{"SkylakeX", levelAVX512, ""},
		{"Cooperlake", levelAVX512, ""},
		{"SapphireRapids", levelAVX2, ""}, // never downgrade what OpenBLAS chose
		{"Prescott", 0, ""},               // no AVX2 + FMA (or no OS support): leave it
		{"Prescott", levelAVX, ""},
		{"NeoverseN1", levelAVX512, ""}, // a name this table does not know
	} {
		if got := betterCore(c.detected, c.level); got != c.want {
			t.Errorf("betterCore(%q, %d) = %q, want %q", c.detected, c.level, got, c.want)
		}
	}
}

// TestKernelsComputeRight: the kernels libtorch's matrix products run with here (named
// by Ensure where OpenBLAS fell back) are at the CPU's level and agree with a float64
// product, on shapes that take the kernels' edge paths.
func TestKernelsComputeRight(t *testing.T) {
	core := Core()
	if core == "" {
		t.Skip("the BLAS under libtorch is not OpenBLAS: nothing of bertnode's to check")
	}
	userSet := os.Getenv("OPENBLAS_CORETYPE") != "" && os.Getenv(detectedVar) == ""
	if have, want := coreLevels[strings.ToLower(core)], cpuLevel(); have < want && !userSet {
		t.Errorf("OpenBLAS runs %s (level %d) on a CPU of level %d", core, have, want)
	}
	t.Logf("BLAS: %s", Describe())
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][3]int{{1, 1, 1}, {7, 13, 5}, {128, 768, 768}, {257, 129, 65}, {64, 3072, 33}, {1024, 64, 128}} {
		m, k, n := s[0], s[1], s[2]
		a, b := make([]float32, m*k), make([]float32, k*n)
		for i := range a {
			a[i] = float32(r.NormFloat64())
		}
		for i := range b {
			b[i] = float32(r.NormFloat64())
		}
		ta := ts.MustOfSlice(a).MustView([]int64{int64(m), int64(k)}, true)
		tb := ts.MustOfSlice(b).MustView([]int64{int64(k), int64(n)}, true)
		// A·B, and A·(Bᵀ)ᵀ: the second goes through the transposed-operand path.
		bt := tb.MustT(false).MustContiguous(false)
		for _, got := range []*ts.Tensor{ta.MustMm(tb, false), ta.MustMm(bt.MustT(false), false)} {
			c := got.Float64Values(true)
			got.MustDrop()
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var want, scale float64
					for l := 0; l < k; l++ {
						p := float64(a[i*k+l]) * float64(b[l*n+j])
						want += p
						scale += math.Abs(p)
					}
					if d := math.Abs(c[i*n+j] - want); d > 1e-5*scale+1e-6 {
						t.Fatalf("%dx%dx%d on %s: [%d,%d] = %g, want %g", m, k, n, core, i, j, c[i*n+j], want)
					}
				}
			}
		}
		ta.MustDrop()
		tb.MustDrop()
		bt.MustDrop()
	}
}

// SetBLASThreads changes OpenBLAS's pool size, and leaves OPENBLAS_NUM_THREADS, the
// user's choice, alone.
func TestSetBLASThreads(t *testing.T) {
	if Core() == "" {
		t.Skip("the BLAS under libtorch is not OpenBLAS")
	}
	before := BLASThreads()
	defer SetBLASThreads(before)
	if !SetBLASThreads(1) || BLASThreads() != 1 {
		t.Fatalf("after SetBLASThreads(1): %d threads", BLASThreads())
	}
	if !SetBLASThreads(2) || BLASThreads() != 2 {
		t.Fatalf("after SetBLASThreads(2): %d threads", BLASThreads())
	}
	t.Setenv("OPENBLAS_NUM_THREADS", "2")
	if SetBLASThreads(1) || BLASThreads() != 2 {
		t.Fatalf("with OPENBLAS_NUM_THREADS set: changed to %d", BLASThreads())
	}
}
