//go:build amd64 && !purego

package allreduce

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// reduceVector says whether the reduce loops' AVX2 versions run; tests turn it off to
// run the scalar loops on the same inputs. Both compute each value with the same one
// add (and one multiply) in the same order, so they give the same bits.
var reduceVector = cpu.X86.HasAVX2

// Each takes as much of its input as a multiple of 16 values covers and returns how
// much that was; the scalar loops do the rest.

func addScaledVector(dst []float32, src []byte, f float32) int {
	n := len(dst) &^ 15
	if !reduceVector || n == 0 {
		return 0
	}
	d := &dst[0]
	finishAVX2(d, (*float32)(unsafe.Pointer(&src[:4*n][0])), d, n, f) // src: little-endian float32s
	return n
}

func addToVector(dst, a, b []float32) int {
	n := len(dst) &^ 15
	if !reduceVector || n == 0 {
		return 0
	}
	addToAVX2(&dst[0], &a[:n][0], &b[:n][0], n)
	return n
}

func finishVector(dst, acc, out []float32, f float32) int {
	n := len(dst) &^ 15
	if !reduceVector || n == 0 {
		return 0
	}
	finishAVX2(&dst[0], &acc[:n][0], &out[:n][0], n, f)
	return n
}

// In reduce_amd64.s.

//go:noescape
func addToAVX2(dst, a, b *float32, n int)

//go:noescape
func finishAVX2(dst, acc, out *float32, n int, f float32)
