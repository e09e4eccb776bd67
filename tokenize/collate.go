package tokenize

import "fmt"

// Padding says how long the rows of a batch are.
type Padding int

const (
	// PadLongest pads each batch to its longest encoding (dynamic padding).
	PadLongest Padding = iota
	// PadMaxLength pads every batch to the collator's maximum length.
	PadMaxLength
)

func (p Padding) String() string {
	switch p {
	case PadLongest:
		return "longest"
	case PadMaxLength:
		return "max_length"
	}
	return fmt.Sprintf("Padding(%d)", int(p))
}

// ParsePadding reads the names used in job specs: "longest" or "max_length".
func ParsePadding(s string) (Padding, error) {
	switch s {
	case "longest":
		return PadLongest, nil
	case "max_length":
		return PadMaxLength, nil
	}
	return 0, fmt.Errorf("padding %q: want longest or max_length", s)
}

// Batch holds B encodings as row-major [B, L] int64 matrices, ready to become
// tensors without another copy.
type Batch struct {
	Size, Len     int
	InputIDs      []int64
	TokenTypeIDs  []int64
	AttentionMask []int64 // 1 for tokens, 0 for padding
	Labels        []int64 // token labels padded with IgnoreLabel; nil when the encodings have none
}

// Collator pads encodings into batches. It owns the batch buffers and reuses them,
// so collation does not allocate once the buffers have grown to the largest batch;
// a Batch is valid until the next call. A Collator is not safe for concurrent use.
type Collator struct {
	padding Padding
	maxLen  int
	padID   int64
	batch   Batch
}

// NewCollator makes a collator. maxLen is the row length for PadMaxLength and, when
// positive, the longest encoding PadLongest accepts.
func NewCollator(padding Padding, maxLen int, padID int32) (*Collator, error) {
	switch {
	case padding != PadLongest && padding != PadMaxLength:
		return nil, fmt.Errorf("tokenize: unknown padding %v", padding)
	case padding == PadMaxLength && maxLen <= 0:
		return nil, fmt.Errorf("tokenize: padding max_length needs a positive max length, got %d", maxLen)
	case maxLen < 0:
		return nil, fmt.Errorf("tokenize: negative max length %d", maxLen)
	}
	return &Collator{padding: padding, maxLen: maxLen, padID: int64(padID)}, nil
}

// Clone is a collator of c's settings with buffers of its own, for another goroutine.
func (c *Collator) Clone() *Collator {
	return &Collator{padding: c.padding, maxLen: c.maxLen, padID: c.padID}
}

// Collate pads encs into the collator's batch buffers.
func (c *Collator) Collate(encs []*Encoding) (*Batch, error) {
	if len(encs) == 0 {
		return nil, fmt.Errorf("tokenize: empty batch")
	}
	longest := 0
	labelled := encs[0].Labels != nil
	for i, e := range encs {
		longest = max(longest, e.Len())
		if (e.Labels != nil) != labelled {
			return nil, fmt.Errorf("tokenize: batch mixes labelled and unlabelled encodings (row %d)", i)
		}
		if c.maxLen > 0 && e.Len() > c.maxLen {
			return nil, fmt.Errorf("tokenize: row %d has %d tokens, more than max length %d", i, e.Len(), c.maxLen)
		}
	}
	L := longest
	if c.padding == PadMaxLength {
		L = c.maxLen
	}
	b := &c.batch
	b.Size, b.Len = len(encs), L
	n := len(encs) * L
	b.InputIDs = grow(b.InputIDs, n)
	b.TokenTypeIDs = grow(b.TokenTypeIDs, n)
	b.AttentionMask = grow(b.AttentionMask, n)
	if labelled {
		b.Labels = grow(b.Labels, n)
	} else {
		b.Labels = nil
	}
	for r, e := range encs {
		row := r * L
		widen(b.InputIDs[row:row+L], e.InputIDs, c.padID)
		widen(b.TokenTypeIDs[row:row+L], e.TokenTypeIDs, 0)
		mask := b.AttentionMask[row : row+L]
		for j := range mask[:e.Len()] {
			mask[j] = 1
		}
		clear(mask[e.Len():])
		if labelled {
			widen(b.Labels[row:row+L], e.Labels, IgnoreLabel)
		}
	}
	return b, nil
}

func grow(buf []int64, n int) []int64 {
	if cap(buf) < n {
		return make([]int64, n)
	}
	return buf[:n]
}

// widen copies src into dst as int64 and fills the rest of dst with pad.
func widen(dst []int64, src []int32, pad int64) {
	for i, v := range src {
		dst[i] = int64(v)
	}
	for i := len(src); i < len(dst); i++ {
		dst[i] = pad
	}
}
