package report

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Event is one event of an event file, as ReadEvents returns it: the file version, a
// summary's scalars, or a session restart.
type Event struct {
	WallTime    float64
	Step        int64
	FileVersion string
	Scalars     []TaggedValue
	Restart     bool // a SessionLog START
}

// TaggedValue is one scalar of a summary.
type TaggedValue struct {
	Tag   string
	Value float32
}

// ReadEvents reads an event file back, checking each record's framing and CRCs; name
// (the path) is used in errors. It decodes the fields TensorBoard writes and skips the
// others.
func ReadEvents(r io.Reader, name string) ([]Event, error) {
	br := bufio.NewReader(r)
	var events []Event
	for off := int64(0); ; {
		var hdr [12]byte
		if _, err := io.ReadFull(br, hdr[:]); err == io.EOF {
			return events, nil
		} else if err != nil {
			return events, fmt.Errorf("%s: record at byte %d: %w", name, off, err)
		}
		if got, want := binary.LittleEndian.Uint32(hdr[8:]), maskedCRC(hdr[:8]); got != want {
			return events, fmt.Errorf("%s: record at byte %d: length CRC %08x, want %08x", name, off, got, want)
		}
		n := binary.LittleEndian.Uint64(hdr[:8])
		if n > 1<<30 {
			return events, fmt.Errorf("%s: record at byte %d: length %d", name, off, n)
		}
		data := make([]byte, n+4)
		if _, err := io.ReadFull(br, data); err != nil {
			return events, fmt.Errorf("%s: record at byte %d: %w", name, off, io.ErrUnexpectedEOF)
		}
		if got, want := binary.LittleEndian.Uint32(data[n:]), maskedCRC(data[:n]); got != want {
			return events, fmt.Errorf("%s: record at byte %d: data CRC %08x, want %08x", name, off, got, want)
		}
		e, err := decodeEvent(data[:n])
		if err != nil {
			return events, fmt.Errorf("%s: record at byte %d: %w", name, off, err)
		}
		events = append(events, e)
		off += int64(len(hdr)) + int64(len(data))
	}
}

func decodeEvent(b []byte) (Event, error) {
	var e Event
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == eventWallTime && typ == protowire.Fixed64Type:
			e.WallTime = math.Float64frombits(x)
		case num == eventStep && typ == protowire.VarintType:
			e.Step = int64(x)
		case num == eventFileVersion && typ == protowire.BytesType:
			e.FileVersion = string(v)
		case num == eventSessionLog && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				if num == sessionStatus && typ == protowire.VarintType && x == sessionStart {
					e.Restart = true
				}
				return nil
			})
		case num == eventSummary && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != summaryValue || typ != protowire.BytesType {
					return nil
				}
				var tv TaggedValue
				simple := false
				err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == valueTag && typ == protowire.BytesType:
						tv.Tag = string(v)
					case num == valueSimple && typ == protowire.Fixed32Type:
						tv.Value, simple = math.Float32frombits(uint32(x)), true
					}
					return nil
				})
				if simple {
					e.Scalars = append(e.Scalars, tv)
				}
				return err
			})
		}
		return nil
	})
	return e, err
}

// fields calls fn with each field of the protobuf message b: its number and wire type,
// and its bytes (BytesType) or its number value (varint and fixed types).
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad protobuf: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("bad protobuf field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
