package model

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// This file writes a state dict the way Python's torch.save(OrderedDict(...), f) does in
// torch 2.11 (torch/serialization.py _save, caffe2/serialize/inline_container.cc
// PyTorchStreamWriter, miniz 3.0.2), byte for byte but for half of the serialization id.
// libtorch's own torch::pickle_save wraps the dict in torch.jit._pickle.restore_type_tag,
// which torch.load(weights_only=True), the default since torch 2.6, refuses; this file
// references only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
// torch.FloatStorage, which it allows.

// stateTensor is one entry of a state dict: float32, contiguous, row-major.
type stateTensor struct {
	name  string
	shape []int64
	data  []float32
}

// The contents of two of torch.save's records.
const (
	formatVersion = "1" // the storages are numbered in the order the pickle meets them
	fileVersion   = "3\n"
)

// writeTorchSave writes tensors as torch.save(OrderedDict(tensors), f) does: a zip of
// stored records under the folder archive (torch uses the file name's stem), each
// tensor in a storage of its own. w receives small writes and should be buffered.
func writeTorchSave(w io.Writer, archive string, tensors []stateTensor) error {
	for _, t := range tensors {
		if n := numel(t.shape); n != int64(len(t.data)) {
			return fmt.Errorf("torch.save: tensor %s has shape %v (%d values) but %d values", t.name, t.shape, n, len(t.data))
		}
	}
	z := &torchZip{w: w, dir: archive + "/"}
	z.record("data.pkl", statePickle(tensors))
	z.record(".format_version", []byte(formatVersion))
	z.record(".storage_alignment", []byte(strconv.Itoa(fieldAlignment)))
	z.record("byteorder", []byte("little"))
	for i, t := range tensors {
		// The host is little-endian (amd64, arm64), as the byteorder record says.
		z.record("data/"+strconv.Itoa(i), unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(t.data))), 4*len(t.data)))
	}
	z.record("version", []byte(fileVersion))
	z.record(".data/serialization_id", z.serializationID())
	return z.close()
}

// Pickle protocol 2 opcodes (Python's Lib/pickle.py).
const (
	opProto      = 0x80
	opBinput     = 'q'
	opLongBinput = 'r'
	opBinget     = 'h'
	opLongBinget = 'j'
	opEmptyTuple = ')'
	opMark       = '('
	opTuple      = 't'
	opTuple1     = 0x85
	opReduce     = 'R'
	opBinunicode = 'X'
	opBinint1    = 'K'
	opBinint2    = 'M'
	opBinint     = 'J'
	opLong1      = 0x8a
	opNewfalse   = 0x89
	opBinpersid  = 'Q'
	opSetitem    = 's'
	opSetitems   = 'u'
	opStop       = '.'
)

// pickleBatch is how many dict items CPython's pickler puts under one SETITEMS.
const pickleBatch = 1000

// The objects a state dict's pickle meets again and again, as their opcodes: the three
// globals, and two string literals of torch's persistent_id, each a single object.
const (
	pklOrderedDict  = "ccollections\nOrderedDict\n"
	pklRebuild      = "ctorch._utils\n_rebuild_tensor_v2\n"
	pklFloatStorage = "ctorch\nFloatStorage\n"
	pklStorage      = "X\x07\x00\x00\x00storage"
	pklCPU          = "X\x03\x00\x00\x00cpu"
)

// statePickle is data.pkl: what CPython's pickler (protocol 2) writes for an OrderedDict
// of CPU float32 tensors with torch.save's persistent ids for their storages.
func statePickle(tensors []stateTensor) []byte {
	p := &pickler{b: []byte{opProto, 2}, seen: map[string]int{}}
	orderedDict := func() { // OrderedDict.__reduce__: (OrderedDict, (), None, None, items)
		p.once(pklOrderedDict)
		p.b = append(p.b, opEmptyTuple, opReduce)
		p.put()
	}
	orderedDict()
	var strides []int64
	for start := 0; start < len(tensors); start += pickleBatch {
		batch := tensors[start:min(start+pickleBatch, len(tensors))]
		if len(batch) > 1 {
			p.b = append(p.b, opMark)
		}
		for i, t := range batch {
			p.str(t.name)
			// Tensor.__reduce_ex__: _rebuild_tensor_v2(storage, storage_offset, size,
			// stride, requires_grad, backward_hooks).
			p.once(pklRebuild)
			p.b = append(p.b, opMark)
			// The storage's persistent id: ('storage', storage_type, key, location, numel).
			p.b = append(p.b, opMark)
			p.once(pklStorage)
			p.once(pklFloatStorage)
			p.str(strconv.Itoa(start + i))
			p.once(pklCPU)
			p.int(int64(len(t.data)))
			p.b = append(p.b, opTuple)
			p.put()
			p.b = append(p.b, opBinpersid)
			p.int(0)
			p.tuple(t.shape)
			strides = rowMajorStrides(strides[:0], t.shape)
			p.tuple(strides)
			p.b = append(p.b, opNewfalse)
			orderedDict()
			p.b = append(p.b, opTuple)
			p.put()
			p.b = append(p.b, opReduce)
			p.put()
		}
		if len(batch) > 1 {
			p.b = append(p.b, opSetitems)
		} else {
			p.b = append(p.b, opSetitem)
		}
	}
	return append(p.b, opStop)
}

// rowMajorStrides appends shape's contiguous strides to s.
func rowMajorStrides(s, shape []int64) []int64 {
	s = append(s, shape...)
	n := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// pickler appends opcodes to b with CPython's memo: every string, non-empty tuple, global
// and reduced object gets the next memo index (BINPUT) when first written, and an object
// met again is fetched by index (BINGET).
type pickler struct {
	b    []byte
	memo int
	seen map[string]int // memo index of the objects written by once, by their opcodes
}

func (p *pickler) put() int {
	i := p.memo
	p.memo++
	if i < 256 {
		p.b = append(p.b, opBinput, byte(i))
	} else {
		p.b = binary.LittleEndian.AppendUint32(append(p.b, opLongBinput), uint32(i))
	}
	return i
}

// once writes the object of opcodes ops the first time and fetches it from the memo after.
func (p *pickler) once(ops string) {
	i, ok := p.seen[ops]
	switch {
	case !ok:
		p.b = append(p.b, ops...)
		p.seen[ops] = p.put()
	case i < 256:
		p.b = append(p.b, opBinget, byte(i))
	default:
		p.b = binary.LittleEndian.AppendUint32(append(p.b, opLongBinget), uint32(i))
	}
}

// str is a string built at run time, a new object each time.
func (p *pickler) str(s string) {
	p.b = binary.LittleEndian.AppendUint32(append(p.b, opBinunicode), uint32(len(s)))
	p.b = append(p.b, s...)
	p.put()
}

// int is Python's save_long for protocol 2, for the counts a state dict holds.
func (p *pickler) int(v int64) {
	switch {
	case v <= math.MaxUint8:
		p.b = append(p.b, opBinint1, byte(v))
	case v <= math.MaxUint16:
		p.b = binary.LittleEndian.AppendUint16(append(p.b, opBinint2), uint16(v))
	case v <= math.MaxInt32:
		p.b = binary.LittleEndian.AppendUint32(append(p.b, opBinint), uint32(v))
	default: // LONG1: little-endian two's complement, a zero byte added to keep the sign
		le := binary.LittleEndian.AppendUint64(nil, uint64(v))
		n := (bits.Len64(uint64(v)) >> 3) + 1
		p.b = append(append(p.b, opLong1, byte(n)), append(le, 0)[:n]...)
	}
}

// tuple is Python's save_tuple for a tuple of ints: TUPLE1..3 up to three items, MARK ...
// TUPLE beyond, and the empty tuple, a singleton, is not memoized.
func (p *pickler) tuple(vs []int64) {
	if len(vs) == 0 {
		p.b = append(p.b, opEmptyTuple)
		return
	}
	if len(vs) > 3 {
		p.b = append(p.b, opMark)
	}
	for _, v := range vs {
		p.int(v)
	}
	if len(vs) > 3 {
		p.b = append(p.b, opTuple)
	} else {
		p.b = append(p.b, opTuple1+byte(len(vs)-1))
	}
	p.put()
}

// Zip constants (APPNOTE.TXT) and the choices of PyTorchStreamWriter's miniz: zip64 mode
// on, every record stored, no timestamps, UTF-8 names, sizes and CRC in a data
// descriptor after the data (none for an empty record).
const (
	sigLocal        = 0x04034b50
	sigDescriptor   = 0x08074b50
	sigCentral      = 0x02014b50
	sigZip64End     = 0x06064b50
	sigZip64Locator = 0x07064b50
	sigEnd          = 0x06054b50
	flagDescriptor  = 0x0008
	flagUTF8        = 0x0800
	zip64ExtraID    = 0x0001
	localHeaderLen  = 30
	fieldAlignment  = 64 // each record's data starts at a multiple of it
	// miniz's zip64 end record: made by 0x031e (UNIX, 3.0), needs 0x002d (4.5, zip64).
	zip64MadeBy = 0x031e
	zip64Needs  = 0x002d
)

// torchZip writes records as PyTorchStreamWriter::writeRecord does through miniz's
// mz_zip_writer_add_mem_ex_v2, and the end as writeEndOfFile does.
type torchZip struct {
	w       io.Writer
	dir     string // the archive's top folder, with its slash
	off     uint64
	central []byte
	entries uint64
	crcs    uint64 // c10::hash_combine of the CRC-32s in the data descriptors written
	scratch []byte
	err     error
}

func (z *torchZip) write(b []byte) {
	if z.err != nil {
		return
	}
	var n int
	n, z.err = z.w.Write(b)
	z.off += uint64(n)
}

// zip64Extra is miniz's zip64 extended information field: the sizes when the record is
// 4 GiB or more, the local header's offset when that is beyond 4 GiB.
func zip64Extra(b []byte, size, compSize, ofs uint64) []byte {
	if size < math.MaxUint32 && ofs < math.MaxUint32 {
		return b
	}
	start := len(b)
	b = binary.LittleEndian.AppendUint16(b, zip64ExtraID)
	b = binary.LittleEndian.AppendUint16(b, 0)
	if size >= math.MaxUint32 {
		b = binary.LittleEndian.AppendUint64(b, size)
		b = binary.LittleEndian.AppendUint64(b, compSize)
	}
	if ofs >= math.MaxUint32 {
		b = binary.LittleEndian.AppendUint64(b, ofs)
	}
	binary.LittleEndian.PutUint16(b[start+2:], uint16(len(b)-start-4))
	return b
}

func (z *torchZip) record(name string, data []byte) {
	if z.err != nil {
		return
	}
	ofs, size := z.off, uint64(len(data))
	nameLen := len(z.dir) + len(name)
	if nameLen > math.MaxUint16 {
		z.err = fmt.Errorf("torch.save: record name %s%s is too long", z.dir, name)
		return
	}
	flags := uint16(flagUTF8)
	if size > 0 {
		flags |= flagDescriptor
	}
	crc := crc32.ChecksumIEEE(data)

	h := binary.LittleEndian.AppendUint32(z.scratch[:0], sigLocal)
	h = binary.LittleEndian.AppendUint16(h, 0) // version needed: stored
	h = binary.LittleEndian.AppendUint16(h, flags)
	h = append(h, make([]byte, 18)...) // method, time, date, CRC and sizes: 0, the descriptor has them
	h = binary.LittleEndian.AppendUint16(h, uint16(nameLen))
	h = binary.LittleEndian.AppendUint16(h, 0) // extra length, below
	h = append(h, z.dir...)
	h = append(h, name...)
	extra := len(h)
	h = zip64Extra(h, size, 0, ofs) // the compressed size is not known yet here
	// caffe2's getPadding: an extra field "FB" of 'Z's puts the data on a 64-byte boundary.
	pad := (fieldAlignment - (ofs+uint64(len(h))+4)%fieldAlignment) % fieldAlignment
	h = binary.LittleEndian.AppendUint16(append(h, 'F', 'B'), uint16(pad))
	for range pad {
		h = append(h, 'Z')
	}
	binary.LittleEndian.PutUint16(h[localHeaderLen-2:], uint16(len(h)-extra))
	z.write(h)
	z.write(data)
	// torch takes a CRC from every write that starts like a data descriptor, so also
	// from a record's data that does.
	if len(data) >= 8 && binary.LittleEndian.Uint32(data) == sigDescriptor {
		z.combineCRC(binary.LittleEndian.Uint32(data[4:]))
	}

	big := size >= math.MaxUint32 || ofs >= math.MaxUint32
	if size > 0 {
		d := binary.LittleEndian.AppendUint32(h[:0], sigDescriptor)
		d = binary.LittleEndian.AppendUint32(d, crc)
		if big {
			d = binary.LittleEndian.AppendUint64(d, size)
			d = binary.LittleEndian.AppendUint64(d, size)
		} else {
			d = binary.LittleEndian.AppendUint32(d, uint32(size))
			d = binary.LittleEndian.AppendUint32(d, uint32(size))
		}
		z.write(d)
		z.combineCRC(crc)
	}
	z.scratch = h[:0]

	c := binary.LittleEndian.AppendUint32(z.central, sigCentral)
	c = binary.LittleEndian.AppendUint16(c, 0) // made by
	c = binary.LittleEndian.AppendUint16(c, 0) // version needed: stored
	c = binary.LittleEndian.AppendUint16(c, flags)
	c = append(c, 0, 0, 0, 0, 0, 0) // method, time, date
	c = binary.LittleEndian.AppendUint32(c, crc)
	c = binary.LittleEndian.AppendUint32(c, uint32(min(size, math.MaxUint32)))
	c = binary.LittleEndian.AppendUint32(c, uint32(min(size, math.MaxUint32)))
	c = binary.LittleEndian.AppendUint16(c, uint16(nameLen))
	extraAt := len(c)
	c = append(c, make([]byte, 12)...) // extra and comment lengths, disk, attributes
	c = binary.LittleEndian.AppendUint32(c, uint32(min(ofs, math.MaxUint32)))
	c = append(c, z.dir...)
	c = append(c, name...)
	n := len(c)
	c = zip64Extra(c, size, size, ofs)
	binary.LittleEndian.PutUint16(c[extraAt:], uint16(len(c)-n))
	z.central = c
	z.entries++
}

// combineCRC is c10::hash_combine(seed, crc).
func (z *torchZip) combineCRC(crc uint32) {
	s := z.crcs
	z.crcs = s ^ (uint64(crc) + 0x9e3779b9 + s<<6 + s>>2)
}

// serializationID is .data/serialization_id: twenty digits of a hash of the record
// names, then twenty of the combined CRC-32s of the records. torch hashes the names with
// libstdc++'s std::hash in the iteration order of an unordered_set, which we do not
// imitate: zeros stand for it. torch only logs the id.
func (z *torchZip) serializationID() []byte {
	return fmt.Appendf(nil, "%020d%020d", 0, z.crcs)
}

// close writes the central directory and miniz's zip64 end records.
func (z *torchZip) close() error {
	cdOfs, cdSize := z.off, uint64(len(z.central))
	z.write(z.central)
	endOfs := z.off
	e := binary.LittleEndian.AppendUint32(z.scratch[:0], sigZip64End)
	e = binary.LittleEndian.AppendUint64(e, 44) // the record's size after this field
	e = binary.LittleEndian.AppendUint16(e, zip64MadeBy)
	e = binary.LittleEndian.AppendUint16(e, zip64Needs)
	e = binary.LittleEndian.AppendUint64(e, 0) // this disk and the directory's: 0
	e = binary.LittleEndian.AppendUint64(e, z.entries)
	e = binary.LittleEndian.AppendUint64(e, z.entries)
	e = binary.LittleEndian.AppendUint64(e, cdSize)
	e = binary.LittleEndian.AppendUint64(e, cdOfs)

	e = binary.LittleEndian.AppendUint32(e, sigZip64Locator)
	e = binary.LittleEndian.AppendUint32(e, 0)
	e = binary.LittleEndian.AppendUint64(e, endOfs)
	e = binary.LittleEndian.AppendUint32(e, 1) // disks

	e = binary.LittleEndian.AppendUint32(e, sigEnd)
	e = binary.LittleEndian.AppendUint32(e, 0) // disks
	e = binary.LittleEndian.AppendUint16(e, uint16(min(z.entries, math.MaxUint16)))
	e = binary.LittleEndian.AppendUint16(e, uint16(min(z.entries, math.MaxUint16)))
	e = binary.LittleEndian.AppendUint32(e, uint32(min(cdSize, math.MaxUint32)))
	e = binary.LittleEndian.AppendUint32(e, uint32(min(cdOfs, math.MaxUint32)))
	e = binary.LittleEndian.AppendUint16(e, 0) // comment
	z.write(e)
	if z.err != nil {
		return fmt.Errorf("torch.save: %w", z.err)
	}
	return nil
}
