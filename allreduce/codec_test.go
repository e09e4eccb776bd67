package allreduce

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// nearestHalf checks that h is a round-to-nearest-even image of f: no neighbour of h
// is closer to f, and on a tie h is even.
func checkNearest(t *testing.T, name string, f float32, h uint16, dec func(uint16) float32) {
	t.Helper()
	got := float64(dec(h))
	if math.IsInf(got, 0) {
		return // overflow is checked separately
	}
	d := math.Abs(float64(f) - got)
	for _, nb := range []uint16{h - 1, h + 1} {
		v := float64(dec(nb))
		if math.IsNaN(v) || math.Signbit(v) != math.Signbit(got) && v != 0 {
			continue
		}
		dn := math.Abs(float64(f) - v)
		if dn < d || dn == d && h&1 == 1 {
			t.Fatalf("%s(%g) = %#04x (%g), but %#04x (%g) is nearer or the even tie", name, f, h, got, nb, v)
		}
	}
}

func TestHalfConversions(t *testing.T) {
	// Every binary16 and bfloat16 value survives a round trip through float32.
	for h := 0; h < 1<<16; h++ {
		if f := fp16ToF32(uint16(h)); f == f && fp16FromF32(f) != uint16(h) {
			t.Fatalf("fp16 %#04x -> %g -> %#04x", h, f, fp16FromF32(f))
		}
		if f := bf16ToF32(uint16(h)); f == f && bf16FromF32(f) != uint16(h) {
			t.Fatalf("bf16 %#04x -> %g -> %#04x", h, f, bf16FromF32(f))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(rng.Uint32())
		if f != f {
			if bf16ToF32(bf16FromF32(f)) == bf16ToF32(bf16FromF32(f)) || fp16ToF32(fp16FromF32(f)) == fp16ToF32(fp16FromF32(f)) {
				t.Fatalf("NaN %#x did not stay NaN", math.Float32bits(f))
			}
			continue
		}
		checkNearest(t, "bf16", f, bf16FromF32(f), bf16ToF32)
		// values in binary16's range, subnormals included
		g := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(44)-28)))
		checkNearest(t, "fp16", g, fp16FromF32(g), fp16ToF32)
	}
	for _, c := range []struct {
		f float32
		h uint16
	}{{65504, 0x7bff}, {65519, 0x7bff}, {65520, 0x7c00}, {1e9, 0x7c00}, {-1e9, 0xfc00},
		{float32(math.Ldexp(1, -25)), 0}, {float32(math.Ldexp(1.01, -25)), 1}, {float32(math.Ldexp(1, -24)), 1}} {
		if got := fp16FromF32(c.f); got != c.h {
			t.Errorf("fp16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
}

func specialValues() []float32 {
	v := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00001), math.Float32frombits(0xffa00000), math.Float32frombits(1),
		math.MaxFloat32, -math.SmallestNonzeroFloat32}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 1000; i++ {
		v = append(v, math.Float32frombits(rng.Uint32()))
	}
	return v
}

// TestLosslessCodecs: s2 and zstd store exactly the bits they were given (NaN payloads,
// negative zeros, subnormals), through every payload form (zero, raw, compressed), and
// adding a decoded chunk equals adding the original.
func TestLosslessCodecs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	sparse := make([]float32, 30000)
	gradientLike(rng, sparse)
	inputs := map[string][]float32{
		"zeros": make([]float32, 4096), "special": specialValues(), "sparse": sparse, "one": {3},
	}
	for _, kind := range []Codec{CodecS2, CodecZstd} {
		enc, dec := newWireCodec(kind, 1<<16), newWireCodec(kind, 1<<16)
		for name, src := range inputs {
			payload, err := enc.encode(make([]byte, enc.scratch(len(src))), src)
			if err != nil {
				t.Fatal(err)
			}
			if len(payload) > payloadLimit(kind, len(src)) {
				t.Fatalf("%v %s: payload %d over limit", kind, name, len(payload))
			}
			got := make([]float32, len(src))
			for i := range got {
				got[i] = 42
			}
			if err := dec.decode(got, bytes.Clone(payload), false); err != nil {
				t.Fatalf("%v %s: %v", kind, name, err)
			}
			if i := sameBits(got, src); i >= 0 {
				t.Fatalf("%v %s: value %d = %#x, want %#x", kind, name, i, math.Float32bits(got[i]), math.Float32bits(src[i]))
			}
			acc := make([]float32, len(src))
			want := make([]float32, len(src))
			for i := range acc {
				acc[i] = float32(math.Copysign(0, -1))
				if i%3 == 0 {
					acc[i] = float32(i)
				}
				want[i] = acc[i] + src[i]
			}
			if err := dec.decode(acc, payload, true); err != nil {
				t.Fatal(err)
			}
			for i := range acc {
				if math.Float32bits(acc[i]) != math.Float32bits(want[i]) && !(acc[i] != acc[i] && want[i] != want[i]) {
					t.Fatalf("%v %s add: value %d = %#x, want %#x", kind, name, i, math.Float32bits(acc[i]), math.Float32bits(want[i]))
				}
			}
		}
	}
}

// TestLosslessRatioOnEmbeddingRows: a word-embedding gradient with 2% non-zero rows
// must shrink by at least 25x, and its all-zero chunks must cost no payload at all.
func TestLosslessRatioOnEmbeddingRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const rows, cols = 4000, 768
	emb := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		if rng.IntN(50) == 0 {
			for c := 0; c < cols; c++ {
				emb[r*cols+c] = float32(rng.NormFloat64() * 1e-3)
			}
		}
	}
	for _, kind := range []Codec{CodecS2, CodecZstd} {
		c := newWireCodec(kind, 1<<16)
		scratch := make([]byte, c.scratch(DefaultChunkElems))
		var wire int
		for off := 0; off < len(emb); off += DefaultChunkElems {
			p, err := c.encode(scratch, emb[off:min(off+DefaultChunkElems, len(emb))])
			if err != nil {
				t.Fatal(err)
			}
			wire += len(p) + frameHeaderSize
		}
		ratio := float64(4*len(emb)) / float64(wire)
		t.Logf("%v: ratio %.1f", kind, ratio)
		if ratio < 25 {
			t.Errorf("%v: ratio %.1f on 2%% non-zero rows, want >= 25", kind, ratio)
		}
		if p, _ := c.encode(scratch, make([]float32, 1000)); len(p) != 0 {
			t.Errorf("%v: zero chunk costs %d bytes", kind, len(p))
		}
	}
}

// TestCodecsRejectBadPayloads: every decoder refuses payloads of the wrong size and
// corrupt compressed data with an error, never a panic or a partial success.
func TestCodecsRejectBadPayloads(t *testing.T) {
	src := make([]float32, 5000)
	gradientLike(rand.New(rand.NewPCG(11, 12)), src)
	for i := range src[:4000] {
		src[i] = 0 // so that the lossless codecs compress rather than send raw
	}
	for _, kind := range []Codec{CodecNone, CodecS2, CodecZstd, CodecBF16, CodecFP16} {
		c := newWireCodec(kind, 1<<16)
		payload, _ := c.encode(make([]byte, c.scratch(len(src))), src)
		payload = bytes.Clone(payload)
		dst := make([]float32, len(src))
		if err := c.decode(dst[:len(dst)-1], payload, true); err == nil {
			t.Errorf("%v: accepted a payload for %d values as %d values", kind, len(src), len(dst)-1)
		}
		if err := c.decode(dst, append(payload, 0), false); err == nil {
			t.Errorf("%v: accepted a payload with a trailing byte", kind)
		}
		if kind == CodecS2 || kind == CodecZstd {
			if len(payload) >= 4*len(src) {
				t.Fatalf("%v: test data did not compress", kind)
			}
			bad := bytes.Clone(payload)
			for i := planeHeader; i < len(bad); i += 7 {
				bad[i] ^= 0x5a
			}
			if err := c.decode(dst, bad, false); err == nil {
				t.Errorf("%v: accepted corrupted planes", kind)
			}
			bad = bytes.Clone(payload)
			bad[4]++ // plane 1 one byte longer than the payload holds
			if err := c.decode(dst, bad, false); err == nil {
				t.Errorf("%v: accepted inconsistent plane lengths", kind)
			}
		}
	}
}

func TestHalfCodecBound(t *testing.T) {
	for _, kind := range []Codec{CodecBF16, CodecFP16} {
		c := newWireCodec(kind, 1<<16)
		src := make([]float32, 10000)
		gradientLike(rand.New(rand.NewPCG(13, 14)), src)
		payload, _ := c.encode(make([]byte, c.scratch(len(src))), src)
		got := make([]float32, len(src))
		if err := c.decode(got, payload, false); err != nil {
			t.Fatal(err)
		}
		q := append([]float32(nil), src...)
		c.quantize(q)
		u := unitRoundoff(kind)
		for i := range src {
			if got[i] != q[i] {
				t.Fatalf("%v: decode(encode(x)) != quantize(x) at %d", kind, i)
			}
			if err := math.Abs(float64(got[i] - src[i])); err > u*math.Abs(float64(src[i]))+subnormalStep(kind) {
				t.Fatalf("%v: |%g - %g| beyond the unit roundoff", kind, got[i], src[i])
			}
		}
	}
}

func unitRoundoff(c Codec) float64 {
	if c == CodecBF16 {
		return math.Ldexp(1, -8)
	}
	return math.Ldexp(1, -11)
}

// subnormalStep is the absolute error below which the format's subnormals take over.
func subnormalStep(c Codec) float64 {
	if c == CodecBF16 {
		return 0
	}
	return math.Ldexp(1, -25)
}

// withScalarHalf runs fn with the half codecs' vector loops turned off.
func withScalarHalf(fn func()) {
	defer func(v bool) { halfVector = v }(halfVector)
	halfVector = false
	fn()
}

// halfInputs calls fn with chunks of float32 bit patterns that between them take
// every path of both encoders: every value of the top 19 bits (sign, exponent, fp16's
// 10 mantissa bits) with the low 13 bits 0, 1, just below, at and above half of 2^13,
// and all ones; and so, for bf16, every top 16 bits with the low 16 below, at and
// above the tie. With BERTNODE_HALF_EXHAUSTIVE=1, every float32 instead (a minute).
func halfInputs(fn func(src []float32)) {
	src := make([]float32, 1<<16)
	if os.Getenv("BERTNODE_HALF_EXHAUSTIVE") == "1" {
		for base := uint64(0); base < 1<<32; base += uint64(len(src)) {
			for i := range src {
				src[i] = math.Float32frombits(uint32(base) + uint32(i))
			}
			fn(src)
		}
		return
	}
	lows := []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff}
	k := 0
	for hi := uint32(0); hi < 1<<19; hi++ {
		for _, lo := range lows {
			src[k] = math.Float32frombits(hi<<13 | lo)
			if k++; k == len(src) {
				fn(src)
				k = 0
			}
		}
	}
	fn(src[:k])
}

// TestHalfVectorMatchesScalar: the AVX2 loops give the scalar loops' bits for every
// class of float32 (encode and quantize, halfInputs), for every 16-bit value (decode,
// stored and added to NaNs of both kinds, zeros of both signs, Inf and finite values),
// and on lengths that leave a scalar tail.
func TestHalfVectorMatchesScalar(t *testing.T) {
	if !halfVector {
		t.Skip("no AVX2 and F16C on this CPU (or a purego build): only the scalar loops run")
	}
	for _, c := range []halfCodec{{bf: true}, {bf: false}} {
		name := map[bool]string{true: "bf16", false: "fp16"}[c.bf]
		halfInputs(func(src []float32) {
			if t.Failed() {
				return
			}
			got, want := make([]byte, 2*len(src)), make([]byte, 2*len(src))
			qGot, qWant := slices.Clone(src), slices.Clone(src)
			c.encode(got, src)
			c.quantize(qGot)
			withScalarHalf(func() {
				c.encode(want, src)
				c.quantize(qWant)
			})
			for i := range src {
				if g, w := binary.LittleEndian.Uint16(got[2*i:]), binary.LittleEndian.Uint16(want[2*i:]); g != w {
					t.Errorf("%s encode(%#08x) = %#04x, scalar %#04x", name, math.Float32bits(src[i]), g, w)
					return
				}
			}
			if i := sameBits(qGot, qWant); i >= 0 {
				t.Errorf("%s quantize(%#08x) = %#08x, scalar %#08x", name, math.Float32bits(src[i]),
					math.Float32bits(qGot[i]), math.Float32bits(qWant[i]))
			}
		})

		payload := make([]byte, 2<<16)
		for h := range 1 << 16 {
			binary.LittleEndian.PutUint16(payload[2*h:], uint16(h))
		}
		for _, d := range []uint32{0, 0x80000000, 0x3f800000, 0xc2f60000, 0x7f800000, 0xff800000,
			0x7fc00001, 0xffc12345, 0x7f800001, 0xff812345, 0x00000001} {
			for _, add := range []bool{false, true} {
				for _, n := range []int{1 << 16, 1<<16 - 5, 13} { // the last leaves all to the tail
					dst, ref := make([]float32, n), make([]float32, n)
					for i := range dst {
						dst[i] = math.Float32frombits(d)
						ref[i] = dst[i]
					}
					if err := c.decode(dst, payload[:2*n], add); err != nil {
						t.Fatal(err)
					}
					withScalarHalf(func() {
						if err := c.decode(ref, payload[:2*n], add); err != nil {
							t.Fatal(err)
						}
					})
					if i := sameBitsOrNaN(dst, ref); i >= 0 {
						t.Fatalf("%s decode(%#04x) into %#08x, add %v: %#08x, scalar %#08x", name, i, d, add,
							math.Float32bits(dst[i]), math.Float32bits(ref[i]))
					}
				}
			}
		}
	}
}

// sameBitsOrNaN is sameBits with any two NaNs equal: a sum of two NaNs is one of them,
// which one the order of the instruction's operands decides, and the Go compiler
// chooses that order for the scalar loops (a -race build returned the other NaN).
func sameBitsOrNaN(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return i
		}
	}
	return -1
}

// TestReduceVectorMatchesScalar: the reduce loops' AVX2 versions give the scalar loops'
// bits, on random bit patterns (NaNs, infinities, zeros of both signs and subnormals
// among them) and lengths that leave a scalar tail, with f = 1 and OpAvg's 1/3; and each
// writes only its destination, aliased where the ring aliases it.
func TestReduceVectorMatchesScalar(t *testing.T) {
	if !reduceVector {
		t.Skip("no AVX2 on this CPU (or a purego build): only the scalar loops run")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	special := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0xffc12345, 0x7f800001, 0x00000001, 0x807fffff, 0x7f7fffff}
	values := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			switch rng.IntN(4) {
			case 0:
				v[i] = math.Float32frombits(special[rng.IntN(len(special))])
			case 1:
				v[i] = math.Float32frombits(rng.Uint32())
			default:
				v[i] = float32(rng.NormFloat64())
			}
		}
		return v
	}
	scalar := func(fn func()) {
		defer func(v bool) { reduceVector = v }(reduceVector)
		reduceVector = false
		fn()
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 100, 4096, 4096 + 13} {
		for _, f := range []float32{1, 1 / float32(3)} {
			d, a, b := values(n), values(n), values(n)
			check := func(what string, got, want []float32) {
				t.Helper()
				if i := sameBitsOrNaN(got, want); i >= 0 {
					t.Fatalf("%s, n %d, f %v: value %d is %#08x, scalar %#08x", what, n, f, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
			got, want := slices.Clone(d), slices.Clone(d)
			addScaled(got, f32bytes(a), f)
			scalar(func() { addScaled(want, f32bytes(a), f) })
			check("addScaled", got, want)

			got, want = make([]float32, n), make([]float32, n)
			addTo(got, a, b)
			scalar(func() { addTo(want, a, b) })
			check("addTo", got, want)

			got, want = slices.Clone(d), slices.Clone(d)
			addInto(got, a)
			scalar(func() { addInto(want, a) })
			check("addInto", got, want)

			for _, alias := range []bool{false, true} {
				got, want = slices.Clone(d), slices.Clone(d)
				gotAcc, wantAcc := slices.Clone(a), slices.Clone(a)
				gotOut, wantOut := make([]float32, n), make([]float32, n)
				if alias { // the shared-memory pass finishes into its accumulator
					gotOut, wantOut = gotAcc, wantAcc
				}
				finish(got, gotAcc, gotOut, f)
				scalar(func() { finish(want, wantAcc, wantOut, f) })
				check("finish dst", got, want)
				check("finish out", gotOut, wantOut)
				check("finish acc", gotAcc, wantAcc)
			}
		}
	}
}
