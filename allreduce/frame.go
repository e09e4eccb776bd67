package allreduce

import (
	"encoding/binary"
	"fmt"
)

// Frame header, little-endian, 36 bytes, followed by PayloadLen bytes:
//
//	0:3   magic "bnr"
//	3     version (2: the shared-memory offer follows the handshake)
//	4     codec of the payload
//	5     op (1 sum, 2 average)
//	6:8   sender's rank
//	8:12  ring generation
//	12:16 operation sequence number within the generation
//	16:24 element count of the whole operation (the caller's buffer)
//	24:28 frame index within the operation, per link
//	28:32 element count of this frame
//	32:36 payload length
//
// Every field but the payload length is known to the receiver in advance, so a frame
// that differs in any of them is rejected before its payload is read.
const (
	frameHeaderSize = 36
	frameVersion    = 2
)

var frameMagic = [3]byte{'b', 'n', 'r'}

// Op is the reduction.
type Op uint8

const (
	OpSum Op = iota + 1
	OpAvg
)

func (o Op) String() string {
	switch o {
	case OpSum:
		return "sum"
	case OpAvg:
		return "avg"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

type frameHeader struct {
	Codec      Codec
	Op         Op
	From       uint16
	Generation uint32
	Seq        uint32
	Total      uint64
	Index      uint32
	Elems      uint32
	PayloadLen uint32
}

func (h *frameHeader) put(b *[frameHeaderSize]byte) {
	copy(b[:3], frameMagic[:])
	b[3] = frameVersion
	b[4] = byte(h.Codec)
	b[5] = byte(h.Op)
	binary.LittleEndian.PutUint16(b[6:], h.From)
	binary.LittleEndian.PutUint32(b[8:], h.Generation)
	binary.LittleEndian.PutUint32(b[12:], h.Seq)
	binary.LittleEndian.PutUint64(b[16:], h.Total)
	binary.LittleEndian.PutUint32(b[24:], h.Index)
	binary.LittleEndian.PutUint32(b[28:], h.Elems)
	binary.LittleEndian.PutUint32(b[32:], h.PayloadLen)
}

// decodeFrameHeader parses and checks a header on its own: magic, version, known codec
// and op, element count within the frame limit and payload length within what the codec
// can produce for that many elements.
func decodeFrameHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < frameHeaderSize {
		return h, fmt.Errorf("frame header: %d bytes, want %d", len(b), frameHeaderSize)
	}
	if [3]byte(b[:3]) != frameMagic {
		return h, fmt.Errorf("frame header: bad magic %q", b[:3])
	}
	if b[3] != frameVersion {
		return h, fmt.Errorf("frame header: version %d, want %d", b[3], frameVersion)
	}
	h = frameHeader{
		Codec:      Codec(b[4]),
		Op:         Op(b[5]),
		From:       binary.LittleEndian.Uint16(b[6:]),
		Generation: binary.LittleEndian.Uint32(b[8:]),
		Seq:        binary.LittleEndian.Uint32(b[12:]),
		Total:      binary.LittleEndian.Uint64(b[16:]),
		Index:      binary.LittleEndian.Uint32(b[24:]),
		Elems:      binary.LittleEndian.Uint32(b[28:]),
		PayloadLen: binary.LittleEndian.Uint32(b[32:]),
	}
	switch {
	case !h.Codec.valid() || h.Codec == CodecPowerSGD:
		return h, fmt.Errorf("frame header: field codec: %d is not a wire codec", b[4])
	case h.Op != OpSum && h.Op != OpAvg:
		return h, fmt.Errorf("frame header: field op: unknown op %d", b[5])
	case h.Elems == 0 || h.Elems > maxChunkElems:
		return h, fmt.Errorf("frame header: field elems: %d, want 1 to %d", h.Elems, maxChunkElems)
	case uint64(h.Elems) > h.Total:
		return h, fmt.Errorf("frame header: field elems: %d exceeds total %d", h.Elems, h.Total)
	case int(h.PayloadLen) > payloadLimit(h.Codec, int(h.Elems)):
		return h, fmt.Errorf("frame header: field payload length: %d exceeds %d for %d %v values",
			h.PayloadLen, payloadLimit(h.Codec, int(h.Elems)), h.Elems, h.Codec)
	}
	return h, nil
}

// mismatch names the first field in which got differs from the header the schedule
// expects, or returns "".
func (h *frameHeader) mismatch(want *frameHeader) string {
	switch {
	case h.Codec != want.Codec:
		return fmt.Sprintf("codec %v, want %v", h.Codec, want.Codec)
	case h.Op != want.Op:
		return fmt.Sprintf("op %v, want %v", h.Op, want.Op)
	case h.From != want.From:
		return fmt.Sprintf("sender rank %d, want %d", h.From, want.From)
	case h.Generation != want.Generation:
		return fmt.Sprintf("generation %d, want %d", h.Generation, want.Generation)
	case h.Seq != want.Seq:
		return fmt.Sprintf("operation %d, want %d", h.Seq, want.Seq)
	case h.Total != want.Total:
		return fmt.Sprintf("buffer of %d values, want %d", h.Total, want.Total)
	case h.Index != want.Index:
		return fmt.Sprintf("frame index %d, want %d", h.Index, want.Index)
	case h.Elems != want.Elems:
		return fmt.Sprintf("%d values in frame, want %d", h.Elems, want.Elems)
	}
	return ""
}
