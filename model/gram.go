package model

import "github.com/sugarme/gotch/ts"

// Gram is the dot product of every row of a with every row of b (row-major, h columns
// each), as a row-major [rows of a, rows of b] matrix, through libtorch's BLAS on the
// CPU: retrieval evaluation scores every held-out anchor against every candidate, too
// many products for a Go loop once the held-out set has thousands of pairs.
func Gram(a, b []float32, h int) []float32 {
	n, m := int64(len(a)/h), int64(len(b)/h)
	if n == 0 || m == 0 {
		return make([]float32, n*m)
	}
	var out []float32
	noGrad(func() {
		ta := ts.MustOfSlice(a).MustView([]int64{n, int64(h)}, true)
		tb := ts.MustOfSlice(b).MustView([]int64{m, int64(h)}, true).MustT(true)
		g := ta.MustMm(tb, true)
		tb.MustDrop()
		out = hostFloats(g)
		g.MustDrop()
	})
	return out
}
