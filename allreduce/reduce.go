package allreduce

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// The reduce loops are plain Go written so the compiler drops the bounds checks (one
// check hoisted per 8 values); on two cores they are a third of an all-reduce's CPU.

// f32bytes views v as its little-endian bytes (the ring refuses big-endian hosts).
func f32bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// addBytes adds the little-endian float32 values in src to dst; len(src) == 4*len(dst).
func addBytes(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[4*i : 4*i+32 : 4*i+32]
		d[0] += math.Float32frombits(binary.LittleEndian.Uint32(s[0:]))
		d[1] += math.Float32frombits(binary.LittleEndian.Uint32(s[4:]))
		d[2] += math.Float32frombits(binary.LittleEndian.Uint32(s[8:]))
		d[3] += math.Float32frombits(binary.LittleEndian.Uint32(s[12:]))
		d[4] += math.Float32frombits(binary.LittleEndian.Uint32(s[16:]))
		d[5] += math.Float32frombits(binary.LittleEndian.Uint32(s[20:]))
		d[6] += math.Float32frombits(binary.LittleEndian.Uint32(s[24:]))
		d[7] += math.Float32frombits(binary.LittleEndian.Uint32(s[28:]))
	}
	for ; i < len(dst); i++ {
		dst[i] += math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// divide divides v by n in place. Division, not multiplication by 1/n, so that the
// average of n equal values is that value.
func divide(v []float32, n int) {
	d := float32(n)
	for i := range v {
		v[i] /= d
	}
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
