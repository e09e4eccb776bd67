package allreduce

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// The reduce loops: AVX2 where the CPU has it (reduce_amd64.s, 16 values a step), then
// plain Go, written so the compiler drops the bounds checks (one check hoisted per 8
// values), for the tail and other CPUs. Both give the same bits.

// f32bytes views v as its little-endian bytes (the ring refuses big-endian hosts).
func f32bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// addScaled sets dst[i] = (dst[i] + src[i]) * f for the little-endian float32 values
// in src (len(src) == 4*len(dst)). f is 1 except where OpAvg's owner finishes a segment:
// the multiply rides along in a loop bound by memory, saving a pass, and (x+y)*1 is
// exactly x+y.
func addScaled(dst []float32, src []byte, f float32) {
	src = src[:4*len(dst)]
	i := addScaledVector(dst, src, f)
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[4*i : 4*i+32 : 4*i+32]
		d[0] = (d[0] + math.Float32frombits(binary.LittleEndian.Uint32(s[0:]))) * f
		d[1] = (d[1] + math.Float32frombits(binary.LittleEndian.Uint32(s[4:]))) * f
		d[2] = (d[2] + math.Float32frombits(binary.LittleEndian.Uint32(s[8:]))) * f
		d[3] = (d[3] + math.Float32frombits(binary.LittleEndian.Uint32(s[12:]))) * f
		d[4] = (d[4] + math.Float32frombits(binary.LittleEndian.Uint32(s[16:]))) * f
		d[5] = (d[5] + math.Float32frombits(binary.LittleEndian.Uint32(s[20:]))) * f
		d[6] = (d[6] + math.Float32frombits(binary.LittleEndian.Uint32(s[24:]))) * f
		d[7] = (d[7] + math.Float32frombits(binary.LittleEndian.Uint32(s[28:]))) * f
	}
	for ; i < len(dst); i++ {
		dst[i] = (dst[i] + math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))) * f
	}
}

// scale multiplies v by f in place. OpAvg multiplies by float32(1/n) rather than
// dividing by n: a division costs four times the add loop, and only the owner of each
// segment scales, so every rank still ends with the same bits.
func scale(v []float32, f float32) {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		d := v[i : i+8 : i+8]
		d[0] *= f
		d[1] *= f
		d[2] *= f
		d[3] *= f
		d[4] *= f
		d[5] *= f
		d[6] *= f
		d[7] *= f
	}
	for ; i < len(v); i++ {
		v[i] *= f
	}
}

// The shared-memory path's sums (shm_pass.go), each term added as the TCP receiver
// adds it: the new term first, so the bits match the ring's.

// addTo sets dst[i] = a[i] + b[i].
func addTo(dst, a, b []float32) {
	a, b = a[:len(dst)], b[:len(dst)]
	i := addToVector(dst, a, b)
	for ; i+8 <= len(dst); i += 8 {
		d, x, y := dst[i:i+8:i+8], a[i:i+8:i+8], b[i:i+8:i+8]
		d[0], d[1], d[2], d[3] = x[0]+y[0], x[1]+y[1], x[2]+y[2], x[3]+y[3]
		d[4], d[5], d[6], d[7] = x[4]+y[4], x[5]+y[5], x[6]+y[6], x[7]+y[7]
	}
	for ; i < len(dst); i++ {
		dst[i] = a[i] + b[i]
	}
}

// addInto sets dst[i] = a[i] + dst[i].
func addInto(dst, a []float32) {
	a = a[:len(dst)]
	i := addToVector(dst, a, dst)
	for ; i+8 <= len(dst); i += 8 {
		d, x := dst[i:i+8:i+8], a[i:i+8:i+8]
		d[0], d[1], d[2], d[3] = x[0]+d[0], x[1]+d[1], x[2]+d[2], x[3]+d[3]
		d[4], d[5], d[6], d[7] = x[4]+d[4], x[5]+d[5], x[6]+d[6], x[7]+d[7]
	}
	for ; i < len(dst); i++ {
		dst[i] = a[i] + dst[i]
	}
}

// finish sets dst[i] = (dst[i] + acc[i]) * f and copies it to out[i]: the owner's own
// term, OpAvg's scaling (f = 1 for a sum: (x+y)*1 is x+y) and the publication of the
// result in one pass. acc may be out.
func finish(dst, acc, out []float32, f float32) {
	acc, out = acc[:len(dst)], out[:len(dst)]
	i := finishVector(dst, acc, out, f)
	for ; i+8 <= len(dst); i += 8 {
		d, x, o := dst[i:i+8:i+8], acc[i:i+8:i+8], out[i:i+8:i+8]
		v0, v1, v2, v3 := (d[0]+x[0])*f, (d[1]+x[1])*f, (d[2]+x[2])*f, (d[3]+x[3])*f
		v4, v5, v6, v7 := (d[4]+x[4])*f, (d[5]+x[5])*f, (d[6]+x[6])*f, (d[7]+x[7])*f
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = v0, v1, v2, v3, v4, v5, v6, v7
		o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = v0, v1, v2, v3, v4, v5, v6, v7
	}
	for ; i < len(dst); i++ {
		dst[i] = (dst[i] + acc[i]) * f
		out[i] = dst[i]
	}
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
