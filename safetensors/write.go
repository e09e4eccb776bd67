package safetensors

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bertnode/bertnode/internal/atomicfile"
)

// encoder streams a safetensors file to w: the header first, then each
// tensor's bytes in file order, written straight from the caller's slice.
type encoder struct {
	w     io.Writer
	order []Info
	sizes []uint64
	next  int
}

func newEncoder(w io.Writer, infos []Info, metadata map[string]string) (*encoder, error) {
	order := slices.Clone(infos)
	// Upstream's order: descending dtype alignment, then name. Tensors with
	// the widest elements come first so every tensor stays aligned.
	slices.SortStableFunc(order, func(a, b Info) int {
		if a.DType != b.DType {
			return int(b.DType) - int(a.DType)
		}
		return strings.Compare(a.Name, b.Name)
	})
	e := &encoder{w: w, order: order, sizes: make([]uint64, len(order))}
	hdr, err := e.header(metadata)
	if err != nil {
		return nil, err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		return nil, &Error{Err: err}
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, &Error{Err: err}
	}
	return e, nil
}

// header renders the JSON exactly as serde_json does for upstream's
// Metadata: compact, "__metadata__" first, tensors in file order, padded
// with spaces to a multiple of 8 bytes.
func (e *encoder) header(metadata map[string]string) ([]byte, error) {
	b := []byte{'{'}
	if metadata != nil {
		// Upstream keeps metadata in a HashMap, so its key order is arbitrary
		// when there are several keys; sorted keys make ours reproducible.
		b = append(b, `"__metadata__":{`...)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, errorf("", "metadata %q is not valid UTF-8", k)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, metadata[k])
		}
		b = append(b, '}')
		if len(e.order) > 0 {
			b = append(b, ',')
		}
	}
	var offset uint64
	for i, t := range e.order {
		if i > 0 && t.Name == e.order[i-1].Name {
			return nil, errorf(t.Name, "given twice")
		}
		if t.Name == "__metadata__" || !utf8.ValidString(t.Name) {
			return nil, errorf(t.Name, "is not a valid tensor name")
		}
		size, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return nil, errorf(t.Name, "%v", err)
		}
		e.sizes[i] = size
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t.Name)
		b = append(b, `:{"dtype":"`...)
		b = append(b, t.DType.String()...)
		b = append(b, `","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendUint(b, offset, 10)
		b = append(b, ',')
		offset += size
		b = strconv.AppendUint(b, offset, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	if len(b) > MaxHeaderSize {
		return nil, errorf("", "header of %d bytes exceeds the limit of %d", len(b), MaxHeaderSize)
	}
	return b, nil
}

// appendString quotes s the way serde_json does: only '"', '\\' and control
// characters are escaped, everything else (including non-ASCII) is copied.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (e *encoder) writeTensor(name string, data []byte) error {
	if e.next == len(e.order) {
		return errorf(name, "written after all %d tensors", len(e.order))
	}
	if want := e.order[e.next].Name; name != want {
		return errorf(name, "written out of order: the file expects %q next", want)
	}
	if uint64(len(data)) != e.sizes[e.next] {
		t := e.order[e.next]
		return errorf(name, "has %d bytes, shape %v of %s needs %d", len(data), t.Shape, t.DType, e.sizes[e.next])
	}
	if _, err := e.w.Write(data); err != nil {
		return &Error{Tensor: name, Err: err}
	}
	e.next++
	return nil
}

func (e *encoder) finish() error {
	if e.next < len(e.order) {
		return errorf(e.order[e.next].Name, "never written (%d of %d tensors written)", e.next, len(e.order))
	}
	return nil
}

// Writer writes a safetensors file one tensor at a time, so a caller can
// copy tensors off an accelerator one by one instead of holding the whole
// model in host memory. The file appears at its path only on Commit.
type Writer struct {
	path string
	f    *atomicfile.File
	bw   *bufio.Writer
	enc  *encoder
}

// Create starts a file at path holding the described tensors. Tensors must
// then be written in the order Order returns.
func Create(path string, infos []Info, metadata map[string]string) (*Writer, error) {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	// Large tensors bypass the buffer; it only gathers the header and small ones.
	bw := bufio.NewWriterSize(f, 1<<20)
	enc, err := newEncoder(bw, infos, metadata)
	if err != nil {
		f.Close()
		return nil, withFile(err, path)
	}
	return &Writer{path: path, f: f, bw: bw, enc: enc}, nil
}

// Order is the order in which WriteTensor must be called.
func (w *Writer) Order() []Info { return w.enc.order }

// WriteTensor appends the bytes of the next tensor in Order.
func (w *Writer) WriteTensor(name string, data []byte) error {
	return withFile(w.enc.writeTensor(name, data), w.path)
}

// Commit checks that every tensor was written and atomically publishes the file.
func (w *Writer) Commit() error {
	if err := w.enc.finish(); err != nil {
		return withFile(err, w.path)
	}
	if err := w.bw.Flush(); err != nil {
		return &Error{File: w.path, Err: err}
	}
	if err := w.f.Commit(); err != nil {
		return &Error{File: w.path, Err: err}
	}
	return nil
}

// Close discards the file unless it was committed.
func (w *Writer) Close() error { return w.f.Close() }

// Save writes tensors and metadata to path atomically, laid out exactly as
// Python's safetensors.torch.save_file lays them out.
func Save(path string, tensors []Tensor, metadata map[string]string) error {
	infos := make([]Info, len(tensors))
	byName := make(map[string][]byte, len(tensors))
	for i, t := range tensors {
		infos[i] = t.Info
		byName[t.Name] = t.Data
	}
	w, err := Create(path, infos, metadata)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, info := range w.Order() {
		if err := w.WriteTensor(info.Name, byName[info.Name]); err != nil {
			return err
		}
	}
	return w.Commit()
}

func withFile(err error, path string) error {
	var e *Error
	if errors.As(err, &e) && e.File == "" {
		e.File = path
	}
	return err
}
