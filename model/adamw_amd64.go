//go:build amd64 && !purego

package model

import "golang.org/x/sys/cpu"

// hasAVX2FMA says whether adamwAVX2 can run: it needs AVX2 and FMA, as libtorch's own
// AVX2 kernels do.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// vector runs the update on as much of p as the AVX2 loop takes (a multiple of 8
// values) and returns how much that was: the same operations as scalar, 8 at a time,
// with the lerp as one fused multiply-add, as libtorch's kernel computes it.
func (k *adamwKernel) vector(p, g, m, v []float32, d float32) int {
	n := len(p) &^ 7
	if !hasAVX2FMA || n == 0 {
		return 0
	}
	adamwAVX2(k, &p[0], &g[0], &m[0], &v[0], n, d)
	return n
}

// sumSquaresVector is Σx² over as much of x as the AVX2 loop takes (a multiple of 16
// values), and how much that was.
func sumSquaresVector(x []float32) (float64, int) {
	n := len(x) &^ 15
	if !hasAVX2FMA || n == 0 {
		return 0, 0
	}
	return sumSquaresAVX2(&x[0], n), n
}

// scaleVector multiplies as much of x by f as the AVX2 loop takes (a multiple of 8
// values) and returns how much that was.
func scaleVector(x []float32, f float32) int {
	n := len(x) &^ 7
	if !hasAVX2FMA || n == 0 {
		return 0
	}
	scaleAVX2(&x[0], n, f)
	return n
}

// adamwAVX2, sumSquaresAVX2 and scaleAVX2 are in adamw_amd64.s.
//
//go:noescape
func adamwAVX2(k *adamwKernel, p, grad, m, v *float32, n int, d float32)

//go:noescape
func sumSquaresAVX2(x *float32, n int) float64

//go:noescape
func scaleAVX2(x *float32, n int, f float32)

// floorVector runs floorAVX2 on as much of p as it takes and returns how much that was.
func floorVector(p, g, m, v []float32) int {
	n := len(p) &^ 7
	if !hasAVX2FMA || n == 0 {
		return 0
	}
	floorAVX2(&p[0], &g[0], &m[0], &v[0], n)
	return n
}

// floorAVX2 is in adamw_amd64.s: adamwAVX2's loads and stores without its arithmetic,
// for BenchmarkAdamW.
//
//go:noescape
func floorAVX2(p, grad, m, v *float32, n int)
