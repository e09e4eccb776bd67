package allreduce

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// shuffleCodec is the lossless codec. A chunk of n float32 becomes four byte planes
// (all low mantissa bytes, ..., all sign/exponent bytes), each coded on its own, since
// they differ: for dense gradients the three low planes are noise that no compressor
// shrinks, while the sign/exponent plane halves under zstd (gradient exponents
// cluster); zero rows make long zero runs in every plane. A plane whose sampled byte
// entropy says it will not shrink is sent raw without trying, which keeps the codec
// cheap on dense data. Payload by length:
//
//	0       every value is +0 (the common case for BERT's word-embedding rows)
//	4n      raw little-endian float32, when coding the planes would not shrink the chunk
//	other   4 little-endian uint32 plane lengths, then the planes, each by its length:
//	        0 all zero bytes, n raw, else an s2 block or a zstd frame of n bytes
type shuffleCodec struct {
	kind  Codec
	chunk int           // the most values a frame holds
	enc   *zstd.Encoder // created on first use: only the sending side needs it
	dec   *zstd.Decoder // only the receiving side
	buf   []byte        // the receiving side's decompressed planes
}

const planeHeader = 16

// zstdBound is zstd's worst-case expansion (ZSTD_COMPRESSBOUND plus frame header).
func zstdBound(n int) int { return n + n>>7 + 64 }

func (c *shuffleCodec) bound(n int) int {
	if c.kind == CodecS2 {
		return s2.MaxEncodedLen(n)
	}
	return zstdBound(n)
}

// scratch holds the shuffled planes, then the payload, with room for the last plane's
// worst case.
// scratch holds the payload: plane lengths and the shuffled planes, compacted in
// place, and after them room for one plane's worst-case compression.
func (c *shuffleCodec) scratch(elems int) int { return planeHeader + 4*elems + c.bound(elems) }

func (c *shuffleCodec) quantize([]float32) {}

func (c *shuffleCodec) encode(dst []byte, src []float32) ([]byte, error) {
	n := len(src)
	var try [4]bool
	worth := false
	for p := range try {
		try[p] = sampledEntropy(src, p) <= c.maxEntropy()
		worth = worth || try[p]
	}
	if !worth {
		return f32bytes(src), nil // dense noise: not even worth shuffling
	}
	var nonzero [4]bool
	if !shuffle(dst[planeHeader:planeHeader+4*n], src, &nonzero) {
		return dst[:0], nil
	}
	spare := dst[planeHeader+4*n:]
	w := planeHeader // planes are compacted towards the header as earlier ones shrink
	for p := range 4 {
		plane := dst[planeHeader+p*n : planeHeader+(p+1)*n]
		coded := plane
		switch {
		case !nonzero[p]:
			coded = nil
		case try[p]:
			z, err := c.compress(spare, plane)
			if err != nil {
				return nil, err
			}
			if len(z) < n {
				coded = z
			}
		}
		binary.LittleEndian.PutUint32(dst[4*p:], uint32(len(coded)))
		w += copy(dst[w:], coded)
	}
	if w >= 4*n {
		return f32bytes(src), nil
	}
	return dst[:w], nil
}

// maxEntropy is the sampled entropy, in bits per byte, above which a plane is sent raw
// untried. zstd's entropy coder gains down to about 7 bits; s2 only finds repeats, and
// on a dense sign/exponent plane (about 3.5 bits) it spends 2 ns a byte to save a
// quarter of it, more than loopback TCP charges for sending the bytes.
func (c *shuffleCodec) maxEntropy() float32 {
	if c.kind == CodecS2 {
		return 2
	}
	return 7
}

// compress codes plane into dst, which has room for the worst case.
func (c *shuffleCodec) compress(dst, plane []byte) ([]byte, error) {
	if c.kind == CodecS2 {
		return s2.Encode(dst, plane), nil
	}
	if c.enc == nil {
		var err error
		c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true),
			zstd.WithSingleSegment(true)) // the window is the plane, within the decoder's limit
		if err != nil {
			return nil, err
		}
	}
	return c.enc.EncodeAll(plane, dst[:0]), nil
}

func (c *shuffleCodec) decode(dst []float32, payload []byte, add bool) error {
	n := len(dst)
	switch {
	case len(payload) == 0:
		if !add {
			clear(dst)
			return nil
		}
		for i := range dst {
			dst[i] += 0 // not a no-op: -0 + +0 is +0, and the result must be bit-exact
		}
		return nil
	case len(payload) == 4*n:
		return rawCodec{}.decode(dst, payload, add)
	case len(payload) > 4*n || n > c.chunk:
		return fmt.Errorf("%v payload of %d bytes for %d values", c.kind, len(payload), n)
	case len(payload) < planeHeader:
		return fmt.Errorf("%v payload of %d bytes is shorter than its plane lengths", c.kind, len(payload))
	}
	if cap(c.buf) < 4*n {
		c.buf = make([]byte, 4*c.chunk)
	}
	planes := c.buf[:4*n]
	rest := payload[planeHeader:]
	for p := range 4 {
		l := int(binary.LittleEndian.Uint32(payload[4*p:]))
		if l > len(rest) || l > n {
			return fmt.Errorf("%v plane %d: length %d, %d bytes left, plane of %d", c.kind, p, l, len(rest), n)
		}
		plane := planes[p*n : (p+1)*n]
		switch l {
		case 0:
			clear(plane)
		case n:
			copy(plane, rest[:l])
		default:
			if err := c.decompress(plane, rest[:l]); err != nil {
				return fmt.Errorf("%v plane %d: %w", c.kind, p, err)
			}
		}
		rest = rest[l:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%v payload: %d bytes after the last plane", c.kind, len(rest))
	}
	unshuffle(dst, planes, add)
	return nil
}

// decompress fills plane exactly from src.
func (c *shuffleCodec) decompress(plane, src []byte) error {
	if c.kind == CodecS2 {
		if m, err := s2.DecodedLen(src); err != nil || m != len(plane) {
			return fmt.Errorf("s2 block decodes to %d bytes (%v), want %d", m, err, len(plane))
		}
		_, err := s2.Decode(plane, src)
		return err
	}
	if c.dec == nil {
		limit := max(c.chunk, zstd.MinWindowSize) // zstd's window never goes below 1 KiB
		var err error
		c.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecoderMaxWindow(uint64(limit)))
		if err != nil {
			return err
		}
	}
	out, err := c.dec.DecodeAll(src, plane[:0:len(plane)])
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if len(out) != len(plane) {
		return fmt.Errorf("zstd frame decodes to %d bytes, want %d", len(out), len(plane))
	}
	return nil
}

// entropySamples values, evenly spaced, estimate the entropy of a plane.
const entropySamples = 1024

// nlog2n[c] is c*log2(c), for the entropy estimate.
var nlog2n = func() (t [entropySamples + 1]float32) {
	for c := 1; c <= entropySamples; c++ {
		t[c] = float32(float64(c) * math.Log2(float64(c)))
	}
	return t
}()

// sampledEntropy estimates the bits per byte of byte plane p of src from a sample: about
// a microsecond, a fraction of what a compressor spends failing on 64 KiB of noise.
func sampledEntropy(src []float32, p int) float32 {
	if len(src) < 4*entropySamples {
		return 0 // small chunks: just try
	}
	var hist [256]uint16
	step, shift := len(src)/entropySamples, 8*p
	for i := 0; i < entropySamples; i++ {
		hist[byte(math.Float32bits(src[i*step])>>shift)]++
	}
	var sum float32
	for _, c := range hist {
		sum += nlog2n[c]
	}
	return float32(math.Log2(entropySamples)) - sum/entropySamples
}

// shuffle writes src as four byte planes into dst (len 4*len(src)), notes which planes
// hold a non-zero byte, and reports whether any value was not +0.
func shuffle(dst []byte, src []float32, nonzero *[4]bool) bool {
	n := len(src)
	p0, p1, p2, p3 := dst[:n:n], dst[n:2*n:2*n], dst[2*n:3*n:3*n], dst[3*n:4*n:4*n]
	var or uint32
	for i, v := range src {
		u := math.Float32bits(v)
		or |= u
		p0[i] = byte(u)
		p1[i] = byte(u >> 8)
		p2[i] = byte(u >> 16)
		p3[i] = byte(u >> 24)
	}
	*nonzero = [4]bool{or&0xff != 0, or&0xff00 != 0, or&0xff0000 != 0, or&0xff000000 != 0}
	return or != 0
}

// unshuffle inverts shuffle, adding to dst or storing into it.
func unshuffle(dst []float32, planes []byte, add bool) {
	n := len(dst)
	p0, p1, p2, p3 := planes[:n:n], planes[n:2*n:2*n], planes[2*n:3*n:3*n], planes[3*n:4*n:4*n]
	if add {
		for i := range dst {
			dst[i] += math.Float32frombits(uint32(p0[i]) | uint32(p1[i])<<8 | uint32(p2[i])<<16 | uint32(p3[i])<<24)
		}
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(p0[i]) | uint32(p1[i])<<8 | uint32(p2[i])<<16 | uint32(p3[i])<<24)
	}
}
