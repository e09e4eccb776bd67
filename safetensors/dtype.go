package safetensors

import "fmt"

// DType is a tensor element type. The constants are in the order of the
// upstream Rust enum (increasing alignment), because the writer sorts tensors
// by descending DType and must match safetensors' own file layout byte for byte.
type DType uint8

// Element types, named as they appear in the header.
const (
	BOOL DType = iota
	F4
	F6_E2M3
	F6_E3M2
	U8
	I8
	F8_E5M2
	F8_E4M3
	F8_E8M0
	I16
	U16
	F16
	BF16
	I32
	U32
	F32
	C64
	F64
	I64
	U64
	numDTypes
)

var dtypeNames = [numDTypes]string{
	"BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
	"I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
}

var dtypeBits = [numDTypes]uint64{
	8, 4, 6, 6, 8, 8, 8, 8, 8,
	16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64,
}

func (d DType) String() string {
	if d < numDTypes {
		return dtypeNames[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Bits is the width of one element; F4 and F6 are narrower than a byte.
func (d DType) Bits() int {
	if d < numDTypes {
		return int(dtypeBits[d])
	}
	return 0
}

// ParseDType maps a header dtype name such as "F32" to its DType.
func ParseDType(s string) (DType, error) {
	for i, n := range dtypeNames {
		if n == s {
			return DType(i), nil
		}
	}
	return 0, fmt.Errorf("unknown dtype %q", s)
}

// byteSize is the number of bytes a tensor of this dtype and shape occupies,
// failing on negative dimensions, overflow and sub-byte tensors that do not
// end on a byte boundary.
func byteSize(d DType, shape []int64) (uint64, error) {
	if d >= numDTypes {
		return 0, fmt.Errorf("unknown dtype %d", uint8(d))
	}
	n := dtypeBits[d]
	for _, dim := range shape {
		if dim < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", dim, shape)
		}
		if dim != 0 && n > ^uint64(0)/uint64(dim) {
			return 0, fmt.Errorf("shape %v of %s overflows", shape, d)
		}
		n *= uint64(dim)
	}
	if n%8 != 0 {
		return 0, fmt.Errorf("shape %v of %s is %d bits, not a whole number of bytes", shape, d, n)
	}
	return n / 8, nil
}
