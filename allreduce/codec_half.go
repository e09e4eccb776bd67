package allreduce

import (
	"encoding/binary"
	"fmt"
	"math"
)

// halfCodec sends 16-bit floats: bfloat16 (bf) or IEEE binary16. Both round to nearest,
// ties to even; fp16 overflows to ±Inf and flushes below 2^-25 to zero, as torch's
// .half() does. The two formats share a type but not an inner loop: a per-value
// indirect call would cost as much as the conversion.
type halfCodec struct{ bf bool }

func (halfCodec) scratch(elems int) int { return 2 * elems }

// encode, decode and quantize leave what they can to the vector loops
// (codec_half_amd64.s: the same bits, 16 values at a time) and do the rest here.
func (c halfCodec) encode(dst []byte, src []float32) ([]byte, error) {
	dst = dst[:2*len(src)]
	if c.bf {
		for i := bf16EncodeVector(dst, src); i < len(src); i++ {
			binary.LittleEndian.PutUint16(dst[2*i:], bf16FromF32(src[i]))
		}
	} else {
		for i := fp16EncodeVector(dst, src); i < len(src); i++ {
			binary.LittleEndian.PutUint16(dst[2*i:], fp16FromF32(src[i]))
		}
	}
	return dst, nil
}

func (c halfCodec) decode(dst []float32, payload []byte, add bool) error {
	if len(payload) != 2*len(dst) {
		return fmt.Errorf("16-bit payload of %d bytes for %d values", len(payload), len(dst))
	}
	i := halfDecodeVector(c.bf, dst, payload, add)
	switch {
	case c.bf && add:
		for ; i < len(dst); i++ {
			dst[i] += bf16ToF32(binary.LittleEndian.Uint16(payload[2*i:]))
		}
	case c.bf:
		for ; i < len(dst); i++ {
			dst[i] = bf16ToF32(binary.LittleEndian.Uint16(payload[2*i:]))
		}
	case add:
		for ; i < len(dst); i++ {
			dst[i] += fp16ToF32(binary.LittleEndian.Uint16(payload[2*i:]))
		}
	default:
		for ; i < len(dst); i++ {
			dst[i] = fp16ToF32(binary.LittleEndian.Uint16(payload[2*i:]))
		}
	}
	return nil
}

func (c halfCodec) quantize(v []float32) {
	i := halfQuantizeVector(c.bf, v)
	if c.bf {
		for ; i < len(v); i++ {
			v[i] = bf16ToF32(bf16FromF32(v[i]))
		}
		return
	}
	for ; i < len(v); i++ {
		v[i] = fp16ToF32(fp16FromF32(v[i]))
	}
}

func bf16FromF32(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 { // NaN: keep it a NaN once truncated
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

func fp16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e < -10:
		return sign
	case e <= 0: // a binary16 subnormal: mant with its implicit bit, shifted, rounded
		m := mant | 0x800000
		shift := uint(14 - e)
		h, rem, half := m>>shift, m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || rem == half && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	h := sign | uint16(e)<<10 | uint16(mant>>13)
	if rem := mant & 0x1fff; rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is still correct, up to Inf
	}
	return h
}

func fp16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0:
		f := float32(mant) * (1.0 / (1 << 24)) // exact: mant has 10 bits
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}
