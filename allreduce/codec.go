package allreduce

import (
	"fmt"
	"strings"
)

// Codec is how float32 values travel between ranks. It is chosen per job and agreed at
// ring setup (it is part of the handshake digest).
type Codec uint8

const (
	CodecNone     Codec = iota + 1 // raw little-endian float32, sent from the caller's buffer
	CodecS2                        // lossless: byte-shuffled float32, klauspost s2
	CodecZstd                      // lossless: byte-shuffled float32, zstd (fastest level)
	CodecBF16                      // lossy: bfloat16, round to nearest even
	CodecFP16                      // lossy: IEEE half, round to nearest even
	CodecPowerSGD                  // lossy: rank-r PowerSGD with error feedback
)

var codecNames = [...]string{CodecNone: "none", CodecS2: "s2", CodecZstd: "zstd",
	CodecBF16: "bf16", CodecFP16: "fp16", CodecPowerSGD: "powersgd"}

func (c Codec) valid() bool { return c >= CodecNone && c <= CodecPowerSGD }

func (c Codec) String() string {
	if !c.valid() {
		return fmt.Sprintf("codec(%d)", uint8(c))
	}
	return codecNames[c]
}

// Lossless reports whether results are bit-exact.
func (c Codec) Lossless() bool { return c == CodecNone || c == CodecS2 || c == CodecZstd }

// ParseCodec reads a codec name as printed by String.
func ParseCodec(s string) (Codec, error) {
	for c := CodecNone; c <= CodecPowerSGD; c++ {
		if strings.EqualFold(s, codecNames[c]) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("allreduce: unknown codec %q (want one of %s)", s, strings.Join(codecNames[1:], ", "))
}

// wireCodec turns one chunk of float32 into a frame payload and back. Each side of a
// ring (sender, receiver) has its own instance, so instances need not be goroutine-safe.
// PowerSGD is not a wireCodec: it runs above the ring (powersgd.go) and moves its
// factors with CodecNone.
type wireCodec interface {
	// encode returns the payload for src, using dst as scratch when it needs one; the
	// result may alias src or dst.
	encode(dst []byte, src []float32) ([]byte, error)
	// decode checks and decodes payload, which must hold exactly len(dst) values, and
	// adds them to dst (add) or stores them there. payload may alias dst when !add.
	decode(dst []float32, payload []byte, add bool) error
	// quantize rounds v in place to what the codec can carry, so the rank that owns a
	// reduced segment keeps exactly the bits it broadcasts. Idempotent.
	quantize(v []float32)
	// scratch is the size of the dst buffer encode needs for frames of elems values.
	scratch(elems int) int
}

// newWireCodec makes a codec for frames of at most chunk values; decoders refuse to
// expand anything beyond that, whatever a payload claims.
func newWireCodec(c Codec, chunk int) wireCodec {
	switch c {
	case CodecS2, CodecZstd:
		return &shuffleCodec{kind: c, chunk: chunk}
	case CodecBF16:
		return halfCodec{bf: true}
	case CodecFP16:
		return halfCodec{}
	default: // CodecNone, and PowerSGD's factors
		return rawCodec{}
	}
}

// payloadLimit is the largest payload a frame of elems values may carry: compressed
// chunks that would not shrink are sent raw instead.
func payloadLimit(c Codec, elems int) int {
	if c == CodecBF16 || c == CodecFP16 {
		return 2 * elems
	}
	return 4 * elems
}

// rawCodec sends the caller's bytes as they are: no copy on send, and on the all-gather
// the payload is read straight into the caller's buffer.
type rawCodec struct{}

func (rawCodec) scratch(int) int    { return 0 }
func (rawCodec) quantize([]float32) {}

func (rawCodec) encode(_ []byte, src []float32) ([]byte, error) { return f32bytes(src), nil }

func (rawCodec) decode(dst []float32, payload []byte, add bool) error {
	if len(payload) != 4*len(dst) {
		return fmt.Errorf("raw payload of %d bytes for %d values", len(payload), len(dst))
	}
	if add {
		addScaled(dst, payload, 1)
	} else if len(dst) > 0 && &payload[0] != &f32bytes(dst)[0] {
		copy(f32bytes(dst), payload)
	}
	return nil
}
