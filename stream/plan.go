package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"

	"github.com/bertnode/bertnode/shard"
)

// planVersion is the plan's format; a plan of another version is refused.
const planVersion = 1

// Options shape a plan.
type Options struct {
	// BlockRecords is the number of consecutive records per block (cluster.block_records).
	BlockRecords int
	// EvalSplit holds out this fraction of the records (see HeldOut); 0 holds none.
	EvalSplit float64
	// Task is the job's task; classify needs two classes in the training records;
	// regression's labels are scores (shard.Spec.Scores).
	Task string
	// Name is the file's name in the plan, positions and errors (the path as
	// submitted, when path is a blob); default path.
	Name string
}

// Plan is a dataset file cut into blocks of records, with the eval split and the
// labels: everything a node needs to order, fetch and parse records. It is JSON;
// json.Unmarshal checks it.
type Plan struct {
	Version int    `json:"version"`
	File    string `json:"file"` // Options.Name
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"` // hex, of the whole file
	// Data is the spec the file was read with, its format filled in.
	Data shard.Spec `json:"data"`
	// Records is N, the good records; Train those not held out.
	Records   int     `json:"records"`
	Train     int     `json:"train"`
	EvalSplit float64 `json:"eval_split,omitempty"`
	// HeldOut has bit i%8 of byte i/8 set when record i is held out; nil when none is.
	HeldOut      []byte  `json:"held_out,omitempty"`
	BlockRecords int     `json:"block_records"`
	Blocks       []Block `json:"-"` // in JSON as "blocks", by column (blockColumns)
	// Head is the file's bytes before its first record can start (a byte order mark, a
	// CSV header): parsing a block alone needs them.
	Head []byte `json:"head,omitempty"`
	// Labels are the labels and tags of the training records in id order, as
	// shard.CollectLabels numbers them (train numbers them the same way); for
	// regression the outputs as shard.CollectScores names them.
	Labels []string  `json:"labels,omitempty"`
	Bad    shard.Bad `json:"bad"` // records skipped with skip_bad_records

	train []int32 // training records per block
}

// Block is a run of consecutive records and the bytes that hold them.
type Block struct {
	Start, End int64 // byte range: the first record's frame to the end of the last one's
	// Line and Index are the first record's shard.Pos line and SQuAD question index.
	Line, Index int
	CRC         uint32 // CRC-32C (Castagnoli) of the bytes [Start, End)
	// First and Count are the record IDs [First, First+Count), implied by BlockRecords.
	First, Count int
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Build scans the file at path once and plans it. Memory grows with the plan only:
// a bit per record for the eval split and a few words per block.
func Build(path string, data shard.Spec, opts Options) (*Plan, error) {
	name := opts.Name
	if name == "" {
		name = path
	}
	switch {
	case opts.BlockRecords < 1:
		return nil, fmt.Errorf("%s: plan: block_records %d: must be positive", name, opts.BlockRecords)
	case opts.EvalSplit < 0 || opts.EvalSplit >= 1:
		return nil, fmt.Errorf("%s: plan: eval_split %g: must be in [0, 1)", name, opts.EvalSplit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data.Scores = opts.Task == "regression"
	data.Unlabeled = opts.Task == "embed" || opts.Task == "mlm" // text pairs, or texts alone
	data.Single = opts.Task == "mlm"
	hr := &hashingReaderAt{f: f, h: sha256.New()}
	r, err := shard.OpenReaderAt(data, name, hr, st.Size())
	if err != nil {
		return nil, err
	}
	if data.Format == "" {
		data.Format, _ = shard.FormatOf(name) // OpenReaderAt succeeded, so the name implies one
	}
	p := &Plan{Version: planVersion, File: name, Size: st.Size(), Data: data, EvalSplit: opts.EvalSplit, BlockRecords: opts.BlockRecords}
	if n := r.First().Offset; n > 0 {
		p.Head = make([]byte, n)
		if _, err := f.ReadAt(p.Head, 0); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	sc := &planScan{p: p, r: r, f: f}
	collect := shard.CollectLabels
	if data.Scores {
		collect = shard.CollectScores
	}
	labels, err := collect(sc)
	if err != nil {
		return nil, err
	}
	if err := sc.closeBlock(); err != nil {
		return nil, err
	}
	p.Bad = r.Bad()
	switch {
	case p.Records == 0:
		return nil, fmt.Errorf("%s: no records (%v)", name, p.Bad)
	case p.Train == 0:
		return nil, fmt.Errorf("%s: eval_split %g holds out all %d records", name, p.EvalSplit, p.Records)
	case labels.Len() < 2 && opts.Task == "classify":
		return nil, fmt.Errorf("%s: only %d class in the training data", name, labels.Len())
	}
	if labels.Len() > 0 {
		p.Labels = labels.Names()
	}
	sum, err := hr.sum(st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.SHA256 = hex.EncodeToString(sum)
	if st2, err := f.Stat(); err != nil || st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		return nil, fmt.Errorf("%s: the file changed while it was planned", name)
	}
	return p, nil
}

// planScan is the scan as a shard.Source of the training records, so that the labels
// are collected by the very function train uses, while it numbers every record, marks
// the held-out ones and cuts blocks.
type planScan struct {
	p   *Plan
	r   *shard.Reader
	f   *os.File
	cur Block // the open block; Count 0 when none
	buf []byte
}

func (s *planScan) Next(rec *shard.Record) error {
	p := s.p
	for {
		if err := s.r.Next(rec); err != nil {
			return err
		}
		i := p.Records
		if i == math.MaxInt32 {
			return fmt.Errorf("%s: more than %d records", p.File, math.MaxInt32)
		}
		p.Records++
		if s.cur.Count == 0 {
			s.cur = Block{Start: rec.Pos.Offset, Line: rec.Pos.Line, Index: rec.Pos.Index, First: i}
			p.train = append(p.train, 0)
		}
		s.cur.Count++
		s.cur.End = s.r.FrameEnd()
		if s.cur.Count == p.BlockRecords {
			if err := s.closeBlock(); err != nil {
				return err
			}
		}
		if p.EvalSplit > 0 {
			if i/8 == len(p.HeldOut) {
				p.HeldOut = append(p.HeldOut, 0)
			}
			if HeldOut(i, p.EvalSplit) {
				p.HeldOut[i/8] |= 1 << (i % 8)
				continue
			}
		}
		p.Train++
		p.train[len(p.train)-1]++
		return nil
	}
}

// closeBlock checksums the open block, re-reading its bytes (just read, so cached),
// and adds it to the plan.
func (s *planScan) closeBlock() error {
	if s.cur.Count == 0 {
		return nil
	}
	n := int(s.cur.End - s.cur.Start)
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	if _, err := s.f.ReadAt(s.buf[:n], s.cur.Start); err != nil {
		return fmt.Errorf("%s: %w", s.p.File, err)
	}
	s.cur.CRC = crc32.Checksum(s.buf[:n], castagnoli)
	s.p.Blocks = append(s.p.Blocks, s.cur)
	s.cur = Block{}
	return nil
}

// hashingReaderAt hashes the file's bytes in order as the scan reads them: the reader
// reads sequentially, apart from re-reading the header at the start.
type hashingReaderAt struct {
	f    *os.File
	h    hash.Hash
	next int64 // bytes hashed
}

func (r *hashingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := r.f.ReadAt(b, off)
	if off <= r.next && off+int64(n) > r.next {
		r.h.Write(b[r.next-off : n])
		r.next = off + int64(n)
	}
	return n, err
}

// sum hashes what the scan did not read, if anything, and returns the digest.
func (r *hashingReaderAt) sum(size int64) ([]byte, error) {
	if r.next < size {
		if _, err := io.Copy(r.h, io.NewSectionReader(r.f, r.next, size-r.next)); err != nil {
			return nil, err
		}
	}
	return r.h.Sum(nil), nil
}

// IsHeldOut says whether record id is in the eval split.
func (p *Plan) IsHeldOut(id int) bool {
	return p.HeldOut != nil && p.HeldOut[id/8]&(1<<(id%8)) != 0
}

// BlockOf is the block that holds record id.
func (p *Plan) BlockOf(id int) int { return id / p.BlockRecords }

// EvalIDs lists the held-out records in file order.
func (p *Plan) EvalIDs() []int32 {
	ids := make([]int32, 0, p.Records-p.Train)
	for i := range p.Records {
		if p.IsHeldOut(i) {
			ids = append(ids, int32(i))
		}
	}
	return ids
}

// appendTrain appends block b's training record IDs, ascending.
func (p *Plan) appendTrain(dst []int32, b int) []int32 {
	blk := p.Blocks[b]
	for id := blk.First; id < blk.First+blk.Count; id++ {
		if !p.IsHeldOut(id) {
			dst = append(dst, int32(id))
		}
	}
	return dst
}

// Verify reads the file's content from r and checks its size and SHA-256 against the
// plan (OpenFile checks each block's CRC as it reads it; this checks everything).
func (p *Plan) Verify(r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("%s: %w", p.File, err)
	}
	if n != p.Size {
		return fmt.Errorf("%s: %d bytes, the plan says %d: the file changed", p.File, n, p.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%s: sha256 %s, the plan says %s: the file changed", p.File, got, p.SHA256)
	}
	return nil
}

// blockColumns is the JSON form of the blocks, a column per field, starts and lines as
// differences from the block before: a few bytes per block.
type blockColumns struct {
	Start []int64  `json:"start"`
	Len   []int64  `json:"len"`
	Line  []int    `json:"line"`
	Index []int    `json:"index,omitempty"` // omitted when all are 0 (every format but squad)
	CRC   []uint32 `json:"crc32c"`
}

type planJSON Plan // Plan without its methods

// MarshalJSON writes the plan with its blocks by column.
func (p Plan) MarshalJSON() ([]byte, error) {
	var c blockColumns
	var prev Block
	index := false
	for _, b := range p.Blocks {
		c.Start = append(c.Start, b.Start-prev.Start)
		c.Len = append(c.Len, b.End-b.Start)
		c.Line = append(c.Line, b.Line-prev.Line)
		c.Index = append(c.Index, b.Index)
		c.CRC = append(c.CRC, b.CRC)
		index = index || b.Index != 0
		prev = b
	}
	if !index {
		c.Index = nil
	}
	return json.Marshal(struct {
		*planJSON
		Blocks blockColumns `json:"blocks"`
	}{(*planJSON)(&p), c})
}

// UnmarshalJSON reads a plan and checks that it holds together.
func (p *Plan) UnmarshalJSON(b []byte) error {
	var v struct {
		*planJSON
		Blocks blockColumns `json:"blocks"`
	}
	v.planJSON = (*planJSON)(p)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c := v.Blocks
	if p.Version != planVersion {
		return fmt.Errorf("plan of %s: version %d, want %d", p.File, p.Version, planVersion)
	}
	if p.Records < 1 || p.BlockRecords < 1 || p.Records > 1<<31-1 {
		return fmt.Errorf("plan of %s: %d records in blocks of %d", p.File, p.Records, p.BlockRecords)
	}
	nb := (p.Records + p.BlockRecords - 1) / p.BlockRecords
	if len(c.Start) != nb || len(c.Len) != nb || len(c.Line) != nb || len(c.CRC) != nb || (c.Index != nil && len(c.Index) != nb) {
		return fmt.Errorf("plan of %s: block columns of %d, %d, %d, %d, %d entries for %d blocks", p.File, len(c.Start), len(c.Len), len(c.Line), len(c.CRC), len(c.Index), nb)
	}
	if p.HeldOut != nil && len(p.HeldOut) != (p.Records+7)/8 {
		return fmt.Errorf("plan of %s: held_out has %d bytes for %d records", p.File, len(p.HeldOut), p.Records)
	}
	p.Blocks = make([]Block, nb)
	p.train = make([]int32, nb)
	var prev Block
	train := 0
	for i := range nb {
		b := Block{Start: prev.Start + c.Start[i], Line: prev.Line + c.Line[i], CRC: c.CRC[i], First: i * p.BlockRecords}
		b.End = b.Start + c.Len[i]
		b.Count = min(p.BlockRecords, p.Records-b.First)
		if c.Index != nil {
			b.Index = c.Index[i]
		}
		if c.Start[i] < 0 || c.Len[i] <= 0 || c.Line[i] < 0 || b.Line < 1 || b.Index < 0 || b.End > p.Size {
			return fmt.Errorf("plan of %s: block %d: bytes [%d, %d) at line %d in a file of %d bytes", p.File, i, b.Start, b.End, b.Line, p.Size)
		}
		p.Blocks[i], prev = b, b
		p.train[i] = int32(b.Count - p.countHeldOut(b))
		train += int(p.train[i])
	}
	if train != p.Train {
		return fmt.Errorf("plan of %s: %d training records, held_out leaves %d", p.File, p.Train, train)
	}
	return nil
}

// countHeldOut counts a block's held-out records.
func (p *Plan) countHeldOut(b Block) int {
	if p.HeldOut == nil {
		return 0
	}
	n := 0
	for id := b.First; id < b.First+b.Count; {
		if id%8 == 0 && id+8 <= b.First+b.Count {
			n += bits.OnesCount8(p.HeldOut[id/8])
			id += 8
			continue
		}
		if p.IsHeldOut(id) {
			n++
		}
		id++
	}
	return n
}
