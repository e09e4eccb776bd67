// Package safetensors reads and writes the Hugging Face safetensors format:
// an 8-byte little-endian header length, a JSON header mapping tensor names to
// dtype, shape and data_offsets (plus optional string metadata under
// "__metadata__"), then the tensors' bytes back to back.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header, as upstream does, so that a corrupt
// length cannot make a reader allocate or scan gigabytes.
const MaxHeaderSize = 100_000_000

// Info describes one tensor.
type Info struct {
	Name  string
	DType DType
	Shape []int64
}

// Tensor is a tensor and its little-endian, row-major bytes. Tensors returned
// by Open alias the file mapping and are valid until File.Close.
type Tensor struct {
	Info
	Data []byte
}

// File is a parsed safetensors file.
type File struct {
	// Metadata is the "__metadata__" object, nil when the header has none.
	Metadata map[string]string
	// Tensors are in file order, which is ascending data offset.
	Tensors []Tensor

	path  string
	index map[string]int
	unmap func() error
}

// Open maps the file at path into memory and parses it without copying tensor data.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	defer fd.Close()
	buf, unmap, err := mapFile(fd)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	f, err := Parse(buf)
	if err != nil {
		unmap()
		return nil, withFile(err, path)
	}
	f.path, f.unmap = path, unmap
	return f, nil
}

// Close releases the mapping; Data slices of its tensors must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap = nil
	if err != nil {
		return &Error{File: f.path, Err: err}
	}
	return nil
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (Tensor, error) {
	i, ok := f.index[name]
	if !ok {
		return Tensor{}, &Error{File: f.path, Tensor: name, Err: errors.New("not in file")}
	}
	return f.Tensors[i], nil
}

// header is one tensor entry as declared, before validation.
type header struct {
	Info
	begin, end uint64
}

// Parse parses a whole safetensors file held in buf. The returned tensors alias buf.
func Parse(buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, errorf("", "file is %d bytes, shorter than the 8-byte header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderSize {
		return nil, errorf("", "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, errorf("", "header length %d runs past the end of the %d-byte file", n, len(buf))
	}
	meta, hdrs, err := parseHeader(buf[8 : 8+n])
	if err != nil {
		return nil, err
	}
	// Older writers ordered entries by name only; the data is laid out by offset.
	slices.SortFunc(hdrs, func(a, b header) int {
		if c := cmpUint(a.begin, b.begin); c != 0 {
			return c
		}
		return cmpUint(a.end, b.end)
	})
	data := buf[8+n:]
	f := &File{Metadata: meta, Tensors: make([]Tensor, len(hdrs)), index: make(map[string]int, len(hdrs))}
	var next uint64
	for i, h := range hdrs {
		if h.begin != next || h.end < h.begin {
			return nil, errorf(h.Name, "data_offsets [%d, %d] are not contiguous: expected to start at %d", h.begin, h.end, next)
		}
		size, err := byteSize(h.DType, h.Shape)
		if err != nil {
			return nil, errorf(h.Name, "%v", err)
		}
		if h.end-h.begin != size {
			return nil, errorf(h.Name, "shape %v of %s needs %d bytes, data_offsets [%d, %d] span %d", h.Shape, h.DType, size, h.begin, h.end, h.end-h.begin)
		}
		if h.end > uint64(len(data)) {
			return nil, errorf(h.Name, "data_offsets [%d, %d] run past the %d bytes of data", h.begin, h.end, len(data))
		}
		next = h.end
		f.Tensors[i] = Tensor{Info: h.Info, Data: data[h.begin:h.end:h.end]}
		f.index[h.Name] = i
	}
	if next != uint64(len(data)) {
		return nil, errorf("", "tensors cover %d bytes of data but the file holds %d", next, len(data))
	}
	return f, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseHeader decodes the JSON header token by token, so that duplicate
// names, missing fields and non-integer numbers are reported precisely.
func parseHeader(hdr []byte) (map[string]string, []header, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errorf("", "header is not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, errorf("", "header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	bad := func(name string, err error) error {
		return errorf(name, "header at byte %d: %v", dec.InputOffset(), err)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, bad("", err)
	}
	var (
		meta map[string]string
		hdrs []header
		seen = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, bad("", err)
		}
		name := tok.(string) // object keys are always strings
		if seen[name] {
			return nil, nil, errorf(name, "appears twice in the header")
		}
		seen[name] = true
		if name == "__metadata__" {
			if meta, err = parseMetadata(dec); err != nil {
				return nil, nil, bad("", fmt.Errorf("__metadata__: %w", err))
			}
			continue
		}
		h, err := parseEntry(dec, name)
		if err != nil {
			return nil, nil, bad(name, err)
		}
		hdrs = append(hdrs, h)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, bad("", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, bad("", errors.New("data after the header object"))
	}
	return meta, hdrs, nil
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	meta := map[string]string{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		v, err := dec.Token()
		if err != nil {
			return nil, err
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("value of %q is %v, want a string", k, v)
		}
		if _, dup := meta[k.(string)]; dup {
			return nil, fmt.Errorf("key %q appears twice", k)
		}
		meta[k.(string)] = s
	}
	_, err := dec.Token()
	return meta, err
}

func parseEntry(dec *json.Decoder, name string) (header, error) {
	h := header{Info: Info{Name: name}}
	if err := expectDelim(dec, '{'); err != nil {
		return h, err
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return h, err
		}
		switch field := tok.(string); field {
		case "dtype":
			v, err := dec.Token()
			if err != nil {
				return h, err
			}
			s, ok := v.(string)
			if !ok {
				return h, fmt.Errorf("dtype is %v, want a string", v)
			}
			if h.DType, err = ParseDType(s); err != nil {
				return h, err
			}
			haveDType = true
		case "shape":
			dims, err := uintArray(dec, field)
			if err != nil {
				return h, err
			}
			h.Shape = make([]int64, len(dims))
			for i, d := range dims {
				if d > 1<<63-1 {
					return h, fmt.Errorf("shape dimension %d is too large", d)
				}
				h.Shape[i] = int64(d)
			}
			haveShape = true
		case "data_offsets":
			offs, err := uintArray(dec, field)
			if err != nil {
				return h, err
			}
			if len(offs) != 2 {
				return h, fmt.Errorf("data_offsets has %d values, want 2", len(offs))
			}
			h.begin, h.end = offs[0], offs[1]
			haveOffsets = true
		default:
			// Upstream ignores fields it does not know; so do we.
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return h, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return h, err
	}
	switch {
	case !haveDType:
		return h, errors.New("missing dtype")
	case !haveShape:
		return h, errors.New("missing shape")
	case !haveOffsets:
		return h, errors.New("missing data_offsets")
	}
	return h, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("found %v, want %q", tok, d)
	}
	return nil
}

func uintArray(dec *json.Decoder, field string) ([]uint64, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	vals := []uint64{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s holds %v, want a non-negative integer", field, tok)
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s holds %s, want a non-negative integer", field, num)
		}
		vals = append(vals, v)
	}
	_, err := dec.Token()
	return vals, err
}
