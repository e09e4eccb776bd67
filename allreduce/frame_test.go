package allreduce

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFrameHeaderRoundTrip(t *testing.T) {
	h := frameHeader{Codec: CodecZstd, Op: OpAvg, From: 63, Generation: 7, Seq: 1 << 30, Total: 1 << 40,
		Index: 12345, Elems: 65536, PayloadLen: 1000}
	var b [frameHeaderSize]byte
	h.put(&b)
	got, err := decodeFrameHeader(b[:])
	if err != nil || got != h {
		t.Fatalf("decode(put(h)) = %+v, %v; want %+v", got, err, h)
	}
	if m := got.mismatch(&h); m != "" {
		t.Fatalf("mismatch with itself: %s", m)
	}
	w := h
	w.Index++
	if m := got.mismatch(&w); !strings.Contains(m, "frame index") {
		t.Fatalf("mismatch = %q, want the frame index named", m)
	}
}

func TestFrameHeaderRejects(t *testing.T) {
	good := frameHeader{Codec: CodecBF16, Op: OpSum, Generation: 1, Total: 100, Elems: 10, PayloadLen: 20}
	for _, c := range []struct {
		name  string
		edit  func(b []byte)
		field string
	}{
		{"short", nil, "bytes"},
		{"magic", func(b []byte) { b[0] = 'x' }, "magic"},
		{"version", func(b []byte) { b[3] = 9 }, "version"},
		{"codec", func(b []byte) { b[4] = byte(CodecPowerSGD) }, "codec"},
		{"op", func(b []byte) { b[5] = 0 }, "op"},
		{"zero elems", func(b []byte) { b[28], b[29] = 0, 0 }, "elems"},
		{"elems over total", func(b []byte) { b[16] = 5 }, "exceeds total"},
		{"huge payload", func(b []byte) { b[32], b[35] = 0xff, 0xff }, "payload length"},
		{"payload over codec", func(b []byte) { b[32] = 21 }, "payload length"},
	} {
		var b [frameHeaderSize]byte
		good.put(&b)
		in := b[:]
		if c.edit == nil {
			in = in[:10]
		} else {
			c.edit(in)
		}
		if _, err := decodeFrameHeader(in); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: err = %v, want one naming %q", c.name, err, c.field)
		}
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder and, when the header is
// accepted, to the payload decoder of its codec: neither may panic, a decoded header
// must re-encode to the same bytes, and a decoded payload must fill exactly its values.
func FuzzDecodeFrame(f *testing.F) {
	rng := rand.New(rand.NewPCG(15, 16))
	src := make([]float32, 300)
	gradientLike(rng, src)
	for _, kind := range []Codec{CodecNone, CodecS2, CodecZstd, CodecBF16, CodecFP16} {
		for _, v := range [][]float32{src, make([]float32, 64), src[:1]} {
			c := newWireCodec(kind, 1<<16)
			payload, _ := c.encode(make([]byte, c.scratch(len(v))), v)
			h := frameHeader{Codec: kind, Op: OpSum, From: 1, Generation: 2, Seq: 3, Total: 1000,
				Index: 4, Elems: uint32(len(v)), PayloadLen: uint32(len(payload))}
			var b [frameHeaderSize]byte
			h.put(&b)
			f.Add(append(b[:], payload...))
		}
	}
	f.Add([]byte("bnr"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeFrameHeader(data)
		if err != nil {
			return
		}
		var b [frameHeaderSize]byte
		h.put(&b)
		if !bytes.Equal(b[:], data[:frameHeaderSize]) {
			t.Fatalf("header re-encodes differently: %x vs %x", b, data[:frameHeaderSize])
		}
		payload := data[frameHeaderSize:]
		if int(h.PayloadLen) != len(payload) || h.Elems > 1<<16 {
			return
		}
		c := newWireCodec(h.Codec, 1<<16)
		dst := make([]float32, h.Elems)
		_ = c.decode(dst, payload, true)
		if err := c.decode(dst, payload, false); err == nil {
			// a payload that decodes must re-encode to something that decodes the same
			p2, err := c.encode(make([]byte, c.scratch(len(dst))), dst)
			if err != nil {
				t.Fatal(err)
			}
			again := make([]float32, len(dst))
			if err := newWireCodec(h.Codec, 1<<16).decode(again, p2, false); err != nil {
				t.Fatalf("re-encoded payload does not decode: %v", err)
			}
			if i := sameBits(again, dst); i >= 0 && h.Codec.Lossless() {
				t.Fatalf("lossless round trip differs at %d", i)
			}
		}
	})
}
