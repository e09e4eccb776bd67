package allreduce

import (
	"fmt"
	"math"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// shuffleCodec is the lossless codec. A chunk of n float32 becomes four byte planes
// (all low bytes, ..., all sign/exponent bytes), which s2 or zstd compress far better
// than interleaved floats: gradient exponents cluster, and zero rows become long zero
// runs in every plane. Payload by length:
//
//	0          every value is +0 (the common case for BERT's word-embedding rows)
//	4n         raw little-endian float32, when compression would not shrink the chunk
//	1..4n-1    compressed planes
type shuffleCodec struct {
	kind  Codec
	chunk int           // the most values a frame holds
	enc   *zstd.Encoder // created on first use: only the sending side needs it
	dec   *zstd.Decoder // only the receiving side
	buf   []byte        // the receiving side's decompressed planes
}

// zstdBound is zstd's worst-case expansion (ZSTD_COMPRESSBOUND plus frame header).
func zstdBound(n int) int { return n + n>>7 + 64 }

func (c *shuffleCodec) scratch(elems int) int {
	if c.kind == CodecS2 {
		return 4*elems + s2.MaxEncodedLen(4*elems)
	}
	return 4*elems + zstdBound(4*elems)
}

func (c *shuffleCodec) quantize([]float32) {}

func (c *shuffleCodec) encode(dst []byte, src []float32) ([]byte, error) {
	n := 4 * len(src)
	if shuffle(dst[:n], src) {
		return dst[:0], nil
	}
	var out []byte
	if c.kind == CodecS2 {
		out = s2.Encode(dst[n:], dst[:n])
	} else {
		if c.enc == nil {
			var err error
			c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true),
				zstd.WithSingleSegment(true)) // the window is the chunk, within the decoder's limit
			if err != nil {
				return nil, err
			}
		}
		out = c.enc.EncodeAll(dst[:n], dst[n:n])
	}
	if len(out) >= n {
		return f32bytes(src), nil
	}
	return out, nil
}

func (c *shuffleCodec) decode(dst []float32, payload []byte, add bool) error {
	n := 4 * len(dst)
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
	case len(payload) == n:
		return rawCodec{}.decode(dst, payload, add)
	case len(payload) > n || len(dst) > c.chunk:
		return fmt.Errorf("%v payload of %d bytes exceeds %d values", c.kind, len(payload), len(dst))
	}
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	planes := c.buf[:n]
	if c.kind == CodecS2 {
		if m, err := s2.DecodedLen(payload); err != nil || m != n {
			return fmt.Errorf("s2 payload decodes to %d bytes (%v), want %d", m, err, n)
		}
		if _, err := s2.Decode(planes, payload); err != nil {
			return fmt.Errorf("s2 payload: %w", err)
		}
	} else {
		if c.dec == nil {
			limit := max(4*c.chunk, zstd.MinWindowSize) // zstd's window never goes below 1 KiB
			var err error
			c.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecodeAllCapLimit(true),
				zstd.WithDecoderMaxMemory(uint64(limit)), zstd.WithDecoderMaxWindow(uint64(limit)))
			if err != nil {
				return err
			}
		}
		out, err := c.dec.DecodeAll(payload, planes[:0:n])
		if err != nil {
			return fmt.Errorf("zstd payload: %w", err)
		}
		if len(out) != n {
			return fmt.Errorf("zstd payload decodes to %d bytes, want %d", len(out), n)
		}
	}
	unshuffle(dst, planes, add)
	return nil
}

// shuffle writes src as four byte planes into dst (len 4*len(src)) and reports whether
// every value was +0.
func shuffle(dst []byte, src []float32) (zero bool) {
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
	return or == 0
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
