//go:build amd64 && !purego

package allreduce

import "golang.org/x/sys/cpu"

// halfVector says whether the half codecs' AVX2 loops run (fp16 also needs F16C's
// conversions); tests turn it off to run the scalar loops on the same inputs.
var halfVector = cpu.X86.HasAVX2 && cpu.X86.HasF16C

// The vector loops below each take as much of their input as they handle (a multiple of
// 16 or 8 values) and return how much that was; the scalar loops do the rest.

func bf16EncodeVector(dst []byte, src []float32) int {
	n := len(src) &^ 15
	if !halfVector || n == 0 {
		return 0
	}
	bf16EncodeAVX2(&dst[:2*n][0], &src[0], n)
	return n
}

func fp16EncodeVector(dst []byte, src []float32) int {
	n := len(src) &^ 15
	if !halfVector || n == 0 {
		return 0
	}
	fp16EncodeAVX2(&dst[:2*n][0], &src[0], n)
	return n
}

// halfDecodeVector decodes into dst from payload (2 bytes a value), adding or storing.
func halfDecodeVector(bf bool, dst []float32, payload []byte, add bool) int {
	n := len(dst) &^ 15
	if !halfVector || n == 0 {
		return 0
	}
	if bf {
		bf16DecodeAVX2(&dst[0], &payload[:2*n][0], n, add)
	} else {
		fp16DecodeAVX2(&dst[0], &payload[:2*n][0], n, add)
	}
	return n
}

func halfQuantizeVector(bf bool, v []float32) int {
	n := len(v) &^ 7
	if !halfVector || n == 0 {
		return 0
	}
	if bf {
		bf16QuantizeAVX2(&v[0], n)
	} else {
		fp16QuantizeAVX2(&v[0], n)
	}
	return n
}

// In codec_half_amd64.s.

//go:noescape
func bf16EncodeAVX2(dst *byte, src *float32, n int)

//go:noescape
func bf16DecodeAVX2(dst *float32, src *byte, n int, add bool)

//go:noescape
func bf16QuantizeAVX2(v *float32, n int)

//go:noescape
func fp16EncodeAVX2(dst *byte, src *float32, n int)

//go:noescape
func fp16DecodeAVX2(dst *float32, src *byte, n int, add bool)

//go:noescape
func fp16QuantizeAVX2(v *float32, n int)
