//go:build amd64 && !purego

package allreduce

import "golang.org/x/sys/cpu"

// psgdVector says whether PowerSGD's AVX2 loops run; tests turn it off to run the scalar
// loops on the same inputs.
var psgdVector = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The vector loops take as much of the row as they handle (a multiple of 8 or 32
// values) and return how much that was; the scalar loops do the rest.

func dot4Vector(x, mem, q []float32, stride int, out *[4]float32) int {
	n := len(x) &^ 7
	if !psgdVector || n == 0 {
		return 0
	}
	var m *float32
	if mem != nil {
		m = &mem[:n][0]
	}
	_ = q[3*stride+n-1]
	dot4AVX2(&x[0], m, &q[0], stride, n, out)
	return n
}

func axpy4Vector(y []float32, stride int, x []float32, a *[4]float32) int {
	n := len(x) &^ 7
	if !psgdVector || n == 0 {
		return 0
	}
	_ = y[3*stride+n-1]
	axpy4AVX2(&y[0], stride, &x[0], a, n)
	return n
}

func reconstructVector(row, mem, p, q []float32, stride int, inv, scale float32) int {
	n := len(row) &^ 31
	if !psgdVector || n == 0 || len(p) == 0 {
		return 0
	}
	_, _ = mem[n-1], q[(len(p)-1)*stride+n-1]
	reconstructAVX2(&row[0], &mem[0], &p[0], &q[0], stride, len(p), n, inv, scale)
	return n
}

// In powersgd_amd64.s.

//go:noescape
func dot4AVX2(x, mem, q *float32, stride, n int, out *[4]float32)

//go:noescape
func axpy4AVX2(y *float32, stride int, x *float32, a *[4]float32, n int)

//go:noescape
func reconstructAVX2(row, mem, p, q *float32, stride, rk, n int, inv, scale float32)
