package tokenize

import (
	"encoding/binary"
	"fmt"
	"math"
)

// spModel is what we read of a SentencePiece model file (spiece.model, the
// sentencepiece ModelProto): its pieces, its algorithm and its normalization rules.
type spModel struct {
	pieces       []spPiece
	modelType    int // 1 unigram, 2 BPE, 3 word, 4 char
	unkID        int
	byteFallback bool
	charsmap     []byte // normalizer_spec.precompiled_charsmap
}

type spPiece struct {
	piece string
	score float32
	typ   int // 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
}

// SentencePiece piece types.
const (
	spNormal      = 1
	spControl     = 3
	spUserDefined = 4
)

// parseSPModel decodes the protobuf fields of ModelProto that tokenization needs,
// skipping the others.
func parseSPModel(data []byte) (*spModel, error) {
	m := &spModel{modelType: 1}
	err := protoFields(data, func(field int, wire int, v uint64, b []byte) error {
		switch field {
		case 1: // pieces
			p := spPiece{typ: spNormal}
			err := protoFields(b, func(f, w int, v uint64, b []byte) error {
				switch f {
				case 1:
					p.piece = string(b)
				case 2:
					p.score = math.Float32frombits(uint32(v))
				case 3:
					p.typ = int(v)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case 2: // trainer_spec
			return protoFields(b, func(f, w int, v uint64, b []byte) error {
				switch f {
				case 3:
					m.modelType = int(v)
				case 35:
					m.byteFallback = v != 0
				case 40:
					m.unkID = int(int32(v))
				}
				return nil
			})
		case 3: // normalizer_spec
			return protoFields(b, func(f, w int, v uint64, b []byte) error {
				if f == 2 {
					m.charsmap = b
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(m.pieces) == 0 {
		return nil, fmt.Errorf("no pieces")
	}
	return m, nil
}

// protoFields calls f for each field of a protobuf message: v holds varint and
// fixed values, b length-delimited ones.
func protoFields(data []byte, f func(field, wire int, v uint64, b []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return fmt.Errorf("bad field key")
		}
		data = data[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var b []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(data)
			if n <= 0 {
				return fmt.Errorf("field %d: bad varint", field)
			}
			data = data[n:]
		case 1:
			if len(data) < 8 {
				return fmt.Errorf("field %d: truncated", field)
			}
			v, data = binary.LittleEndian.Uint64(data), data[8:]
		case 2:
			l, n := binary.Uvarint(data)
			if n <= 0 || uint64(len(data)-n) < l {
				return fmt.Errorf("field %d: truncated", field)
			}
			b, data = data[n:n+int(l)], data[n+int(l):]
		case 5:
			if len(data) < 4 {
				return fmt.Errorf("field %d: truncated", field)
			}
			v, data = uint64(binary.LittleEndian.Uint32(data)), data[4:]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", field, wire)
		}
		if err := f(field, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}
